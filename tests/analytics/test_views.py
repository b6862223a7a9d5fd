from datetime import UTC, datetime
from decimal import Decimal

import pytest

from analytics import db
from analytics.projection import Workload, advise, budget
from analytics.reconcile import reconcile
from analytics.synthetic import charge_rows, clip_rows, write

D = Decimal


def one(con, sql, *params):
    return con.execute(sql, list(params)).fetchone()


def test_the_seed_140_against_355_per_1000_clips(con):
    kling = one(con, "SELECT sum(cost_usd) FROM ledger WHERE clip_id IN (SELECT clip_id FROM "
                     "clips WHERE model = 'kling-v3' AND outcome = 'ok' AND mode = 'text')")[0]
    sora = one(con, "SELECT sum(cost_usd) FROM spend_by_day WHERE model = 'sora-2'")[0]
    assert kling == D("140.00")
    assert sora - D("35.50") - D("11.36") == D("355.00")  # less the spike and snapped clips


def test_spend_by_day_adds_up_to_every_charge(con, ledger):
    total = one(con, "SELECT sum(cost_usd) FROM spend_by_day")[0]
    expected = (1000 * D("0.14") + 1120 * D("0.355") - 20 * D("0.355") + 20 * D("0.568")
                + 90 * D("0.14") + 10 * D("0.028") + 5 * D("0.14") + 2 * D("0.012"))
    assert total == expected


def test_unit_costs_fold_failures_requeues_and_storage_in(con):
    row = one(con, "SELECT cost_usd, accepted_clips, delivered_seconds, "
                   "cost_per_delivered_second, cost_per_accepted_clip FROM unit_costs "
                   "WHERE model = 'kling-v3'")
    cost = 1090 * D("0.14") + 10 * D("0.028") + 5 * D("0.14") + 2 * D("0.012")
    seconds = 1080 * 5 + 10 * 20
    assert row[0] == cost and row[1] == 1090 and row[2] == seconds
    assert row[3] == pytest.approx(float(cost) / seconds)
    assert row[4] == pytest.approx(float(cost) / 1090)


def test_hidden_costs(con):
    kling = one(con, "SELECT failed_generations_usd, requeues_usd, storage_usd, "
                     "snapped_seconds_usd FROM hidden_costs WHERE model = 'kling-v3'")
    assert kling[:3] == (D("0.28"), D("0.70"), D("0.024")) and kling[3] is None
    sora = one(con, "SELECT snapped_seconds_usd FROM hidden_costs WHERE model = 'sora-2'")[0]
    assert float(sora) == pytest.approx(4.26)


def test_latency_percentiles_show_the_sora_spike(con):
    rows = con.execute("SELECT hour_utc, p50_s, p95_s FROM latency WHERE model = 'sora-2' "
                       "ORDER BY hour_utc").fetchall()
    by_hour = {hour: (p50, p95) for hour, p50, p95 in rows}
    assert by_hour[3] == (pytest.approx(200), pytest.approx(200))
    assert by_hour[12] == (pytest.approx(80), pytest.approx(80))
    kling = con.execute("SELECT sum(jobs) FROM latency WHERE model = 'kling-v3'").fetchone()[0]
    assert kling == 1090


def test_quality_rates(con):
    row = one(con, "SELECT completed, failed, success_rate, downgrade_rate, flash_frame_rate "
                   "FROM quality_rates WHERE model = 'kling-v3'")
    assert row[:2] == (1090, 10)
    assert row[2] == pytest.approx(1090 / 1100)
    assert row[3] == pytest.approx(50 / 1090) and row[4] == pytest.approx(30 / 1090)


def test_extensions_saved_against_regenerating(con):
    row = one(con, "SELECT paid_usd, from_scratch_usd, saved_usd FROM continuation_savings "
                   "WHERE mode = 'extend'")
    assert row[0] == D("1.40")
    assert float(row[1]) == pytest.approx(10 * 0.14 / 5 * 20)
    assert float(row[2]) == pytest.approx(5.6 - 1.4)


