"""cost_report: the scheduled report — DuckDB over the ledger to tables, charts, projection,
advice and reconciliation, as Prefect artifacts, a self-contained HTML file and exports."""

from decimal import Decimal
from typing import Annotated

from prefect import flow
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from settings import load_settings
from tasks.reconciling import publish_reconciliation, reconcile_task
from tasks.reporting import collect_report, publish_report, reconcile_usage, write_files
from tasks.runtime import clip_run


@flow(name="cost-report", retries=0)
async def cost_report(
    period: str = "month",
    budget_usd: Annotated[float, Field(gt=0)] | SkipJsonSchema[None] = None,
) -> dict:
    """Every dollar and second explained for `period` (month, all, Nd, YYYY-MM).

    Args:
        period: month (this month to date), all, Nd (the last N days) or YYYY-MM.
        budget_usd: The month's budget in USD, to show spend and projection against.
    """
    settings = load_settings()
    # first the provider's bill (its usage APIs): what only the bill has enters the ledger as
    # `reconciled` rows, so the report that follows explains every charge
    async with clip_run() as rt:
        found = await reconcile_task(rt)
    await publish_reconciliation(found, "cost-report-reconciliation")
    result = reconcile_usage(settings, found.bill)
    report = collect_report(settings, period=period,
                            budget_usd=Decimal(str(budget_usd)) if budget_usd else None)
    files = write_files(settings, report)
    return await publish_report(period, report, files, result, found)
