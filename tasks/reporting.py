"""The cost report's steps: refresh the DuckDB views, collect, write HTML and exports, and
leave the artifacts a reader acts on (the flow is flows/report.py)."""

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from prefect import task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from analytics import db
from analytics.reconcile import Reconciliation, reconcile
from analytics.report import Report, budget_sentence, collect, export, to_html
from analytics.tables import human_rows
from models import usd_text
from providers.catalog import load_catalog
from settings import Settings
from storage.archive import Archive
from storage.journal import journal_kept, open_journal
from storage.ledger_files import LedgerFiles
from tasks.reconciling import Reconciliation as Found


class ReportFiles(BaseModel):
    html: str
    exports: list[str]


def paths(settings: Settings) -> tuple[Path, str]:
    """(the DuckDB file, the ledger's folder or fsspec URL)."""
    return settings.home_path / "analytics.duckdb", settings.ledger_place


def known_drift(settings: Settings) -> dict[tuple[str, str], Decimal]:
    """(model, tier) -> how far above the catalog's estimate the provider billed, where it
    did (from the ledger's reconciled charges); empty with no ledger yet."""
    database, ledger = paths(settings)
    if not LedgerFiles(ledger, settings.ledger_options).exists():
        return {}
    db.build(database, ledger, settings.ledger_options)
    with db.connect(database, ledger, settings.ledger_options) as con:
        rows = con.execute("SELECT model, tier, drift FROM price_drift WHERE drift > 0"
                           ).fetchall()
    return {(model, tier): Decimal(str(drift)) for model, tier, drift in rows}


def make_report(settings: Settings, *, period: str = "month", budget_usd: Decimal | None = None,
                now: datetime | None = None, by: str | None = None) -> Report:
    database, ledger = paths(settings)
    skipped = db.build(database, ledger, settings.ledger_options)
    place = settings.journal_place
    journal = open_journal(place, connections=2) if journal_kept(place) else None
    warnings = []
    try:
        archive = Archive(settings.archive_url, settings.archive_options)
    except (ImportError, ValueError, OSError) as err:  # the gallery shows placeholders
        archive = None
        warnings.append(f"archive {settings.archive_url} could not be opened: {err}")
    with db.connect(database, ledger, settings.ledger_options) as con:
        report = collect(con, load_catalog(settings.catalog), period=period, now=now,
                         budget_usd=budget_usd, journal=journal, archive=archive, by=by)
    if journal is not None:
        journal.close()
    report.warnings += warnings + [f"unreadable ledger part skipped: {path}"
                                   for path in skipped]
    return report


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
    db.build(database, ledger, settings.ledger_options)
    with db.connect(database, ledger, settings.ledger_options) as con:
        return reconcile(con, [{"job_id": job, "usd": usd} for job, usd in bill.items()],
                         listed_jobs_only=True)


def now_utc() -> datetime:
    return datetime.now(UTC)


collect_report = task(make_report, name="collect report", cache_policy=NO_CACHE, retries=0)
write_files = task(write_report, name="write report files", cache_policy=NO_CACHE, retries=0)


async def publish_report(period: str, report: Report, files: ReportFiles,
                         result: Reconciliation, found: Found) -> dict:
    """The report's artifacts, and its summary (what `reelflow report --json` prints)."""
    summary = {"html": files.html, "advice": report.advice.advice, "warnings": report.warnings,
               "spent_usd": float(report.budget.spent_usd), "reconciled": result.ok,
               "mismatches": len(result.mismatches),
               "found_only_on_bill_usd": float(sum((c.usd for c in found.reconciled),
                                                   Decimal(0))),
               "not_reconcilable": found.not_reconcilable,
               "day_gaps_usd": {account: {day: float(gap) for day, gap in days.items()}
                                for account, days in found.day_gaps.items()}}
    await acreate_table_artifact(key="cost-by-tier", table=human_rows(
        report.tables["unit_costs"]), description="Cost per delivered second and per accepted clip")
    h = report.headline
    await acreate_markdown_artifact(
        key="cost-report", markdown=f"# Cost report ({period})\n\n"
        f"**{usd_text(h.spent_usd)}** spent, **{h.clips_delivered:,}** clips delivered "
        f"({h.delivered_seconds:g} s)\n\n{report.advice.advice}\n\n"
        f"- {budget_sentence(report.budget)}\n- HTML: `{files.html}`\n"
        + "".join(f"- **warning**: {w}\n" for w in report.warnings)
        + _reconciliation_lines(result, found))
    return summary


def _reconciliation_lines(result, found) -> str:
    """What the provider's bill said, job by job, in words a reader can act on."""
    lines = [f"- reconciliation: {found.checked_jobs} jobs against the provider's bill, "
             + ("ledger equal to it" if result.ok else f"{len(result.mismatches)} differ")]
    lines += [f"  - job `{m.job_id}`: ledger {usd_text(m.ledger_usd)}, bill "
              f"{usd_text(m.provider_usd)} "
              f"({m.problem})" for m in result.mismatches]
    lines += [f"  - found only on the bill, added to the ledger: job `{c.job_id}` "
              f"(clip `{c.clip_id[:12]}`) {usd_text(c.usd)}" for c in found.reconciled]
    if found.not_reconcilable:
        lines.append("  - not reconcilable job by job (the provider's usage names no job): "
                     + ", ".join(found.not_reconcilable))
    lines += [f"  - {account}: the provider's costs for {day} exceed this home's ledger by "
              f"{usd_text(gap)} (no job named: a charge the ledger lacks, or another user of the "
              "key)"
              for account, days in found.day_gaps.items() for day, gap in days.items()]
    return "\n".join(lines) + "\n"
