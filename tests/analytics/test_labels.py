"""Spend by label over a synthetic ledger with hand-computed answers: labelled and unlabelled
clips, failures charged under a label, and a part written before the ledger had the column."""

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from analytics import db
from analytics.report import collect, export, to_html
from analytics.synthetic import charge_rows, clip_rows, write

NOW = datetime(2026, 11, 16, tzinfo=UTC)
KLING = {"provider": "kling", "model": "kling-v3", "tier": "standard", "seconds_asked": 5,
         "seconds_billed": 5}


def without_labels(root, run: str) -> None:
    """Rewrite run `run`'s parts as a ledger older than the labels column wrote them."""
    for path in root.glob(f"date=*/run={run}/*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["labels"]), path)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """acme: 10 clips at $0.14 + 5 failures at $0.028 = $1.54 for 50 s; globex: 4 Sora clips
    at $0.355 = $1.42 for 20 s; no label: 2 clips now and 3 in an old part = $0.70 for 25 s."""
    root = tmp_path_factory.mktemp("labelled")
    write(root,
          clip_rows(n=10, **KLING, cost="0.14", prefix="acme-", run="a",
                    labels={"customer": "acme", "campaign": "spring"}),
          clip_rows(n=4, provider="sora", model="sora-2", tier="api", seconds_asked=5,
                    seconds_billed=5, cost="0.355", prefix="globex-", run="g",
                    labels={"customer": "globex"}),
          clip_rows(n=2, **KLING, cost="0.14", prefix="plain-", run="u"),
          charge_rows(n=5, provider="kling", model="kling-v3", tier="standard", kind="fail",
                      charge="failed_generation", cost="0.028", run="f",
                      labels={"customer": "acme"}),
          clip_rows(n=3, **KLING, cost="0.14", prefix="old-", run="old"))
    without_labels(root, "old")
    return root


def report_of(root, catalog, by=None):
    database = root.parent / f"{root.name}.duckdb"
    db.build(database, str(root))
    with db.connect(database, str(root)) as con:
        return collect(con, catalog, period="all", now=NOW, by=by)


@pytest.fixture(scope="module")
def catalog_module():
    from providers.catalog import load_catalog

    return load_catalog()


def test_spend_groups_by_a_label_with_rows_without_it_as_none(labelled, catalog_module):
    report = report_of(labelled, catalog_module, by="customer")
    rows = {r["label_value"]: r for r in report.by_label.rows}
    assert list(rows) == ["acme", "globex", "(none)"]  # most spent first, "(none)" last
    assert (rows["acme"]["cost_usd"], rows["acme"]["clips_delivered"],
            rows["acme"]["delivered_seconds"]) == (Decimal("1.54"), 10, 50)
    assert rows["acme"]["cost_per_delivered_second"] == pytest.approx(0.0308)
    assert (rows["globex"]["cost_usd"], rows["globex"]["clips_delivered"]) == (Decimal("1.42"), 4)
    assert (rows["(none)"]["cost_usd"], rows["(none)"]["clips_delivered"],
            rows["(none)"]["delivered_seconds"]) == (Decimal("0.70"), 5, 25)
    # the groups add up to the headline: nothing is lost or counted twice
    assert sum(r["cost_usd"] for r in rows.values()) == report.headline.spent_usd
    assert sum(r["clips_delivered"] for r in rows.values()) == report.headline.clips_delivered


def test_another_label_groups_the_same_rows_otherwise(labelled, catalog_module):
    rows = {r["label_value"]: r["cost_usd"]
            for r in report_of(labelled, catalog_module, by="campaign").by_label.rows}
    assert rows == {"spring": Decimal("1.40"), "(none)": Decimal("2.26")}


def test_the_json_report_gives_money_as_numbers(labelled, catalog_module):
    body = report_of(labelled, catalog_module, by="customer").model_dump(mode="json")
    acme = body["by_label"]["rows"][0]
    assert body["by_label"]["label"] == "customer"
    assert acme == {"label_value": "acme", "cost_usd": 1.54, "clips_delivered": 10,
                    "delivered_seconds": 50.0, "cost_per_delivered_second": 0.0308}


def test_without_by_the_report_names_the_label_keys_seen(labelled, catalog_module):
    report = report_of(labelled, catalog_module)
    assert report.by_label is None and report.label_keys == ["campaign", "customer"]
    assert "reelflow report --by KEY" in to_html(report)
    assert "id='by-label'" not in to_html(report)


def test_the_page_and_the_exports_hold_the_by_label_table(labelled, catalog_module, tmp_path):
    report = report_of(labelled, catalog_module, by="customer")
    page = to_html(report)
    table = page.split("<h2>Spend by customer</h2>", 1)[1].split("</section>", 1)[0]
    assert "<th>Customer</th>" in table and "(none)" in table and "$1.54" in table
    assert "$0.0308" in table
    written = export(report, tmp_path)
    assert tmp_path / "spend_by_label_customer.csv" in written


def test_a_ledger_older_than_the_column_reads_as_unlabelled(tmp_path, catalog_module):
    root = tmp_path / "ledger"
    write(root, clip_rows(n=3, **KLING, cost="0.14", run="old"))
    without_labels(root, "old")
    report = report_of(root, catalog_module, by="customer")
    assert report.label_keys == []
    assert [(r["label_value"], r["cost_usd"]) for r in report.by_label.rows] == [
        ("(none)", Decimal("0.42"))]
    assert "no row in this period carries the label customer" in to_html(report)


def test_an_empty_ledger_groups_nothing(tmp_path, catalog_module):
    (tmp_path / "ledger").mkdir()
    report = report_of(tmp_path / "ledger", catalog_module, by="customer")
    assert report.by_label.rows == [] and report.label_keys == []


def test_a_label_key_to_group_by_is_checked(labelled, catalog_module):
    with pytest.raises(ValueError, match="not a label key"):
        report_of(labelled, catalog_module, by="Customer'; DROP TABLE ledger; --")
