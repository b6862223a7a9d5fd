"""wait="suspend": no process waits while the provider renders.

After the submit is journaled, the step asks the job's status once; a job still working has the
step recorded as waiting on it (storage/callbacks.py, where the relay finds it) and the step
parks: its clip unwinds, and once every clip the run makes has parked or finished, the run
writes them as one group and suspends (Prefect's suspend_flow_run: the process exits; the server
keeps the run Suspended until the relay resumes it — once every job of the group has ended, so a
batch's chunk run of 50 clips is resumed once, not 50 times — the backstop does, or the timeout,
the longest step's poll deadline, fails it, leaving the clips `pending` for the sweep). A
resumed run is rescheduled and starts again from the top in a new process: every step before
this one is read back from the journal (the submit is not sent again), and here the status is
asked again — a job that ended goes on to the await, which finds it done and records its charge
from the provider's own status; one still working parks again under a new key (an early wake
costs one status request).

Prefect 3.9 suspends only a deployment's run that is not a subflow (its core policy aborts the
rest), so that is checked before anything is paid, with a relay configured to resume it.
"""

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Literal, TypeVar

import httpx
from prefect.exceptions import TerminationSignal
from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

from models import ClipRequest, JobHandle, RoutePlan, account_key
from models.batch import Wait
from providers.errors import ProviderError
from storage.callbacks import Callbacks, WaitGroup, WaitingRun, step_key
from storage.records import OPEN_STATES, ClipJournal
from tasks.awaiting import poll_plan_of
from tasks.input_files import InputError
from tasks.runtime import Runtime

ENDED = ("succeeded", "failed")
TIMEOUT_MARGIN_S = 60
BACKSTOP_MARGIN_S = 120  # past the job's p95 (time-scaled), a callback is taken as late
T = TypeVar("T")
# a flow's `wait` parameter: left empty (no null branch in the UI's form), REELFLOW_WAIT decides
WaitParameter = Wait | SkipJsonSchema[None]


def check_suspendable(rt: Runtime, *, this_run: bool = True) -> None:
    """A run that will suspend can: a deployment's top-level run (`this_run`; a batch that
    sends chunk runs has them suspend instead), a relay to wake it (raised as the user's
    mistake before any job is sent)."""
    if rt.settings.wait != "suspend":
        return
    from prefect.context import get_run_context

    run = get_run_context().flow_run
    if this_run and (run.deployment_id is None or run.parent_task_run_id is not None):
        raise InputError("wait", "suspend needs a deployment's own run (prefect deployment "
                         "run ...), not a local or nested one; allowed: poll")
    if not rt.settings.webhook_url:
        raise InputError("wait", "suspend needs a relay to wake the run: set "
                         "REELFLOW_WEBHOOK_URL (reelflow relay prints it); allowed: poll")


ADMISSION_WAITS_S = (0.5, 10.0)  # first and longest wait for an account's slot
HOLD_AT_MOST = 25  # submits per hold of an account's lock, so that other workers get a turn


class Admission:
    """One process's side of an account's admission. One coroutine at a time takes its turn
    (the others wait on an asyncio lock: a thread each, waiting on the journal's lock, would
    fill the default pool — 6 threads on 2 cores — and the holder, needing one more for its
    count and its send, would never let go: a chunk of 25 hung so). The journal's lock, once
    taken, is held on while more of this process's submits are queued (up to HOLD_AT_MOST),
    and the jobs in flight are counted once per hold: the count then, plus the jobs sent since
    — jobs ending elsewhere meanwhile only make it an overestimate. Counting reads every open
    record (0.3 s at 1,000 of them), so a count per submit serialized a thousand submits
    behind five minutes of reads."""

    def __init__(self) -> None:
        self.turn = asyncio.Lock()
        self.queued = 0
        self.held: contextlib.AbstractContextManager | None = None
        self.in_flight = self.sent = 0

    async def hold(self, rt: Runtime, lock_name: str, account: str) -> None:
        if self.held is not None:
            return
        lock = rt.journal.signature_lock(lock_name)
        await asyncio.to_thread(lock.__enter__)
        self.held, self.sent = lock, 0
        try:
            self.in_flight = await asyncio.to_thread(rt.journal.jobs_in_flight, account)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self.held is not None:
            self.held.__exit__(None, None, None)
            self.held = None


