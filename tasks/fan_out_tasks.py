"""A batch's requests as async tasks in one flow run (no subflow per request: a sync subflow
costs about a second), so one worker keeps hundreds of jobs in flight under the provider limits
(tasks/limits.py). The budget guard is asked before each job is submitted: the first job that
would take committed spend past the budget stops submission, and it and every later request
are left. One request's failure is reported, not the batch's. A progress artifact follows it.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from models import ClipRequest, ClipResult, RoutePlan, usd_text
from models.batch import BatchItem, Manifest, ManifestRow
from tasks import run_names
from tasks.batch_plan import BatchPlan
from tasks.budget import BudgetGuard, BudgetReached
from tasks.dispatch import make
from tasks.progress import Progress
from tasks.runtime import Runtime
from tasks.suspending import Parked, Waiting, gathered

API_ATTEMPTS, API_BACKOFF_S = 4, 2.0
T = TypeVar("T")


async def run_in_tasks(rt: Runtime, manifest: Manifest, plan: BatchPlan,
                       guard: BudgetGuard) -> list[BatchItem]:
    unique = manifest.unique()
    rt = rt.with_options(before_submit=guard.before_submit)
    fits = guard.fitting([(item.request.clip_id, plan.estimate(item.request.clip_id))
                          for item in unique if not rt.journal.done(item.request.clip_id)])
    finished = 0

    async def one(item: ManifestRow, progress: Progress) -> BatchItem:
        nonlocal finished
        run_names.ROW.set(item.row)  # this request's own task: its task runs carry the row
        outcome = await _request(rt, manifest, plan, guard, item, fits)
        finished += 1
        progress.report(finished / len(unique), "done" if finished == len(unique) else "running",
                        detail=f"{finished} of {len(unique)} requests")
        return outcome

    async with Progress(f"batch-{manifest.batch_id}", f"batch {manifest.batch_id}",
                        state=f"0 of {len(unique)} requests") as progress:
        # a row whose job is still rendering parks (wait=suspend): once every row has parked
        # or finished, the run suspends on all of them at once
        return await gathered(*(one(item, progress) for item in unique))


async def _request(rt: Runtime, manifest: Manifest, plan: BatchPlan, guard: BudgetGuard,
                   item: ManifestRow, fits: set[str]) -> BatchItem:
    request = item.request.model_copy(update={"batch_id": manifest.batch_id})
    clip = request.clip_id
    base = plan.columns(item)
    try:
        if rt.journal.done(clip):  # its files verified (fetched again if gone)
            result, status = await batch_row(rt, quote(request)), "already_done"
        elif clip not in fits:
            raise BudgetReached(f"not submitted: {usd_text(plan.estimate(clip))} more would "
                                f"take committed spend past the {usd_text(guard.budget)} "
                                "budget (rows are taken in manifest order)")
        else:
            with guard.item(clip):
                result = await _surviving_api_errors(
                    lambda: batch_row(rt, quote(request), quote(plan.plans[clip])),
                    f"row {item.row}")
                if isinstance(result, Waiting):  # inside: its commitment stays open
                    raise Parked(result)
            status = "done"
        # the clip made: an extension row's is its request pinned to the parent's model,
        # resolution and framing (tasks/parents.py), so not the row's own id
        return BatchItem(**{**base, "model": result.model, "clip_id": result.clip_id},
                         status=status, cost_usd=result.cost_usd, path=result.path)
    except Parked:
        raise
    except BudgetReached as err:  # refused before paying (more)
        rt.journal.leave_for_budget(clip, rt.run_id, str(err))
        return BatchItem(**base, status="left", error=str(err),
                         cost_usd=float(rt.journal.spent(clip)))
    except Exception as err:  # one request's failure is reported, not the batch's
        return BatchItem(**base, status="failed", error=f"{type(err).__name__}: {err}",
                         cost_usd=float(rt.journal.spent(clip)))


async def made_or_parked(rt: Runtime, request: ClipRequest,
                         plan: RoutePlan | None = None) -> ClipResult | Waiting:
    """The row's clip, or the jobs it waits on when it parked: an answer, so that the row's
    task run ends Completed, not Failed, when its run suspends."""
    try:
        return await make(rt, request, plan)
    except Parked as parked:
        return parked.waiting


# one task run per row: its state and logs are the row's (its steps run inside it:
# tasks/step_runs.py)
batch_row = task(made_or_parked, name="batch row", task_run_name=run_names.row, retries=0,
                 cache_policy=NO_CACHE)


def api_failure(err: BaseException) -> bool:
    """The Prefect API failed, not the request: a 5xx from the server, or a task's tag or
    global concurrency slot it could not grant because of one (a limit that does not exist is
    not this: it has no cause)."""
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.exceptions import PrefectHTTPStatusError

    if isinstance(err, PrefectHTTPStatusError):
        return err.response.status_code >= 500
    return isinstance(err, ConcurrencySlotAcquisitionError) and err.__cause__ is not None


async def _surviving_api_errors(call: Callable[[], Awaitable[T]], label: str) -> T:
    """`call` again (backing off) when the Prefect API failed under it — an overloaded
    server answers 503 to some of a thousand clips' task runs. Safe: the journal resumes the
    clip where it was, and pays each job once."""
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as err:
            attempt += 1
            if not api_failure(err) or attempt == API_ATTEMPTS:
                raise
            get_run_logger().warning("%s: the Prefect API failed (%s); going on from the "
                                     "journal", label, err)
            await asyncio.sleep(API_BACKOFF_S * 2 ** (attempt - 1))
