"""cost_report: the scheduled report — DuckDB over the ledger to tables, charts, projection,
advice and reconciliation, as Prefect artifacts, a self-contained HTML file and exports."""

import asyncio
from decimal import Decimal

import httpx
from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from analytics.report import Report
from sandbox import launcher
from settings import load_settings
from tasks.reporting import make_report, reconcile_usage, write_report

collect_report = task(make_report, name="collect report", cache_policy=NO_CACHE, retries=0)
write_files = task(write_report, name="write report files", cache_policy=NO_CACHE, retries=0)


@task(name="fetch provider usage", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def fetch_usage(settings) -> list[dict] | None:
    """The sandbox's usage log (real providers' exports are read from files, later)."""
    info = launcher.running(settings.home_path / "sandbox")
    if settings.sandbox != "auto" and settings.sandbox != "off":
        info = {"url": settings.sandbox}
    if not info:
        return None
    return httpx.get(info["url"] + "/_admin/usage", timeout=30).json()["rows"]


@flow(name="cost-report", retries=0)
async def cost_report(period: str = "month", budget_usd: float | None = None) -> dict:
    """Every dollar and second explained for `period` (month, all, Nd, YYYY-MM)."""
    settings = load_settings()
    report: Report = collect_report(settings, period=period,
                                    budget_usd=Decimal(str(budget_usd)) if budget_usd else None)
    files = write_files(settings, report)
    usage = await asyncio.to_thread(fetch_usage, settings)
    summary = {"html": files.html, "advice": report.advice.advice,
               "spent_usd": float(report.budget.spent_usd)}
    if usage is not None:
        result = reconcile_usage(settings, usage)
        summary["reconciled"] = result.ok
        summary["mismatches"] = len(result.mismatches)
    await acreate_table_artifact(key="cost-by-tier", table=[
        {k: str(v) for k, v in row.items()} for row in report.tables["unit_costs"]],
        description="Cost per delivered second and per accepted clip")
    await acreate_markdown_artifact(
        key="cost-report", markdown=f"# Cost report ({period})\n\n{report.advice.advice}\n\n"
        f"- month to date: ${report.budget.spent_usd:,.2f}, projected "
        f"${report.budget.projected_usd:,.2f}\n- HTML: `{files.html}`\n"
        + (f"- reconciliation: {'ok' if summary.get('reconciled') else 'MISMATCHES'}\n"
           if usage is not None else ""))
    return summary