def test_duplicate_event_ids_count_once(tmp_path):
    rows = clip_rows(n=3, provider="kling", model="kling-v3", tier="standard",
                     seconds_asked=5, seconds_billed=5, cost="0.14")
    write(tmp_path / "a", rows)
    write(tmp_path / "a", {**rows, "flow_run_id": ["again"] * len(rows["flow_run_id"])})
    db.build(tmp_path / "x.duckdb", str(tmp_path / "a"))
    with db.connect(tmp_path / "x.duckdb", str(tmp_path / "a")) as con:
        assert one(con, "SELECT sum(cost_usd) FROM ledger")[0] == D("0.42")


def test_reconciliation_finds_a_planted_missing_charge(con):
    jobs = con.execute("SELECT job_id, sum(cost_usd) FROM ledger WHERE job_id IS NOT NULL "
                       "GROUP BY job_id ORDER BY job_id").fetchall()
    usage = [{"job_id": job, "usd": str(usd)} for job, usd in jobs]
    assert reconcile(con, usage).ok
    planted = [*usage[:-1], {"job_id": "provider-only", "usd": "0.14"}]
    planted[0] = {**planted[0], "usd": str(D(planted[0]["usd"]) + D("0.01"))}
    result = reconcile(con, planted)
    problems = {m.job_id: m.problem for m in result.mismatches}
    assert problems == {jobs[-1][0]: "in the ledger, not on the provider's bill",
                        "provider-only": "charged by the provider, missing from the ledger",
                        jobs[0][0]: "amounts differ"}


def test_advice_picks_pro_past_its_break_even(catalog):
    now = datetime(2026, 11, 25, tzinfo=UTC)
    busy = advise(catalog, Workload(clips_per_month=10_000, seconds_per_clip=5,
                                    resolution="1080p", measured=True), now=now)
    assert (busy.best.model, busy.best.tier, busy.best.effective_usd) == ("kling-v3", "pro",
                                                                          D("1100.000"))
    assert busy.pro_break_even_clips == 3572 and "you are past it" in busy.advice
    quiet = advise(catalog, Workload(clips_per_month=1000, seconds_per_clip=5,
                                     resolution="1080p", measured=True), now=now)
    assert (quiet.best.tier, quiet.best.effective_usd) == ("standard", D("140.000"))
    assert all(t.model != "sora-2" for t in quiet.tiers)  # sunset


def test_month_to_date_spend_and_projection(con):
    now = datetime(2026, 11, 16, 0, tzinfo=UTC)
    result = budget(con, now, D("500"))
    spent = one(con, "SELECT sum(cost_usd) FROM ledger")[0]
    assert result.spent_usd == spent
    # the ledger holds two days (Nov 1 and 2): too few to extrapolate a month from
    assert result.projected_usd is None and result.projection_method is None
    assert result.projection_reason.startswith("not enough data yet: 2 whole days")
    assert result.over_budget == (spent > 500)


def test_an_empty_home_still_builds(tmp_path):
    db.build(tmp_path / "e.duckdb", str(tmp_path / "no-ledger"))
    with db.connect(tmp_path / "e.duckdb", str(tmp_path / "no-ledger")) as con:
        assert con.execute("SELECT count(*) FROM unit_costs").fetchone()[0] == 0


def test_a_replaced_take_is_a_hidden_cost_and_not_an_accepted_clip(tmp_path):
    takes = clip_rows(n=3, provider="atlascloud", model="wan-2.6", tier="payg",
                      seconds_asked=5, seconds_billed=5, cost="0.425", outcome="downgraded",
                      actual="1280x720", run="takes")
    first_inspection = takes["event_kind"].index("inspection")
    rejection = {name: values[first_inspection] for name, values in takes.items()}
    rejection.update(event_id="rejection-of-take-1", event_kind="rejection",
                     inspection_outcome="rejected: silently downgraded; replaced by take 2")
    for name, values in takes.items():
        values.append(rejection[name])
    write(tmp_path / "ledger", takes)
    database = tmp_path / "a.duckdb"
    db.build(database, str(tmp_path / "ledger"))
    with db.connect(database, str(tmp_path / "ledger")) as con:
        hidden = one(con, "SELECT rejected_clips_usd FROM hidden_costs")[0]
        accepted = one(con, "SELECT accepted_clips, cost_per_accepted_clip FROM unit_costs")
    assert hidden == D("0.425")
    assert accepted[0] == 2 and accepted[1] == pytest.approx(3 * 0.425 / 2)


