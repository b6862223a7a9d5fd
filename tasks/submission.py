"""submit_job: a step of a clip sent to its provider once, or its recorded job resumed.

The clip's send lock is held across the send (`Journal.sending`), so two runs of one request
never send together. A step left `intent` (the run died mid-send) or `unknown` (the send's outcome
could not be told) is recovered by the provider's lookup, never sent blind: a lookup that cannot
answer leaves it unknown. A job found or created is claimed for this step before it is
recorded, so no job becomes two clips; sends a provider echoes back alike are serialised.
No Prefect retries (DESIGN.md §6): an ambiguous submit is resolved through the journal.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models import ClipRequest, JobHandle, RoutePlan, SubmitRequest, usd_text
from providers.errors import ProviderError, SubmitUnknown
from storage.journal import Clip, JobClaimed
from storage.records import ClipJournal, StepRecord
from tasks import run_names
from tasks.charges import charge
from tasks.runtime import Runtime

LOST_RECORD_WINDOW = timedelta(days=1)


async def submit_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                      submit: SubmitRequest) -> JobHandle:
    """Submit step `index` once; resume the recorded job if there is one. Runs of the clip
    in this process queue on an asyncio lock, so only one thread waits on the send lock (for
    another process's send): waiting threads would take the pool the journal's writes use."""
    async with rt.send_locks.setdefault(request.clip_id, asyncio.Lock()):
        manager = rt.journal.sending(request.clip_id)
        clip = await asyncio.to_thread(manager.__enter__)
        try:
            handle = await _resumed_or_sent(rt, clip, request, plan, index, submit)
        finally:
            manager.__exit__(None, None, None)
    # after the send lock: once, also for a run killed before writing it
    await asyncio.to_thread(charge, rt, request, plan, index, "submit", Decimal(0), "none")
    get_run_logger().log(rt.step_log_level, "submitted %s/%s job %s, step %d (estimate %s for "
                         "the clip)", plan.model, plan.tier, handle.job_id, index,
                         usd_text(Decimal(plan.cost_usd)))
    return handle


async def _resumed_or_sent(rt: Runtime, clip: Clip, request: ClipRequest, plan: RoutePlan,
                           index: int, submit: SubmitRequest) -> JobHandle:
    adapter = rt.adapter(rt.catalog.row(plan.model), plan.tier)
    record = clip.read()
    assert record is not None
    step = record.steps[index] if index < len(record.steps) else None
    if step and step.state == "failed":
        step = None  # a failed job is retried as a new submit with a new key
    if step and step.model == plan.model and step.handle:
        return step.handle
    if step is None or step.model != plan.model:
        step = await asyncio.to_thread(clip.record_intent, StepRecord(
            index=index, kind=plan.steps[index].kind, seconds=plan.steps[index].seconds,
            model=plan.model, tier=plan.tier, key=_step_key(request, plan, record, index),
            **_after_quarantine(rt, record, index)))
    key = step.key or _step_key(request, plan, record, index)

    def taken(job_id: str) -> bool:
        return rt.journal.claimed_by_other(adapter.protocol, job_id, request.clip_id, index)

    async with _serialised(rt, adapter.echo_signature(submit)):
        try:
            handle = None
            # a send may have left: recover it (a step recorded before keys were kept has no
            # send time, and may have been sent too)
            if step.state in ("intent", "unknown") and (
                    step.send_started_at is not None or step.key is None):
                handle = await adapter.recover(
                    submit, key, step.send_started_at or record.created_at, taken=taken)
            if handle is None:
                await asyncio.to_thread(clip.mark_sending, index, key)
                try:
                    handle = await adapter.submit(submit, key, taken=taken)
                except SubmitUnknown:
                    raise  # the step becomes unknown, below
                except ProviderError:
                    # refused before any job existed
                    await asyncio.to_thread(clip.withdraw_intent, index)
                    raise
            try:
                rt.journal.claim_job(adapter.protocol, handle.job_id, request.clip_id, index)
            except JobClaimed as err:
                raise SubmitUnknown(str(err)) from err
        except SubmitUnknown as err:
            await asyncio.to_thread(clip.mark_unknown, index, str(err))
            raise
    await asyncio.to_thread(clip.record_submit, index, handle)
    return handle


def _after_quarantine(rt: Runtime, record: ClipJournal, index: int) -> dict:
    """A clip whose record was quarantined may have sent this step already: until its first
    attempt is over, each step starts `unknown` — looked up (by its first key, or by listing
    from a day before the lost record's last write), sent only if no such job exists."""
    lost = rt.journal.quarantined(record.clip_id)
    if not lost or record.attempts or index < len(record.steps):
        return {}
    return {"state": "unknown", "send_started_at": lost[0].last_written - LOST_RECORD_WINDOW,
            "message": f"the clip's record was unreadable ({lost[0].path}): recovering"}


def _step_key(request: ClipRequest, plan: RoutePlan, record: ClipJournal, index: int) -> str:
    """The step's idempotency key (Kling's external_task_id): the clip, the model, the attempt
    and the step, so a retry after a failed job is a new key and a resend of one step is not."""
    return (f"{request.clip_id[:36]}{plan.model.replace('-', '')[:8]}"
            f"a{len(record.attempts)}s{index}")


@asynccontextmanager
async def _serialised(rt: Runtime, signature: str | None) -> AsyncIterator[None]:
    """Hold the journal's lock for `signature` (across processes) while a send and its
    lookup run; one coroutine per process waits on it, the rest on an asyncio lock (a
    thread each would exhaust the pool that the journal's other locks also need)."""
    if signature is None:
        yield
        return
    async with rt.signature_locks.setdefault(signature, asyncio.Lock()):
        manager = rt.journal.signature_lock(signature)
        await asyncio.to_thread(manager.__enter__)
        try:
            yield
        finally:
            manager.__exit__(None, None, None)


submit_job = task(submit_step, name="submit job", task_run_name=run_names.submit, retries=0,
                  cache_policy=NO_CACHE)
