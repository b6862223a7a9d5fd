"""run_batch: a manifest of requests (CSV, JSONL or Parquet) through generate.

fan_out="tasks": async tasks in one flow run (no subflow per request: a sync subflow costs
about a second), so one worker keeps hundreds of jobs in flight. fan_out="deployments": the
admitted requests go in chunks as runs of the run-batch/chunk deployment (run_deployment with
an idempotency key per chunk), so every worker of the pool shares the batch; outcomes are read
back from the shared journal. Either way the provider limits (tasks/limits.py) hold each
account to its documented concurrency — across workers with REELFLOW_CONCURRENCY_LIMITS=prefect.
Before anything is paid every row is validated and planned: a row no model can serve stops
the batch with that row's field named. Duplicates are generated once; clips already done (an
earlier run of this manifest) are skipped and cost nothing. A budget guard (tasks/budget.py)
is asked before each job is submitted: the first job that would take committed spend (every
charge landed, plus what jobs in flight have still to charge) past the budget stops submission,
and its request and every later one are listed as left. A progress artifact follows the
batch; a table artifact sums it up. The run ends Failed when a request failed or is still
pending, after saying which.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Literal, TypeVar

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from pydantic import BaseModel, Field

from flows.clip_result import ClipResult
from flows.extend import extend
from flows.generate import generate, in_run, route
from flows.progress import Progress
from flows.storyboard import make_storyboard
from models import ClipRequest, RoutePlan, usd_text
from providers.router import PlanError
from tasks.budget import BudgetGuard, BudgetReached
from tasks.manifest import Manifest, ManifestError, ManifestRow, read_manifest
from tasks.reconciling import reconcile_task
from tasks.runtime import Runtime

Status = Literal["done", "already_done", "failed", "left"]
FanOut = Literal["tasks", "deployments"]
CHUNK_DEPLOYMENT = "run-batch/chunk"
CHUNK_ATTEMPTS = 3
API_ATTEMPTS, API_BACKOFF_S = 4, 2.0
LEFT_IN_RUN = "left by the budget in run "
T = TypeVar("T")


class BatchItem(BaseModel):
    row: int = Field(description="Row of the manifest (1 = first request).")
    clip_id: str
    status: Status
    model: str | None = None
    estimate_usd: float | None = None
    cost_usd: float = 0.0
    path: str | None = None
    error: str | None = None
    duplicates: list[int] = Field(default_factory=list, description="Rows asking the same.")


class BatchResult(BaseModel):
    batch_id: str
    manifest: str
    rows: int
    unique: int
    done: int
    already_done: int
    failed: int
    left: int
    spent_usd: float = Field(description="Every charge of this batch's clips, all runs.")
    estimated_usd: float = Field(description="The plans' estimate for every unique request.")
    budget_usd: float | None
    peak_in_flight: dict[str, int] = Field(
        default_factory=dict, description="Most jobs held at once per provider limit.")
    reconciled_usd: float = Field(
        default=0.0, description="Charges found only on the provider's bill at the end, now "
        "in the ledger as `reconciled` rows (0 when the ledger's own capture is complete).")
    not_reconcilable: list[str] = Field(
        default_factory=list, description="Accounts whose usage API names no job.")
    items: list[BatchItem]


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


def plan_all(rt: Runtime, rows: list[ManifestRow]) -> dict[str, RoutePlan]:
    """Every unique request planned before anything is paid; rows no model serves are named.
    A credit-limited account (Kling Free: 66 s a month) takes rows in manifest order until its
    credits are used; later rows are routed elsewhere, saying why — each row alone would fit,
    so the router cannot see it, and the provider would refuse them mid-batch."""
    plans, problems = {}, []
    used: dict[str, float] = {}
    full: dict[str, str] = {}
    for item in rows:
        try:
            while True:  # ends: each turn rules out one more account
                decision = route(item.request, rt, full)
                account = f"{decision.provider}:{decision.tier}"
                tier = rt.catalog.row(decision.model).tier_named(decision.tier)
                cap = tier.monthly_seconds_cap
                if cap is None or used.get(account, 0) + decision.seconds_billed <= cap:
                    break
                full[account] = (f"its {tier.monthly_credits} credits a month ({cap:g} s) are "
                                 "taken by earlier rows of this batch")
            used[account] = used.get(account, 0) + decision.seconds_billed
            plans[item.request.clip_id] = decision
        except PlanError as err:
            problems.append((f"row {item.row}: {err.field}", err.message))
    if problems:
        raise ManifestError(problems[0][0], problems[0][1], problems=problems[:20])
    return plans


async def make(rt: Runtime, request: ClipRequest, run_id: str,
               plan: RoutePlan | None = None) -> ClipResult:
    """One request, whatever its mode: storyboards and extensions have their own paths. A
    single clip starts from the batch's plan (made before anything was paid)."""
    if request.mode == "storyboard":
        return await make_storyboard(rt, request, run_id)
    if request.mode == "extend":
        return await extend(rt, request.source_clip or "", request.prompt or "", request.seconds,
                            request.take, run_id)
    return await generate(rt, request, run_id, planned=plan)


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