def test_price_drift_compares_the_bill_with_the_catalog_and_warns_past_5_percent(tmp_path):
    """Ten fal clips priced at the catalog's $0.42 and the provider's bill showing $0.05 more
    on each (reconciled rows): +11.9%, warned; Kling at its price: no drift, no warning."""
    from analytics.report import drift_warnings
    from models import RoutePlan
    from tasks.batch_plan import at_billed_rate

    write(tmp_path / "ledger",
          clip_rows(n=10, provider="fal", model="kling-v3-fal", tier="standard",
                    seconds_asked=5, seconds_billed=5, cost="0.42", run="fal"),
          charge_rows(n=10, provider="fal", model="kling-v3-fal", tier="standard",
                      kind="reconciled", charge="reconciled", cost="0.05"),
          clip_rows(n=10, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=5, seconds_billed=5, cost="0.14", run="kling"))
    db.build(tmp_path / "d.duckdb", str(tmp_path / "ledger"))
    with db.connect(tmp_path / "d.duckdb", str(tmp_path / "ledger")) as con:
        cursor = con.execute("SELECT * FROM price_drift")
        columns = [c[0] for c in cursor.description]
        rows = [dict(zip(columns, r, strict=True)) for r in cursor.fetchall()]
    drift = {r["model"]: r for r in rows}
    assert float(drift["kling-v3-fal"]["drift"]) == pytest.approx(0.5 / 4.2)
    assert float(drift["kling-v3"]["drift"]) == pytest.approx(0.0)
    (warning,) = drift_warnings(rows)
    assert "kling-v3-fal standard" in warning and "+11.9%" in warning
    plan = RoutePlan.model_validate({
        "clip_id": "c" * 64, "model": "kling-v3-fal", "model_name": "Kling v3 (fal)",
        "provider": "fal", "protocol": "fal_queue", "endpoint": "sandbox", "tier": "standard",
        "concurrency_key": "provider:fal:standard", "resolution": "720p",
        "aspect_ratio": "16:9", "seconds_asked": 5, "seconds_billed": 5,
        "steps": [{"kind": "generate", "seconds": 5}], "cost_usd": "0.42", "p50_s": 38,
        "p95_s": 94, "price_assumed": False, "reasons": [], "rejected": []})
    raised = at_billed_rate(plan, {("kling-v3-fal", "standard"): Decimal(str(
        drift["kling-v3-fal"]["drift"]))})
    assert raised.cost_usd == Decimal("0.47") and "billed" in raised.reasons[-1]
    assert at_billed_rate(plan, {}) is plan


def test_days_and_hours_are_utc_whatever_the_connection_s_time_zone(tmp_path):
    late = clip_rows(n=2, provider="kling", model="kling-v3", tier="standard", seconds_asked=5,
                     seconds_billed=5, cost="0.14", start=datetime(2026, 11, 3, 23, 30, tzinfo=UTC))
    write(tmp_path / "ledger", late)
    db.build(tmp_path / "a.duckdb", str(tmp_path / "ledger"))
    with db.connect(tmp_path / "a.duckdb", str(tmp_path / "ledger")) as con:
        con.execute("SET TimeZone = 'Asia/Tokyo'")  # 08:30 on the 4th there
        days = con.execute("SELECT day, sum(cost_usd) FROM spend_by_day GROUP BY day").fetchall()
        hours = con.execute("SELECT DISTINCT hour_utc FROM latency").fetchall()
        projected = budget(con, datetime(2026, 11, 5, 12, tzinfo=UTC), None)
    assert days == [(datetime(2026, 11, 3).date(), D("0.28"))]
    assert hours == [(23,)]
    assert projected.spent_usd == D("0.28")
