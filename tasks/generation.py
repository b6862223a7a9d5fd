"""The steps of one clip as plain async functions: submit once, await, archive, inspect.

Each function reads and writes the journal under the clip's lock, and flushes a ledger row at
each charge event (submit, complete, fail, re-queue) the moment it is known — so a retried task,
a rerun, a concurrent run of the same request or a run after SIGKILL resumes the recorded job
and never pays twice, and a killed run loses nothing it had paid for.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel

from models import ClipRequest, JobHandle, JobStatus, LedgerRow, RoutePlan, SubmitRequest
from providers import latency
from providers.errors import Expired, ProviderError, SubmitUnknown
from providers.poller import PollOutcome, await_job, plan_for
from providers.pricebook import clip_cost, failed_charge, requeue_charge
from storage.archive import AlreadyArchived
from storage.journal import ClipJournal, StepRecord
from storage.ledger import event_id
from tasks.inspection import Inspection, inspect_file, trim
from tasks.runtime import Runtime

# charge kinds a step may carry more than once
REPEATABLE = ("requeue", "reconciled")


class PendingAtDeadline(RuntimeError):
    """The provider had not finished by k x p95: the job is kept; the next run or the sweep
    collects it and its charge."""


class ClipLost(RuntimeError):
    """A paid output could not be archived (its URL expired first)."""


class Archived(BaseModel):
    path: str
    sha256: str
    bytes: int
    download_s: float
    submitted_at: datetime


async def _locked(rt: Runtime, clip_id: str):
    """Take the clip's lock without blocking the event loop."""
    manager = rt.journal.locked(clip_id)
    locked = await asyncio.to_thread(manager.__enter__)
    return manager, locked


def row(rt: Runtime, request: ClipRequest, plan: RoutePlan, step: StepRecord, kind: str,
        cost: Decimal, charge: str, flow_run_id: str, event_key: str | None = None,
        **fields) -> LedgerRow:
    job_id = step.handle.job_id if step.handle else None
    return LedgerRow(
        event_id=event_id(request.clip_id, step.index, step.model, job_id, event_key or kind),
        event_time=datetime.now(UTC), event_kind=kind, provider=plan.provider,
        model=step.model, tier=step.tier, account=f"{plan.provider}:{step.tier}",
        endpoint=plan.endpoint, job_id=job_id, **request.ledger_columns(),
        seconds_billed=step.seconds, cost_usd=cost, charge_kind=charge, flow_run_id=flow_run_id,
        **fields)


async def submit_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                      submit: SubmitRequest, run_id: str) -> JobHandle:
    """Submit step `index` once; resume the recorded job if there is one.

    A step left `intent` (the run died mid-send) or `unknown` (the send's outcome could not be
    told) is recovered by the provider's lookup, never sent blind: a lookup that cannot answer
    leaves it unknown. A job found or created is claimed for this step before it is recorded,
    so no job becomes two clips; sends a provider echoes back alike are serialised."""
    row_ = rt.catalog.row(plan.model)
    adapter = rt.adapter(row_, plan.tier)
    manager, locked = await _locked(rt, request.clip_id)
    try:
        record = locked.read()
        assert record is not None
        step = record.steps[index] if index < len(record.steps) else None
        if step and step.state == "failed":
            step = None  # a failed job is retried as a new submit with a new key
        if step and step.model == plan.model and step.handle:
            return step.handle
        if step is None or step.model != plan.model:
            step = StepRecord(index=index, kind=plan.steps[index].kind,
                              seconds=plan.steps[index].seconds, model=plan.model,
                              tier=plan.tier, key=_step_key(request, plan, record, index))
            record.steps = [*record.steps[:index], step]
            record.state = "running"
            locked.write(record)
        key = step.key or _step_key(request, plan, record, index)

        def taken(job_id: str) -> bool:
            return rt.journal.claimed_by_other(adapter.protocol, job_id, request.clip_id, index)

        async with _serialised(rt, adapter.echo_signature(submit)):
            try:
                handle = None
                # a send may have left: recover it (a step recorded before keys were kept
                # has no send time, and may have been sent too)
                if step.state in ("intent", "unknown") and (
                        step.send_started_at is not None or step.key is None):
                    handle = await adapter.recover(
                        submit, key, step.send_started_at or record.created_at, taken=taken)
                if handle is None:
                    step.key, step.send_started_at = key, datetime.now(UTC)
                    locked.write(record)
                    try:
                        handle = await adapter.submit(submit, key, taken=taken)
                    except SubmitUnknown:
                        raise  # the step becomes unknown, below
                    except ProviderError:
                        record.steps = record.steps[:index]  # refused before any job existed
                        locked.write(record)
                        raise
                if not rt.journal.claim(adapter.protocol, handle.job_id, request.clip_id, index):
                    raise SubmitUnknown(f"job {handle.job_id} is claimed by another clip; "
                                        "not adopting it")
            except SubmitUnknown as err:
                step.state, step.message, record.state = "unknown", str(err), "unknown"
                locked.write(record)
                raise
        step.handle, step.state, step.message = handle, "submitted", None
        record.state = "running"
        locked.write(record)
        if "submit" not in step.charges:
            rt.ledger.append([row(rt, request, plan, step, "submit", Decimal(0), "none",
                                  run_id)])
            step.charges.append("submit")
            locked.write(record)
        return handle
    finally:
        manager.__exit__(None, None, None)


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