@contextlib.asynccontextmanager
async def admitted(rt: Runtime, plan: RoutePlan) -> AsyncIterator[None]:
    """A submit of a run that may suspend, once the account has room: no process holds a slot
    while runs are suspended, so the jobs in flight are counted from the journal, under the
    journal's lock for the account, held through the send and its record — one submit at a
    time per account across workers, and never more jobs than its limit."""
    limit = rt.slots.limits.get(plan.concurrency_key, 1)
    lock_name = hashlib.sha256(f"in-flight\n{plan.concurrency_key}".encode()).hexdigest()[:32]
    account = account_key(plan.provider, plan.tier)
    admission = rt.admissions.setdefault(lock_name, Admission())
    wait = ADMISSION_WAITS_S[0]
    while True:
        admission.queued += 1
        try:
            await admission.turn.acquire()
        finally:
            admission.queued -= 1
        try:
            await admission.hold(rt, lock_name, account)
            if admission.in_flight < limit:
                try:
                    yield
                finally:
                    admission.in_flight += 1
                    admission.sent += 1
                    if not admission.queued or admission.sent >= HOLD_AT_MOST:
                        admission.release()
                return
            admission.release()
        finally:
            admission.turn.release()
        await asyncio.sleep(wait)
        wait = min(wait * 2, ADMISSION_WAITS_S[1])


class Waiting(BaseModel):
    """Steps parked on their jobs, and how long the run may stay suspended on them."""

    steps: list[WaitingRun]
    timeout_s: int


class Parked(Exception):
    """Steps whose jobs are still rendering, each recorded as waiting: the run suspends once
    every clip it makes has parked or finished (until_back), and is resumed once for all."""

    def __init__(self, waiting: Waiting):
        super().__init__(f"{len(waiting.steps)} jobs rendering")
        self.waiting = waiting


def all_parked(outcomes: Sequence[object]) -> Waiting | None:
    """What the parked ones of gathered outcomes wait on together (None when none did)."""
    waits = [o.waiting if isinstance(o, Parked) else o for o in outcomes
             if isinstance(o, Parked | Waiting)]
    if not waits:
        return None
    return Waiting(steps=[step for w in waits for step in w.steps],
                   timeout_s=max(w.timeout_s for w in waits))


async def gathered(*calls: Awaitable[T]) -> list[T]:
    """asyncio.gather that lets every call end before a park unwinds the run: a run must not
    suspend (its process exits) while a sibling is still submitting or collecting. A failure
    is raised before a park — the parked jobs are the sweep's to collect then. The worker's
    SIGTERM (a cancel) raised in one call's code cancels the others, as it would have at an
    await: left to run, they waited out and paid for their jobs while the run was torn down."""
    running = [asyncio.ensure_future(call) for call in calls]

    def terminate_siblings(ended: asyncio.Future) -> None:
        if not ended.cancelled() and isinstance(ended.exception(), TerminationSignal):
            for sibling in running:
                sibling.cancel()

    for future in running:
        future.add_done_callback(terminate_siblings)
    outcomes = await asyncio.gather(*running, return_exceptions=True)
    failures = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, Parked)]
    if failures:
        raise next((f for f in failures if isinstance(f, TerminationSignal)), failures[0])
    if (waiting := all_parked(outcomes)) is not None:
        raise Parked(waiting)
    return list(outcomes)  # type: ignore[arg-type]


async def park_unless_ended(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                            handle: JobHandle) -> None:
    """Return once the job has ended; else record the step as waiting and raise Parked."""
    adapter = rt.adapter(rt.catalog.row(plan.model), plan.tier)
    try:
        if (await adapter.status(handle)).state in ENDED:
            return
    except ProviderError:
        pass  # not known now: the callback or the backstop will tell
    waiting = WaitingRun(flow_run_id=rt.run_id, key=rt.wait_key, clip_id=request.clip_id,
                         index=index, job_id=handle.job_id)
    await asyncio.to_thread(Callbacks(rt.journal).wait, waiting)
    timeout = int(poll_plan_of(rt, plan.model, plan.steps[index].seconds,
                               request.resolution).deadline_s) + TIMEOUT_MARGIN_S
    raise Parked(Waiting(steps=[waiting], timeout_s=timeout))