def _spent(rt: Runtime, clip_id: str) -> Decimal:
    record = rt.journal.read(clip_id)
    return Decimal(record.spent_usd) if record else Decimal(0)


async def batch(rt: Runtime, manifest: Manifest, run_id: str, budget_usd: float | None = None,
                fan_out: FanOut = "tasks", chunk_size: int = 25) -> BatchResult:
    """The plain orchestration behind run_batch."""
    logger = get_run_logger()
    rt.per_clip_ui = False
    unique = manifest.unique()
    duplicates: dict[str, list[int]] = {}
    for item in manifest.rows:
        duplicates.setdefault(item.request.clip_id, []).append(item.row)
    plans = plan_all(rt, unique)
    estimate = {clip: plan.cost_usd for clip, plan in plans.items()}
    budget = Decimal(str(budget_usd)) if budget_usd is not None else None
    guard = BudgetGuard(budget, rt.journal, [i.request.clip_id for i in unique])
    logger.info("batch %s: %d rows, %d unique requests, estimated %s%s", manifest.batch_id,
                len(manifest.rows), len(unique), usd_text(sum(estimate.values(), Decimal(0))),
                f", budget {usd_text(budget)}" if budget is not None else "")
    finished = 0

    async def one(item: ManifestRow, progress: Progress) -> BatchItem:
        nonlocal finished
        request = item.request.model_copy(update={"batch_id": manifest.batch_id})
        clip = request.clip_id
        base = _columns(item, estimate, plans, duplicates)
        record = rt.journal.read(clip)
        if record and record.state == "done":
            result = await make(rt, request, run_id)  # reads the journal, pays nothing
            outcome = BatchItem(**base, status="already_done", cost_usd=result.cost_usd,
                                path=result.path)
        else:
            try:
                with guard.item(clip):
                    result = await _surviving_api_errors(
                        lambda: make(rt, request, run_id, plans[clip]), f"row {item.row}")
                outcome = BatchItem(**{**base, "model": result.model}, status="done",
                                    cost_usd=result.cost_usd, path=result.path)
            except BudgetReached as err:  # refused before paying (more)
                _note_left(rt, clip, run_id, str(err))
                outcome = BatchItem(**base, status="left", error=str(err),
                                    cost_usd=float(_spent(rt, clip)))
            except Exception as err:  # one request's failure is reported, not the batch's
                outcome = BatchItem(**base, status="failed", error=f"{type(err).__name__}: "
                                    f"{err}", cost_usd=float(_spent(rt, clip)))
        finished += 1
        progress.report(finished / len(unique), f"{finished} of {len(unique)} requests")
        return outcome

    if fan_out == "tasks":
        rt.before_submit = guard.before_submit
        async with Progress(f"batch-{manifest.batch_id}", f"batch {manifest.batch_id}",
                            state=f"0 of {len(unique)} requests") as progress:
            items = await asyncio.gather(*(one(item, progress) for item in unique))
    else:
        items = await _through_deployments(rt, manifest, unique, guard, estimate, plans,
                                           duplicates, run_id, chunk_size)
    reconciliation = await reconcile_task(rt, run_id)
    result = BatchResult(
        batch_id=manifest.batch_id, manifest=manifest.path, rows=len(manifest.rows),
        unique=len(unique), **{s: sum(i.status == s for i in items)
                               for s in ("done", "already_done", "failed", "left")},
        spent_usd=float(sum((_spent(rt, i.clip_id) for i in items), Decimal(0))),
        estimated_usd=float(sum(estimate.values(), Decimal(0))), budget_usd=budget_usd,
        peak_in_flight=dict(rt.slots.peak), items=sorted(items, key=lambda i: i.row),
        reconciled_usd=float(sum((c.usd for c in reconciliation.reconciled), Decimal(0))),
        not_reconcilable=reconciliation.not_reconcilable)
    await _summarise(result)
    if result.failed:
        raise BatchIncomplete.of(result)
    return result


