import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from analytics.report import charts, collect, export, period_start, to_html

NOW = datetime(2026, 11, 16, tzinfo=UTC)


@pytest.fixture(scope="module")
def page(con, catalog_module):
    report = collect(con, catalog_module, period="all", now=NOW, budget_usd=Decimal("500"))
    return report, to_html(report)


@pytest.fixture(scope="module")
def catalog_module():
    from providers.catalog import load_catalog

    return load_catalog()


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


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_headless_chromium_renders_each_chart(page, tmp_path):
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing under CI: .ci/run installs Debian's chromium")
        pytest.skip("Chromium not installed here (CI installs it)")
    _, text = page
    html_file = tmp_path / "report.html"
    html_file.write_text(text, encoding="utf-8")
    flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", html_file.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    for chart in ("spend-by-day", "unit-costs", "projection", "latency"):
        section = re.search(rf"<section class=\"chart\" id=\"{chart}\">(.*?)</section>", dom,
                            re.S)
        assert section and section.group(1).count("<path") >= 3, chart
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1100,2400",
                    html_file.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.exists() and shot.stat().st_size > 10_000
    saved = os.environ.get("REPORT_SCREENSHOT_DIR")
    if saved:
        shutil.copy(shot, saved)
