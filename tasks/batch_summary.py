"""What a batch answers: its items read back from the journal, the result in all, the summary
table artifact, and `BatchIncomplete` when a request failed (the run ends Failed, after saying
which)."""

from decimal import Decimal

from prefect import get_run_logger
from prefect.artifacts import acreate_table_artifact

from models import usd_text
from models.batch import BatchItem, BatchResult, Manifest, Status
from tasks.batch_plan import BatchPlan
from tasks.reconciling import Reconciliation, publish_reconciliation
from tasks.runtime import Runtime


class BatchIncomplete(RuntimeError):
    """Some requests failed or are still pending: the run ends Failed, after its artifacts.
    `result` is the whole BatchResult (what was done, spent and left)."""

    result: BatchResult | None = None

    @classmethod
    def of(cls, result: BatchResult) -> "BatchIncomplete":
        failed = [i for i in result.items if i.status == "failed"]
        err = cls(f"{len(failed)} of {result.unique} requests failed: " + "; ".join(
            f"row {i.row}: {i.error}" for i in failed)[:2000])
        err.result = result
        return err


def item_from_journal(rt: Runtime, base: dict, status: Status) -> BatchItem:
    """A request done by this batch or an earlier run of it, as the journal holds it."""
    result = rt.journal.read(base["clip_id"]).outcome.result
    return BatchItem(**{**base, "model": result.model}, status=status,
                     cost_usd=result.cost_usd, path=result.path)


async def batch_result(rt: Runtime, manifest: Manifest, plan: BatchPlan, items: list[BatchItem],
                       reconciliation: Reconciliation | None,
                       budget_usd: float | None) -> BatchResult:
    """The batch's answer, logged and left as a table artifact; raises BatchIncomplete when
    a request failed."""
    result = BatchResult(
        batch_id=manifest.batch_id, manifest=manifest.path, rows=len(manifest.rows),
        unique=len(plan.plans), **{s: sum(i.status == s for i in items)
                                   for s in ("done", "already_done", "failed", "left")},
        spent_usd=float(sum((rt.journal.spent(i.clip_id) for i in items), Decimal(0))),
        estimated_usd=float(plan.total()), budget_usd=budget_usd,
        peak_in_flight=dict(rt.slots.peak), items=sorted(items, key=lambda i: i.row),
        reconciled_usd=float(sum((c.usd for c in reconciliation.reconciled), Decimal(0)))
        if reconciliation else 0.0,
        not_reconcilable=reconciliation.not_reconcilable if reconciliation else [])
    await _summarise(result)
    if reconciliation is not None:
        await publish_reconciliation(reconciliation, f"batch-{result.batch_id}-reconciliation")
    if result.failed:
        raise BatchIncomplete.of(result)
    return result


async def _summarise(result: BatchResult) -> None:
    logger = get_run_logger()
    spent = usd_text(Decimal(str(result.spent_usd)))
    logger.info("batch %s: %d done, %d already done, %d failed, %d left; spent %s",
                result.batch_id, result.done, result.already_done, result.failed, result.left,
                spent)
    left = [i.row for i in result.items if i.status == "left"]
    if left:
        logger.warning("left by the budget guard: rows %s", ", ".join(map(str, left)))
    await acreate_table_artifact(
        key=f"batch-{result.batch_id}-summary",
        description=(f"{result.done + result.already_done} of {result.unique} done, "
                     f"{result.failed} failed, {result.left} left; spent {spent}"),
        table=[{"row": i.row, "clip": i.clip_id[:12], "status": i.status, "model": i.model,
                "estimate": _dollars(i.estimate_usd), "cost": _dollars(i.cost_usd),
                "path": i.path or "", "error": i.error or ""} for i in result.items])


def _dollars(amount: float | None) -> str:
    return "" if amount is None else usd_text(Decimal(str(amount)))