async def until_back(rt: Runtime, make: Callable[[Runtime], Awaitable[T]]) -> T:
    """`make`'s result, suspending the run whenever it parks: the run's steps are written as
    one group and the run suspends (its process exits) until the relay or the backstop resumes
    it — once every job of the group has ended — and it starts again from the top. Should
    every job be back before the group is written, nothing would resume it: it goes on here,
    in a fresh suspension key. A run that cannot suspend is refused before `make` pays
    anything."""
    from prefect import get_run_logger
    from prefect.flow_runs import suspend_flow_run

    check_suspendable(rt)
    callbacks = Callbacks(rt.journal)
    while True:
        try:
            return await make(rt)
        except Parked as parked:
            group = WaitGroup(key=rt.wait_key, flow_run_id=rt.run_id,
                              steps=[step_key(step) for step in parked.waiting.steps])
            if not await asyncio.to_thread(callbacks.suspending, group):
                get_run_logger().info(
                    "%d jobs rendering: suspending (no process waits) until their callbacks "
                    "or the backstop resume this run, at most %d s", len(group.steps),
                    parked.waiting.timeout_s)
                await suspend_flow_run(timeout=parked.waiting.timeout_s, key=group.key)
            await asyncio.to_thread(callbacks.resumed, group)
        rt = rt.with_options(wait_key=uuid.uuid4().hex)


class Woken(BaseModel):
    """What the backstop did about one step waiting on a job."""

    flow_run_id: str
    clip_id: str
    job_id: str
    outcome: Literal["resumed", "not suspended", "stale", "still rendering", "group waits",
                     "api error"]


def _overdue(rt: Runtime, run: WaitingRun, record: ClipJournal) -> bool:
    """Its callback is late: waiting longer than the job's p95 and a margin, time-scaled."""
    step = record.steps[run.index]
    poll = poll_plan_of(rt, step.model, step.seconds, record.request.resolution)
    margin = BACKSTOP_MARGIN_S * rt.time_scale(rt.catalog.row(step.model).protocol)
    return (datetime.now(UTC) - run.since).total_seconds() > poll.p95_s + margin


async def _backstop_says(rt: Runtime, run: WaitingRun) -> str | None:
    """Why the step no longer waits on its job (None: it still does, or not overdue yet)."""
    callbacks = Callbacks(rt.journal)
    record = await asyncio.to_thread(rt.journal.read, run.clip_id)
    step = record.steps[run.index] if record and run.index < len(record.steps) else None
    if step is None or step.handle is None or step.handle.job_id != run.job_id:
        await asyncio.to_thread(callbacks.done_waiting, run)
        return "stale"  # its clip moved on to another job
    if record.state not in OPEN_STATES:
        return "closed"  # the sweep collected it
    if not _overdue(rt, run, record):
        return None
    adapter = rt.adapter(rt.catalog.row(step.model), step.tier)
    try:
        ended = (await adapter.status(step.handle)).state in ENDED
    except ProviderError:
        ended = False
    return "ended" if ended else "still rendering"


async def wake_overdue(rt: Runtime) -> list[Woken]:
    """The backstop for a callback that is late or never comes: each step still waiting on a
    job past its expected latency has the job's status asked; one that ended (or whose clip
    the sweep closed, or moved on) is marked ended as its callback would have, and a run whose
    group that completes is resumed, which collects its clips from the journal and the
    provider as any resumed run does. A run no longer suspended (ended, cancelled) refuses the
    resume, and its group goes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.responses import SetStateStatus
    from prefect.exceptions import ObjectNotFound

    callbacks = Callbacks(rt.journal)
    found = []
    async with get_client() as client:
        for run in await asyncio.to_thread(callbacks.all_waiting):
            def said(outcome: str, run: WaitingRun = run) -> Woken:
                return Woken(flow_run_id=run.flow_run_id, clip_id=run.clip_id,
                             job_id=run.job_id, outcome=outcome)

            why = await _backstop_says(rt, run)
            if why is None:
                continue
            if why == "still rendering":
                found.append(said(why))
                continue
            group = await asyncio.to_thread(callbacks.ended, run)
            if group is None:
                found.append(said("stale" if why == "stale" else "group waits"))
                continue
            try:
                answer = await client.resume_flow_run(group.flow_run_id)
                accepted = answer.status == SetStateStatus.ACCEPT
                # refused: gone for good, or not suspended yet (still parking: it counts
                # the marks itself when it writes its group, so its group stays)
                over = accepted or (
                    await client.read_flow_run(group.flow_run_id)).state.is_final()
            except ObjectNotFound:  # the run was deleted
                accepted, over = False, True
            except (httpx.HTTPError, OSError):
                found.append(said("api error"))  # kept: the next backstop tries again
                continue
            if over:
                await asyncio.to_thread(callbacks.resumed, group)
            found.append(said("resumed" if accepted else "not suspended"))
    return found
