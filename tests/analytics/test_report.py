import base64
import io
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from PIL import Image

from analytics import db
from analytics.projection import budget
from analytics.report import charts, collect, export, period_start, to_html
from analytics.synthetic import clip_rows, write

NOW = datetime(2026, 11, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
def page(con, catalog_module):
    report = collect(con, catalog_module, period="all", now=NOW, budget_usd=Decimal("500"))
    return report, to_html(report)


@pytest.fixture(scope="module")
def catalog_module():
    from providers.catalog import load_catalog

    return load_catalog()


def collect_home(archived_home, catalog, now=NOW, period="month"):
    home, journal, archive, _ = archived_home
    database = home / "analytics.duckdb"
    db.build(database, str(home / "ledger"))
    with db.connect(database, str(home / "ledger")) as con:
        return collect(con, catalog, period=period, now=now, budget_usd=Decimal("5"),
                       journal=journal, archive=archive)


@pytest.fixture(scope="module")
def gallery_page(archived_home, catalog_module):
    """November 10-14: $3.20 on five 5 s clips, two of them archived as real MP4s."""
    report = collect_home(archived_home, catalog_module)
    return report, to_html(report)


def test_every_chart_draws_its_marks_inline(page):
    report, _ = page
    svgs = charts(report)
    assert set(svgs) == {"spend-by-day", "unit-costs", "projection", "latency"}
    for svg in svgs.values():
        assert svg.lstrip().startswith("<svg") and svg.count("<path") >= 3


def test_the_page_references_nothing_external(page):
    _, text = page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "url(http" not in text and "@import" not in text and "<script" not in text


def test_the_page_carries_the_advice_and_budget(page):
    report, text = page
    assert report.advice.advice in text.replace("&#x27;", "'")
    assert "against a budget of $500.00" in text


def test_exports_write_parquet_and_csv(page, tmp_path):
    report, _ = page
    written = export(report, tmp_path)
    assert {p.suffix for p in written} == {".parquet", ".csv"}
    assert (tmp_path / "unit_costs.csv").read_text().startswith('"provider","model"')


@pytest.mark.parametrize(("period", "start"), [("month", "2026-11-01"), ("30d", "2026-10-17"),
                                                ("2026-10", "2026-10-01"), ("all", None)])
def test_periods(period, start):
    result = period_start(period, NOW.date())
    assert (str(result) if result else None) == start


def test_a_bad_period_names_the_allowed_values():
    with pytest.raises(ValueError, match="allowed month, all"):
        period_start("fortnight", NOW.date())


def test_the_headline_gives_the_period_s_spend_clips_unit_cost_and_budget(gallery_page):
    report, text = gallery_page
    h = report.headline
    assert (h.spent_usd, h.clips_delivered, h.delivered_seconds) == (Decimal("3.2"), 5, 25)
    assert h.cost_per_delivered_second == Decimal("0.128") and h.budget_used == pytest.approx(0.64)
    for key, value in (("spent", "$3.20"), ("clips", "5"), ("per-second", "$0.1280"),
                       ("budget", "64%")):
        assert re.search(rf"id='headline-{key}'><b class='value'>{re.escape(value)}</b>", text)


def test_a_clip_whose_file_is_gone_shows_a_placeholder_and_one_without_a_record_too(
        gallery_page, archived_home):
    report, text = gallery_page
    _, _, _, ids = archived_home
    by_id = {c.clip_id: c for c in report.gallery}
    assert [c.clip_id for c in report.gallery] == ids[::-1]  # newest first
    assert all(by_id[i].thumbnail.startswith("data:image/jpeg;base64,") for i in ids[:2])
    assert by_id[ids[2]].thumbnail is None and by_id[ids[2]].missing.startswith("file missing")
    assert by_id[ids[0]].link.startswith("file:///") and by_id[ids[2]].prompt.startswith("Rain")
    assert by_id[ids[3]].missing == "no journal record for this clip"
    assert text.count("class='placeholder'") == 3


def test_the_gallery_keeps_to_the_most_recent_clips(archived_home, catalog_module):
    home, journal, archive, ids = archived_home
    with db.connect(home / "analytics.duckdb", str(home / "ledger")) as con:
        report = collect(con, catalog_module, period="month", now=NOW, journal=journal,
                         archive=archive, gallery_size=2)
    assert [c.clip_id for c in report.gallery] == ids[:-3:-1] and report.clips_in_period == 5
    assert "The 2 most recent of 5 clips" in to_html(report)


def test_a_projection_from_five_days_states_its_method_and_holds_all_day(gallery_page,
                                                                        archived_home,
                                                                        catalog_module):
    report, text = gallery_page
    b = report.budget
    # $3.20 over the 6 whole days Nov 10-15, and that daily mean for the 15 days left
    assert b.projected_usd == Decimal("3.20") + (Decimal("3.20") / 6 * 15).quantize(
        Decimal("0.01"))
    assert "6 whole days from Nov 10 to Nov 15" in b.projection_method
    assert "daily mean" in b.projection_method and b.projection_method in text
    later = collect_home(archived_home, catalog_module, now=NOW + timedelta(hours=23, minutes=59))
    assert later.budget == b  # whole days: the hour of the call changes nothing


def test_a_projection_from_one_day_refuses_to_extrapolate(tmp_path):
    write(tmp_path / "ledger", clip_rows(n=3, provider="kling", model="kling-v3",
                                         tier="standard", seconds_asked=5, seconds_billed=5,
                                         cost="0.14", start=datetime(2026, 11, 3, 8,
                                                                     tzinfo=UTC)))
    db.build(tmp_path / "a.duckdb", str(tmp_path / "ledger"))
    with db.connect(tmp_path / "a.duckdb", str(tmp_path / "ledger")) as con:
        result = budget(con, NOW, Decimal("500"))
    out = json.loads(result.model_dump_json())
    assert out["projected_usd"] is None and out["projection_method"] is None
    assert out["projection_reason"].startswith("not enough data yet: 1 whole day of data")
    assert out["spent_usd"] == 0.42 and out["over_budget"] is False


def _amounts(value, path=""):
    """(path, value) of every field named like money in a JSON document."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("_usd") or key.startswith("cost_per"):
                yield f"{path}.{key}", item
            yield from _amounts(item, f"{path}.{key}")
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _amounts(item, f"{path}[{n}]")


def test_every_amount_in_report_json_is_a_number_rounded_as_printed(archived_home,
                                                                   monkeypatch, capsys):
    from cli.main import main

    home, *_ = archived_home
    monkeypatch.setenv("REELFLOW_HOME", str(home))
    assert main(["report", "--json", "--period", "all", "--budget", "5"]) == 0
    out = json.loads(capsys.readouterr().out)["report"]
    amounts = [(path, v) for path, v in _amounts(out) if not isinstance(v, dict)]
    assert len(amounts) > 50
    for path, value in amounts:
        assert value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                                 ), path
        places = 4 if "per_delivered_second" in path else 2
        assert value is None or round(value, places) == value, (path, value)
    assert out["headline"]["spent_usd"] == 3.2 and out["budget"]["budget_usd"] == 5
    assert out["tables"]["unit_costs"][0]["cost_per_delivered_second"] == 0.14
    assert len(out["gallery"]) == 5 and "thumbnail" not in out["gallery"][0]


def test_tables_have_human_headers_dollars_to_the_cent_and_only_the_models_used(gallery_page):
    report, text = gallery_page
    headers = re.findall(r"<th>(.*?)</th>", text)
    assert "Cost per delivered second ($/s)" in headers and "Accepted clips" in headers
    assert not [h for h in headers if "_" in h]
    cells = re.findall(r"<td class='\w+'>(.*?)</td>", text)
    assert "True" not in cells and "False" not in cells and "" not in cells
    assert "$0.1400" in cells and "$2.80" in cells
    assert all(re.fullmatch(r"\$[\d,]+\.\d\d(\d\d)?", c) for c in cells if c.startswith("$"))
    assert {r["model"] for r in report.scale} <= {"kling-v3", "sora-2"}
    assert report.scale and len(report.scale) < 36


def test_the_advice_says_what_to_do_and_why(gallery_page):
    report, _ = gallery_page
    assert report.advice.advice.startswith("Stay on kling-v3 standard: it is the cheapest")
    assert "a month for 5 clips of 5 s at 1080p (your last 30 days)" in report.advice.advice


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _section(dom: str, tag: str, ident: str) -> str:
    found = re.search(rf"<{tag}[^>]* id=\"{ident}\"[^>]*>(.*?)</{tag}>", dom, re.S)
    assert found, ident
    return found.group(1)


def _texts(svg: str) -> list[str]:
    return [re.sub(r"\s+", " ", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg,
                                                                 re.S)]


def test_headless_chromium_renders_the_headline_gallery_and_each_chart(gallery_page,
                                                                        tmp_path):
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing under CI: .ci/run installs Debian's chromium")
        pytest.skip("Chromium not installed here (CI installs it)")
    report, text = gallery_page
    html_file = tmp_path / "report.html"
    html_file.write_text(text, encoding="utf-8")
    flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", html_file.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    headline = _section(dom, "section", "headline")
    for value in ("$3.20", ">5<", "$0.1280", "64%"):
        assert value in headline, value
    gallery = _section(dom, "section", "gallery")
    images = re.findall(r"<img src=\"data:image/jpeg;base64,([^\"]+)\"", gallery)
    assert len(images) == 2 == sum(1 for c in report.gallery if c.thumbnail)
    for data in images:
        picture = Image.open(io.BytesIO(base64.b64decode(data)))
        assert picture.format == "JPEG" and picture.size == (240, 135)
    assert gallery.count("class=\"placeholder\"") == 3 and "file missing" in gallery
    labels = {name: _texts(_section(dom, "section", name))
              for name in ("spend-by-day", "unit-costs", "projection", "latency")}
    for name in labels:
        assert _section(dom, "section", name).count("<path") >= 3, name
    assert {"$0.70", "$0.40", "Nov 10", "Nov 14"} <= set(labels["spend-by-day"])
    assert {"$0.1400/s", "$0.0800/s", "kling-v3 standard", "sora-2 api"} <= set(
        labels["unit-costs"])
    assert "$0.70 ← cheapest" in labels["projection"] and "$2,000.00" in labels["projection"]
    assert any("log scale" in t for t in labels["projection"])
    hours = [f"{h:02d}" for h in range(24)]
    first = labels["latency"].index("00")
    assert labels["latency"][first:first + 24] == hours  # the x axis: every hour, in order
    assert {"30 s", "40 s", "70 s"} <= set(labels["latency"])
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1100,2600",
                    html_file.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.exists() and shot.stat().st_size > 10_000
    saved = os.environ.get("REPORT_SCREENSHOT_DIR")
    if saved:
        shutil.copy(shot, saved)


def test_the_report_rounds_an_amount_as_the_plan_and_the_result_do():
    """Half up, to the cent (models.usd_text): $0.425 is $0.43 everywhere, never $0.42."""
    from analytics.tables import cell, json_value
    from models import usd_text

    assert usd_text(Decimal("0.425")) == cell("cost_usd", Decimal("0.425")) == "$0.43"
    assert cell("cost_usd", 0.425) == "$0.43" and json_value("cost_usd", 0.425) == 0.43
