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


def reconcile_usage(settings: Settings, bill: dict[str, Decimal]) -> Reconciliation:
    """The provider's charges for this home's jobs (from its usage API, every period),
    matched job by job with the whole ledger."""
    database, ledger = paths(settings)
    db.build(database, ledger)
    with db.connect(database, ledger) as con:
        return reconcile(con, [{"job_id": job, "usd": usd} for job, usd in bill.items()],
                         listed_jobs_only=True)


def now_utc() -> datetime:
    return datetime.now(UTC)
