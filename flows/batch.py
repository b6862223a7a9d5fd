"""run_batch: a manifest of requests (CSV, JSONL or Parquet), each paid for once.

Before anything is paid every row is validated and planned (a row no model can serve stops the
batch, its field named); duplicates are generated once; clips already done (an earlier run of
this manifest) are skipped and cost nothing. Then the requests fan out — as tasks in this run,
or as runs of the run-batch/chunk deployment shared by every worker of the pool — under each
account's documented concurrency and a budget guard asked before every submit.
With wait=suspend no process waits while the providers render: each chunk run (or, with
fan_out=tasks, this run) suspends once every request it makes has its job in flight, and the
relay resumes it once, when all of them are back. The provider's bill is reconciled at the end;
a summary table sums it up. The run ends Failed
when a request failed or is still pending, after saying which.
"""

from decimal import Decimal

from prefect import flow, get_run_logger

from models import usd_text
from models.batch import BatchChunk, BatchRequest, BatchResult, Manifest
from tasks import run_names
from tasks.batch_plan import plan_manifest
from tasks.batch_summary import batch_result
from tasks.budget import BudgetGuard
from tasks.fan_out_deployments import run_as_deployments
from tasks.fan_out_tasks import run_in_tasks
from tasks.manifest import read_manifest
from tasks.reconciling import reconcile_task
from tasks.runtime import clip_run
from tasks.suspending import check_suspendable, until_back


@flow(name="run-batch", flow_run_name=run_names.batch, retries=0, log_prints=True)
async def run_batch(batch: BatchRequest) -> BatchResult:
    """Every request of the manifest, each paid for once, within the budget when given.

    Args:
        batch: The manifest (a CSV, JSONL or Parquet file of requests on a path every worker
            can read, or on an object store), the budget for all of it, and how its requests
            fan out.
    """
    budget = Decimal(str(batch.budget_usd)) if batch.budget_usd is not None else None
    async with clip_run(per_clip_ui=False, may_suspend=True, wait=batch.wait) as rt:
        if batch.fan_out == "deployments":  # its chunk runs suspend, not this one
            check_suspendable(rt, this_run=False)
        manifest = read_manifest(batch.manifest, absolute_images=batch.absolute_images,
                                 options=rt.settings.inputs_options)
        plan = plan_manifest(rt, manifest, budgeted=budget is not None)
        get_run_logger().info(
            "batch %s: %d rows, %d unique requests, estimated %s%s", manifest.batch_id,
            len(manifest.rows), len(plan.plans), usd_text(plan.total()),
            f", budget {usd_text(budget)}" if budget is not None else "")
        guard = BudgetGuard(budget, rt.journal, list(plan.plans))
        if batch.fan_out == "tasks":
            items = await until_back(rt, lambda rt: run_in_tasks(rt, manifest, plan, guard))
        else:
            items = await run_as_deployments(rt, manifest, plan, guard, batch.chunk_size)
        reconciliation = await reconcile_task(rt)
        return await batch_result(rt, manifest, plan, items, reconciliation, batch.budget_usd)


@flow(name="run-batch", flow_run_name=run_names.chunk, retries=0, log_prints=True)
async def run_batch_chunk(chunk: BatchChunk) -> BatchResult:
    """A chunk of a batch, sent by run-batch with fan_out=deployments; its budget is the
    chunk's share. The batch's run reconciles the bill once, at its end.

    Args:
        chunk: Sent by the batch's run: its id, the chunk's rows and budget share.
    """
    manifest = Manifest(path=f"chunk of batch {chunk.batch_id}", batch_id=chunk.batch_id,
                        rows=chunk.rows)
    budget = Decimal(str(chunk.budget_usd)) if chunk.budget_usd is not None else None
    async with clip_run(per_clip_ui=False, may_suspend=True, wait=chunk.wait) as rt:
        plan = plan_manifest(rt, manifest, budgeted=budget is not None)
        guard = BudgetGuard(budget, rt.journal, list(plan.plans))
        items = await until_back(rt, lambda rt: run_in_tasks(rt, manifest, plan, guard))
        return await batch_result(rt, manifest, plan, items, None, chunk.budget_usd)
