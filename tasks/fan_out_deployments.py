"""A batch's requests as chunk runs of the run-batch/chunk deployment, so every worker of the
pool shares the batch. Admission is in manifest order (the budget guard reserves each
estimate); each chunk run has an idempotency key (this run, chunk index, attempt): a retried
parent never sends a chunk twice. Outcomes are read back from the shared journal."""

import asyncio
from decimal import Decimal

import httpx
from prefect import get_run_logger

from models.batch import CHUNK_DEPLOYMENT, BatchChunk, BatchItem, Manifest, ManifestRow
from tasks.batch_plan import BatchPlan
from tasks.batch_summary import item_from_journal
from tasks.budget import BudgetGuard
from tasks.runtime import Runtime

CHUNK_ATTEMPTS = 3
# seconds between tries of a chunk run whose creation or wait the Prefect API failed under
API_RETRY_WAITS_S = (2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


async def run_as_deployments(rt: Runtime, manifest: Manifest, plan: BatchPlan,
                             guard: BudgetGuard, chunk_size: int) -> list[BatchItem]:
    items: list[BatchItem] = []
    todo: list[ManifestRow] = []
    for item in manifest.unique():
        clip = item.request.clip_id
        if rt.journal.done(clip):
            items.append(item_from_journal(rt, plan.columns(item), "already_done"))
        elif guard.admit(plan.estimate(clip)):
            todo.append(item)
        else:
            items.append(BatchItem(**plan.columns(item), status="left",
                                   error="not submitted: the budget would be crossed"))
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    get_run_logger().info("sending %d requests as %d runs of %s", len(todo), len(chunks),
                          CHUNK_DEPLOYMENT)
    left: dict[str, str] = {}
    runs = await asyncio.gather(*(_send(rt, manifest, plan, guard, index, chunk, left)
                                  for index, chunk in enumerate(chunks)))
    states = {row.request.clip_id: state
              for chunk, state in zip(chunks, runs, strict=True) for row in chunk}
    for item in todo:
        clip = item.request.clip_id
        base = plan.columns(item)
        record = rt.journal.read(clip)
        if record and record.state == "done":
            items.append(item_from_journal(rt, base, "done"))
        elif clip in left:
            items.append(BatchItem(**base, status="left", error=left[clip],
                                   cost_usd=float(rt.journal.spent(clip))))
        else:
            why = (record.reason or (str(record.attempts[-1]) if record.attempts else None)
                   if record else None) or \
                f"{record.state if record else 'not started'} (chunk run {states[clip]})"
            items.append(BatchItem(**base, status="failed", error=why,
                                   cost_usd=float(rt.journal.spent(clip))))
    return items


async def _send(rt: Runtime, manifest: Manifest, plan: BatchPlan, guard: BudgetGuard,
                index: int, chunk: list[ManifestRow], left: dict[str, str]) -> str:
    """One chunk run; its unfinished requests are sent again (a fresh key) when the run ended
    without finishing them — e.g. Crashed before it started, when an overloaded server
    answered the worker 503. Safe: the journal pays each clip once. With a budget the run gets
    the chunk's share — the estimates admitted for its requests and what they had cost before,
    less what its finished ones cost — and its own guard, asked before each submit, keeps
    failure charges and fallbacks within it; requests it left for the budget are not sent
    again."""
    spent = rt.journal.spent
    clips = [row.request.clip_id for row in chunk]
    share = sum((plan.estimate(c) + spent(c) for c in clips), Decimal(0))
    state = "unknown"
    for attempt in range(CHUNK_ATTEMPTS):
        sending = {row.request.clip_id for row in chunk}
        budget_share = None if guard.budget is None else float(share - sum(
            (spent(c) for c in clips if c not in sending), Decimal(0)))
        parameters = BatchChunk(batch_id=manifest.batch_id, rows=chunk, budget_usd=budget_share,
                                wait=rt.settings.wait)
        run = await _chunk_run(f"{rt.run_id}:{index}:{attempt}",
                               {"chunk": parameters.model_dump(mode="json")},
                               suspends=rt.settings.wait == "suspend")
        state = run.state.name if run.state else "unknown"
        for clip in sending:
            record = rt.journal.read(clip)
            note = record.left_for_budget if record else None
            if note is not None and note.run_id == str(run.id):
                left[clip] = note.why
        chunk = [row for row in chunk
                 if not rt.journal.done(row.request.clip_id) and row.request.clip_id not in left]
        if not chunk:
            break
        get_run_logger().warning("chunk %d ended %s with %d requests unfinished%s", index,
                                 state, len(chunk), "; sending them again"
                                 if attempt + 1 < CHUNK_ATTEMPTS else "")
    return state


async def _chunk_run(key: str, parameters: dict, *, suspends: bool):
    """The chunk run of idempotency key `key`, awaited to its end (not a subflow when it
    `suspends`: Prefect suspends only a deployment's top-level run). An error of the Prefect API
    while it is created or awaited (a 500 reading its state, a 503, a dropped connection) is
    waited out and the same call made again: the key makes it the same run, created once, so
    nothing is sent twice — one such error used to fail the whole batch (bench fleet, N=600 on
    PostgreSQL) while its chunk runs went on."""
    from prefect.deployments import run_deployment

    for wait in API_RETRY_WAITS_S:
        try:
            return await run_deployment(CHUNK_DEPLOYMENT, idempotency_key=key,
                                        parameters=parameters, as_subflow=not suspends)
        except httpx.HTTPError as err:  # PrefectHTTPStatusError is one
            get_run_logger().warning("the Prefect API failed under chunk run %s (%s): asking "
                                     "again in %.0f s", key, err, wait)
            await asyncio.sleep(wait)
    # the last try: an API still failing now fails the batch, which a rerun resumes
    return await run_deployment(CHUNK_DEPLOYMENT, idempotency_key=key, parameters=parameters,
                                as_subflow=not suspends)