async def _through_deployments(rt: Runtime, manifest: Manifest, unique: list[ManifestRow],
                               guard: BudgetGuard, estimate: dict[str, Decimal],
                               plans: dict[str, RoutePlan], duplicates: dict[str, list[int]],
                               run_id: str, chunk_size: int) -> list[BatchItem]:
    """Admit in manifest order (the budget guard reserves each estimate), then send the
    admitted requests in chunks as runs of CHUNK_DEPLOYMENT, each with an idempotency key
    (this run, chunk index): a retried parent never sends a chunk twice, and several workers
    share the batch. The outcome of every request is read back from the shared journal."""
    from prefect.deployments import run_deployment

    items: list[BatchItem] = []
    todo: list[ManifestRow] = []
    for item in unique:
        clip = item.request.clip_id
        base = _columns(item, estimate, plans, duplicates)
        record = rt.journal.read(clip)
        if record and record.state == "done":
            items.append(_from_journal(rt, base, "already_done"))
        elif guard.admit(estimate[clip]):
            todo.append(item)
        else:
            items.append(BatchItem(**base, status="left",
                                   error="not submitted: the budget would be crossed"))
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    get_run_logger().info("sending %d requests as %d runs of %s", len(todo), len(chunks),
                          CHUNK_DEPLOYMENT)

    left: dict[str, str] = {}

    async def send(index: int, chunk: list[ManifestRow]) -> str:
        """One chunk run; its unfinished requests are sent again (a fresh key) when the run
        ended without finishing them — e.g. Crashed before it started, when an overloaded
        server answered the worker 503. Safe: the journal pays each clip once. With a budget
        the run gets the chunk's share — the estimates admitted for its requests and what they
        had cost before, less what its finished ones cost — and its own guard, asked before
        each submit, keeps failure charges and fallbacks within it; requests it left for the
        budget are not sent again."""
        clips = [row.request.clip_id for row in chunk]
        share = sum((estimate[c] + _spent(rt, c) for c in clips), Decimal(0))
        for attempt in range(CHUNK_ATTEMPTS):
            sending = {row.request.clip_id for row in chunk}
            budget_share = None if guard.budget is None else float(share - sum(
                (_spent(rt, c) for c in clips if c not in sending), Decimal(0)))
            run = await run_deployment(
                CHUNK_DEPLOYMENT, idempotency_key=f"{run_id}:{index}:{attempt}", parameters={
                    "batch_id": manifest.batch_id, "budget_usd": budget_share,
                    "chunk": [row.model_dump(mode="json") for row in chunk]})
            state = run.state.name if run.state else "unknown"
            for clip in sending:
                if (why := _left_in(rt, clip, str(run.id))) is not None:
                    left[clip] = why
            chunk = [row for row in chunk
                     if not _done(rt, row.request.clip_id) and row.request.clip_id not in left]
            if not chunk:
                break
            get_run_logger().warning("chunk %d ended %s with %d requests unfinished%s", index,
                                     state, len(chunk), "; sending them again"
                                     if attempt + 1 < CHUNK_ATTEMPTS else "")
        return state

    runs = await asyncio.gather(*(send(i, chunk) for i, chunk in enumerate(chunks)))
    states = {row.request.clip_id: state
              for chunk, state in zip(chunks, runs, strict=True) for row in chunk}
    for item in todo:
        clip = item.request.clip_id
        base = _columns(item, estimate, plans, duplicates)
        record = rt.journal.read(clip)
        if record and record.state == "done":
            items.append(_from_journal(rt, base, "done"))
        elif clip in left:
            items.append(BatchItem(**base, status="left", error=left[clip],
                                   cost_usd=float(_spent(rt, clip))))
        else:
            why = record.attempts[-1] if record and record.attempts else \
                f"{record.state if record else 'not started'} (chunk run {states[clip]})"
            items.append(BatchItem(**base, status="failed", error=why,
                                   cost_usd=float(_spent(rt, clip))))
    return items