async def await_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                     handle: JobHandle, run_id: str, on_progress=None) -> PollOutcome:
    """Wait for the job within k x p95; record its charge (and any re-queue) as it lands."""
    row_ = rt.catalog.row(plan.model)
    tier = row_.tier_named(plan.tier)
    adapter = rt.adapter(row_, plan.tier)
    seconds = plan.steps[index].seconds
    prior = latency.estimate(row_.latency, seconds, request.resolution, datetime.now(UTC))
    poll_plan = plan_for(prior, time_scale=rt.time_scale(row_.protocol),
                         k=rt.settings.poll_deadline_k)
    states: list[str] = []

    def seen(status: JobStatus, done: float) -> None:
        if states and states[-1] == "running" and status.state == "queued":
            charge(rt, request, plan, index, "requeue",
                    requeue_charge(row_, tier, request.resolution, seconds), "requeue", run_id)
        states.append(status.state)
        if on_progress:
            on_progress(status, done)

    elapsed = (datetime.now(UTC) - handle.submitted_at).total_seconds()
    outcome = await await_job(adapter.status, handle, poll_plan, cancel=adapter.cancel,
                              on_progress=seen, elapsed_at_start=max(0.0, elapsed))
    timing = {"queued_s": round(outcome.queued_s, 3), "running_s": round(
        outcome.waited_s - (outcome.running_seen_s or 0), 3)}
    units = outcome.status.billed_units
    if outcome.state in ("succeeded", "failed") and units is not None:
        # the provider's own deduction counts the re-queues no poll happened to see: a
        # re-queue bills the whole generation again, a failure less than one
        reported = int(units / seconds + 1e-6) - (outcome.state == "succeeded")
        for _ in range(reported - _requeues_recorded(rt, request.clip_id, index)):
            charge(rt, request, plan, index, "requeue",
                    requeue_charge(row_, tier, request.resolution, seconds), "requeue", run_id)
    if outcome.state == "succeeded":
        charge(rt, request, plan, index, "complete",
                clip_cost(tier, request.resolution, seconds), "generation", run_id, **timing)
    elif outcome.state == "failed":
        cost = Decimal(0) if outcome.status.policy else failed_charge(
            row_, tier, request.resolution, seconds)
        charge(rt, request, plan, index, "fail", cost, "failed_generation", run_id, **timing)
    _set_step(rt, request.clip_id, index, outcome.state if outcome.state != "pending"
              else "pending", outcome.status.message)
    return outcome


def charge(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int, kind: str,
            cost: Decimal, charge: str, run_id: str, **fields) -> None:
    with rt.journal.locked(request.clip_id) as locked:
        record = locked.read()
        step = record.steps[index]
        if kind in REPEATABLE:  # each re-queue, each reconciliation is its own charge
            marker = f"{kind}:{sum(c.startswith(kind) for c in step.charges)}"
        elif kind in step.charges:
            return
        else:
            marker = kind
        rt.ledger.append([row(rt, request, plan, step, kind, cost, charge, run_id,
                              event_key=marker, **fields)])
        step.charges.append(marker)
        record.spent_usd = str(Decimal(record.spent_usd) + cost)
        locked.write(record)


def _requeues_recorded(rt: Runtime, clip_id: str, index: int) -> int:
    record = rt.journal.read(clip_id)
    return sum(c.startswith("requeue") for c in record.steps[index].charges)


