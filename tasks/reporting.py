"""The cost report's plain steps: refresh the DuckDB views, collect, write HTML and exports."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from analytics import db
from analytics.reconcile import Reconciliation, reconcile
from analytics.report import Report, collect, export, to_html
from providers.catalog import load_catalog
from settings import Settings


class ReportFiles(BaseModel):
    html: str
    exports: list[str]


def paths(settings: Settings) -> tuple[Path, str]:
    """(the DuckDB file, the ledger folder)."""
    home = settings.home_path
    return home / "analytics.duckdb", str(home / "ledger")


def make_report(settings: Settings, *, period: str = "month", budget_usd: Decimal | None = None,
                now: datetime | None = None) -> Report:
    database, ledger = paths(settings)
    db.build(database, ledger)
    with db.connect(database, ledger) as con:
        return collect(con, load_catalog(settings.catalog), period=period, now=now,
                       budget_usd=budget_usd)


def write_report(settings: Settings, report: Report, html_out: Path | None = None
                 ) -> ReportFiles:
    stamp = report.generated_at.strftime("%Y-%m-%d")
    folder = settings.home_path / "reports"
    target = html_out or folder / f"cost-report-{stamp}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_html(report), encoding="utf-8")
    exports = export(report, folder / f"exports-{stamp}")
    return ReportFiles(html=str(target), exports=[str(p) for p in exports])


def reconcile_usage(settings: Settings, usage: list[dict]) -> Reconciliation:
    """Provider charges since the ledger's first event (older ones predate this home), matched
    job by job."""
    database, ledger = paths(settings)
    db.build(database, ledger)
    with db.connect(database, ledger) as con:
        first = con.execute("SELECT min(event_time) FROM ledger").fetchall()[0][0]
        if first is not None and usage and "at" in usage[0]:
            since = first.timestamp() - 1  # the provider and we share a clock within a second
            usage = [row for row in usage if float(row["at"]) >= since]
        return reconcile(con, usage)


def now_utc() -> datetime:
    return datetime.now(UTC)