def _note_left(rt: Runtime, clip_id: str, run_id: str, why: str) -> None:
    """The journal says the budget left this clip in this run: a deployments parent reads it
    back, and does not send it again."""
    with rt.journal.locked(clip_id) as locked:
        record = locked.read()
        if record is not None:
            record.attempts.append(f"{LEFT_IN_RUN}{run_id}: {why}")
            locked.write(record)


def _left_in(rt: Runtime, clip_id: str, run_id: str) -> str | None:
    """Why the chunk run `run_id` left this clip for the budget, if it did."""
    record = rt.journal.read(clip_id)
    note = record.attempts[-1] if record and record.attempts else ""
    prefix = f"{LEFT_IN_RUN}{run_id}: "
    return note.removeprefix(prefix) if note.startswith(prefix) else None


def _done(rt: Runtime, clip_id: str) -> bool:
    record = rt.journal.read(clip_id)
    return bool(record and record.state == "done")


def _columns(item: ManifestRow, estimate: dict[str, Decimal], plans: dict[str, RoutePlan],
             duplicates: dict[str, list[int]]) -> dict:
    """What a batch item says before its outcome is known."""
    clip = item.request.clip_id
    return {"row": item.row, "clip_id": clip, "estimate_usd": float(estimate[clip]),
            "model": plans[clip].model, "duplicates": duplicates[clip][1:]}


def _from_journal(rt: Runtime, base: dict, status: Status) -> BatchItem:
    result = ClipResult.model_validate(rt.journal.read(base["clip_id"]).inspection["result"])
    return BatchItem(**{**base, "model": result.model}, status=status,
                     cost_usd=result.cost_usd, path=result.path)


async def _summarise(result: BatchResult) -> None:
    logger = get_run_logger()
    logger.info("batch %s: %d done, %d already done, %d failed, %d left; spent %s",
                result.batch_id, result.done, result.already_done, result.failed, result.left,
                usd_text(Decimal(str(result.spent_usd))))
    left = [i.row for i in result.items if i.status == "left"]
    if left:
        logger.warning("left by the budget guard: rows %s", ", ".join(map(str, left)))
    await acreate_table_artifact(
        key=f"batch-{result.batch_id}-summary",
        description=(f"{result.done + result.already_done} of {result.unique} done, "
                     f"{result.failed} failed, {result.left} left; spent "
                     f"{usd_text(Decimal(str(result.spent_usd)))}"),
        table=[{"row": i.row, "clip": i.clip_id[:12], "status": i.status, "model": i.model,
                "estimate": i.estimate_usd, "cost": i.cost_usd, "path": i.path,
                "error": i.error} for i in result.items])


@flow(name="run-batch", retries=0, log_prints=True)
async def run_batch(manifest: str | None = None, budget_usd: float | None = None,
                    fan_out: FanOut = "tasks", chunk_size: int = 25,
                    chunk: list[ManifestRow] | None = None,
                    batch_id: str | None = None) -> BatchResult:
    """Every request of `manifest` (a CSV, JSONL or Parquet file on a path the workers can
    read), each paid for once, within `budget_usd` when given. fan_out "tasks": async tasks in
    this run; "deployments": chunks of `chunk_size` sent as runs of run-batch/chunk, shared by
    every worker of the pool. `chunk` and `batch_id` are what such a chunk run receives."""
    if chunk is not None:
        parsed = Manifest(path=f"chunk of batch {batch_id}", batch_id=batch_id or "chunk",
                          rows=chunk)
        fan_out = "tasks"
    elif manifest:
        parsed = read_manifest(manifest)
    else:
        raise ManifestError("manifest", "a manifest path (or a chunk) is required")
    return await in_run(lambda rt, run_id: batch(rt, parsed, run_id, budget_usd, fan_out,
                                                 chunk_size))


if __name__ == "__main__":
    from cli.main import main

    sys.exit(main(["batch", *sys.argv[1:]]))