def _set_step(rt: Runtime, clip_id: str, index: int, state: str, message: str | None) -> None:
    with rt.journal.locked(clip_id) as locked:
        record = locked.read()
        record.steps[index].state = state  # type: ignore[assignment]
        record.steps[index].message = message
        if state in ("pending", "failed"):
            record.state = state  # type: ignore[assignment]
        locked.write(record)


async def archive_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                       handle: JobHandle) -> Archived:
    """Stream the output into the archive, once; the journal says whether it is there."""
    record = rt.journal.read(request.clip_id)
    if record and record.archive:
        return Archived.model_validate(record.archive)
    row_ = rt.catalog.row(plan.model)
    adapter = rt.adapter(row_, plan.tier)
    submitted = record.steps[0].handle.submitted_at if record and record.steps[0].handle \
        else handle.submitted_at
    final = rt.archive.path_for(request.clip_id, submitted)
    started = time.monotonic()
    if rt.archive.exists(final):  # archived by a run killed before it journalled
        digest, size = rt.archive.sha256(final), rt.archive.size(final)
    else:
        for attempt in range(2):
            remote = await adapter.result(handle)
            _remember_remote(rt, request.clip_id, index, remote)
            try:
                with rt.archive.writing(final) as sink:
                    download = await adapter.download(remote, sink)
                digest, size = download.sha256, download.bytes
                break
            except AlreadyArchived:
                digest, size = rt.archive.sha256(final), rt.archive.size(final)
                break
            except Expired as err:
                if attempt:
                    _fail(rt, request.clip_id, f"output expired before archival: {err}")
                    raise ClipLost(f"the output of {handle.job_id} expired before it could "
                                   "be archived; its charge is recorded") from None
    archived = Archived(path=final, sha256=digest, bytes=size,
                        download_s=round(time.monotonic() - started, 3), submitted_at=submitted)
    with rt.journal.locked(request.clip_id) as locked:
        record = locked.read()
        record.archive = archived.model_dump(mode="json")
        locked.write(record)
    return archived


def _remember_remote(rt: Runtime, clip_id: str, index: int, remote) -> None:
    with rt.journal.locked(clip_id) as locked:
        record = locked.read()
        record.steps[index].remote = remote
        locked.write(record)


def _fail(rt: Runtime, clip_id: str, message: str) -> None:
    with rt.journal.locked(clip_id) as locked:
        record = locked.read()
        record.state = "failed"
        record.attempts.append(message)
        locked.write(record)


def inspect_and_trim(rt: Runtime, request: ClipRequest, archived: Archived,
                     expected_seconds: float | None = None) -> tuple[Inspection, dict]:
    """Inspect the original; write a trimmed copy when a flash frame or extra seconds call for
    it (an extension is expected to be parent + added). Returns the inspection and what was
    done."""
    expected = request.seconds if expected_seconds is None else expected_seconds
    started = time.monotonic()
    with rt.archive.reading(archived.path) as source:
        found = inspect_file(source)
    keep = found.seconds
    reasons = []
    if found.flash_frame:
        keep -= 1 / found.fps
        reasons.append("flash frame on the last frame")
    if keep > expected + 0.5 / found.fps:
        keep = expected
        reasons.append(f"longer than asked ({found.seconds:g} s for {expected:g} s)")
    outcome: dict = {"inspection_s": 0.0, "trimmed_path": None, "trimmed_sha256": None,
                     "trim_reasons": reasons, "trim_method": None}
    if reasons:
        trimmed = rt.archive.beside(archived.path, ".trimmed.mp4")
        if not rt.archive.exists(trimmed):
            try:
                with rt.archive.writing(trimmed) as sink, \
                        rt.archive.reading(archived.path) as source:
                    outcome["trim_method"] = trim(source, sink, keep, b_frames=found.b_frames)
            except AlreadyArchived:
                pass
        outcome["trimmed_path"] = trimmed
        outcome["trimmed_sha256"] = rt.archive.sha256(trimmed)
    outcome["inspection_s"] = round(time.monotonic() - started, 3)
    return found, outcome


def asked_size(request: ClipRequest, aspect: str) -> tuple[int, int]:
    short = {"720p": 720, "1080p": 1080, "4k": 2160}[request.resolution]
    a, b = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}.get(aspect, (16, 9))
    return (round(short * a / b), short) if a >= b else (short, round(short * b / a))


def journal_for(request: ClipRequest, plan: RoutePlan) -> ClipJournal:
    return ClipJournal(clip_id=request.clip_id, request=request.model_dump(mode="json"),
                       plan=plan.model_dump(mode="json"), parent_clip_id=request.source_clip)
