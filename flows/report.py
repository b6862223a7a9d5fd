"""cost_report: the scheduled report — DuckDB over the ledger to tables, charts, projection,
advice and reconciliation, as Prefect artifacts, a self-contained HTML file and exports."""

from decimal import Decimal

from prefect import flow, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE

from analytics.report import Report
from flows.generate import in_run
from settings import load_settings
from tasks.reconciling import reconcile_task
from tasks.reporting import make_report, reconcile_usage, write_report

collect_report = task(make_report, name="collect report", cache_policy=NO_CACHE, retries=0)
write_files = task(write_report, name="write report files", cache_policy=NO_CACHE, retries=0)


@flow(name="cost-report", retries=0)
async def cost_report(period: str = "month", budget_usd: float | None = None) -> dict:
    """Every dollar and second explained for `period` (month, all, Nd, YYYY-MM)."""
    settings = load_settings()
    # first the provider's bill (its usage APIs): what only the bill has enters the ledger as
    # `reconciled` rows, so the report that follows explains every charge
    found = await in_run(reconcile_task)
    result = reconcile_usage(settings, found.bill)
    report: Report = collect_report(settings, period=period,
                                    budget_usd=Decimal(str(budget_usd)) if budget_usd else None)
    files = write_files(settings, report)
    summary = {"html": files.html, "advice": report.advice.advice,
               "spent_usd": float(report.budget.spent_usd), "reconciled": result.ok,
               "mismatches": len(result.mismatches),
               "found_only_on_bill_usd": float(sum((c.usd for c in found.reconciled),
                                                   Decimal(0))),
               "not_reconcilable": found.not_reconcilable,
               "day_gaps_usd": {account: {day: float(gap) for day, gap in days.items()}
                                for account, days in found.day_gaps.items()}}
    await acreate_table_artifact(key="cost-by-tier", table=[
        {k: str(v) for k, v in row.items()} for row in report.tables["unit_costs"]],
        description="Cost per delivered second and per accepted clip")
    await acreate_markdown_artifact(
        key="cost-report", markdown=f"# Cost report ({period})\n\n{report.advice.advice}\n\n"
        f"- month to date: ${report.budget.spent_usd:,.2f}, projected "
        f"${report.budget.projected_usd:,.2f}\n- HTML: `{files.html}`\n"
        + _reconciliation_lines(result, found))
    return summary


def _reconciliation_lines(result, found) -> str:
    """What the provider's bill said, job by job, in words a reader can act on."""
    lines = [f"- reconciliation: {found.checked_jobs} jobs against the provider's bill, "
             + ("ledger equal to it" if result.ok else f"{len(result.mismatches)} differ")]
    lines += [f"  - job `{m.job_id}`: ledger ${m.ledger_usd:.2f}, bill ${m.provider_usd:.2f} "
              f"({m.problem})" for m in result.mismatches]
    lines += [f"  - found only on the bill, added to the ledger: job `{c.job_id}` "
              f"(clip `{c.clip_id[:12]}`) ${c.usd:.2f}" for c in found.reconciled]
    if found.not_reconcilable:
        lines.append("  - not reconcilable job by job (the provider's usage names no job): "
                     + ", ".join(found.not_reconcilable))
    lines += [f"  - {account}: the provider's costs for {day} exceed this home's ledger by "
              f"${gap:.2f} (no job named: a charge the ledger lacks, or another user of the key)"
              for account, days in found.day_gaps.items() for day, gap in days.items()]
    return "\n".join(lines) + "\n"
