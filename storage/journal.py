"""The job journal: one record per clip id, changed only through its named transitions, so a
paid submit happens once and nothing paid is forgotten.

The transitions live here, once; where records are kept is a backend (`open_journal`): a folder
(storage.journal_folder: flock, for one machine or a shared POSIX filesystem) or PostgreSQL
(storage.journal_postgres: for workers on many machines). Both give the same guarantees, below.

Invariant: a record is created (create-if-absent) before a paid submit, and the provider's
handle is written the moment submit returns. Every transition takes an exclusive lock on the
clip's record (one the system drops when a process dies, even by SIGKILL), reads the record,
checks that the change is allowed (`InvalidTransition` otherwise) and writes it whole, so a
reader never sees half a record. A send holds a second lock, the clip's send lock, from its
lookup to the record of its job (`Journal.sending`): two runs of one request never send
together. The two are apart because a send is awaited and a transition is not: a transition
run on the event loop that waited on a send in flight in the same process would stop the loop
that send needs to finish (two runs of one request in one process hung that way).

A record that cannot be read (truncated, garbage) is quarantined: moved aside with a note of
what was found, and read as absent — the clip's next run sees the quarantine and recovers its
steps by the provider's lookup instead of sending them blind.

Whoever finds `submitted` resumes that job; `intent` with a send begun, or `unknown`, is
resolved with the provider's lookup, never by blindly sending again. Terminal states: done,
failed, lost; `pending` (deadline reached, the provider may still finish) and `unknown` (a
submit whose outcome cannot be known) are picked up by the next run or the sweep.
"""

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from pydantic import BaseModel

from models import Archived, ClipOutcome, JobHandle, RemoteVideo, RoutePlan, usd_text
from storage.learned import Learned
from storage.records import REPEATABLE, Attempt, BudgetLeft, ClipJournal, StepRecord

P = ParamSpec("P")
R = TypeVar("R")


class Quarantined(BaseModel):
    """An unreadable record, moved aside."""

    clip_id: str
    path: str
    found: str
    last_written: datetime


class Claim(BaseModel):
    """A provider job held by one clip step."""

    protocol: str
    job_id: str
    clip_id: str
    step: int


class JournalUnavailable(RuntimeError):
    """The journal named by the settings cannot be used: its database is unreachable or was
    migrated by a newer reelflow, or its driver is not installed. Nothing was sent: the
    journal is opened before any submit."""


class InvalidTransition(RuntimeError):
    """A change the journal's states do not allow (done → running, a second handle for one
    step, a record that does not exist)."""


class JobClaimed(InvalidTransition):
    """The provider's job is already another clip step's: adopting it would make one job
    two clips."""


def _transition(change: Callable[Concatenate["Clip", P], R]
                ) -> Callable[Concatenate["Clip", P], R]:
    """`change` under the record's lock: its read, check and write one step for every other
    thread and process."""

    @functools.wraps(change)
    def locked(clip: "Clip", *args: P.args, **kwargs: P.kwargs) -> R:
        with clip.journal.changing(clip.clip_id):
            return change(clip, *args, **kwargs)

    return locked


class Clip:
    """One clip's record: the transitions, each read, check, write under the record's lock."""

    def __init__(self, journal: "Journal", clip_id: str):
        self.journal, self.clip_id = journal, clip_id

    def read(self) -> ClipJournal | None:
        return self.journal.read(self.clip_id)

    def _record(self) -> ClipJournal:
        record = self.read()
        if record is None:
            raise InvalidTransition(f"no journal record for clip {self.clip_id}")
        return record

    def _open(self) -> ClipJournal:
        record = self._record()
        if record.state == "done":
            raise InvalidTransition(f"clip {self.clip_id} is done: it cannot run again")
        return record

    def _step(self, record: ClipJournal, index: int) -> StepRecord:
        if index >= len(record.steps):
            raise InvalidTransition(f"clip {self.clip_id} has no step {index}")
        return record.steps[index]

    def _write(self, record: ClipJournal) -> None:
        record.updated_at = datetime.now(UTC)
        self.journal._write(record)

    @_transition
    def start(self, fresh: ClipJournal) -> ClipJournal:
        """Create the record if absent; a record that is not done takes `fresh`'s plan (a
        re-plan) and runs. Returns the record as it now is — done ones untouched."""
        record = self.read()
        if record is None:
            self._write(fresh)
            return fresh
        if record.state != "done" and fresh.plan is not None and record.plan != fresh.plan:
            record.plan, record.state = fresh.plan, "running"
            self._write(record)
        return record

    @_transition
    def record_intent(self, step: StepRecord) -> StepRecord:
        """A new paid step at `step.index`, replacing a failed or other model's step there."""
        record = self._open()
        if step.index > len(record.steps):
            raise InvalidTransition(f"step {step.index} of clip {self.clip_id} comes after "
                                    f"{len(record.steps)} steps")
        if step.index < len(record.steps):
            old = record.steps[step.index]
            if old.handle and old.model == step.model and old.state != "failed":
                raise InvalidTransition(f"step {step.index} of clip {self.clip_id} already has "
                                        f"job {old.handle.job_id}")
        record.replaced += [s for s in record.steps[step.index:] if s.handle]
        record.steps = [*record.steps[:step.index], step]
        record.state = "running"
        self._write(record)
        return step

    @_transition
    def mark_sending(self, index: int, key: str) -> StepRecord:
        """A send of step `index` with idempotency key `key` begins now."""
        record = self._open()
        step = self._step(record, index)
        if step.handle:
            raise InvalidTransition(f"step {index} of clip {self.clip_id} is already sent")
        step.key, step.send_started_at = key, datetime.now(UTC)
        self._write(record)
        return step

    @_transition
    def withdraw_intent(self, index: int) -> None:
        """The provider refused the send before any job existed: forget the step."""
        record = self._open()
        if self._step(record, index).handle:
            raise InvalidTransition(f"step {index} of clip {self.clip_id} has a job")
        record.steps = record.steps[:index]
        self._write(record)

    @_transition
    def record_submit(self, index: int, handle: JobHandle) -> StepRecord:
        """The provider took step `index` as `handle`'s job."""
        record = self._record()
        step = self._step(record, index)
        if step.handle is not None:
            if step.handle.job_id != handle.job_id:
                raise InvalidTransition(f"step {index} of clip {self.clip_id} already has job "
                                        f"{step.handle.job_id}, not {handle.job_id}")
            return step
        if record.state == "done":
            raise InvalidTransition(f"clip {self.clip_id} is done: no new job")
        step.handle, step.state, step.message = handle, "submitted", None
        record.state = "running"
        self._write(record)
        return step

    @_transition
    def mark_unknown(self, index: int, why: str) -> None:
        """The send of step `index` may or may not have made a job: lookups will tell."""
        record = self._open()
        step = self._step(record, index)
        step.state, step.message, record.state = "unknown", why, "unknown"
        self._write(record)

    @_transition
    def record_charge(self, index: int, kind: str, cost: Decimal,
                      write: Callable[[StepRecord, str], None], *,
                      job_id: str | None = None) -> bool:
        """Charge `kind` of step `index` (or of the step, current or replaced, that sent
        `job_id`), once (re-queues and reconciliations each count): `write(step, marker)` puts
        its ledger row down first, so a run killed between the two leaves a row the next run
        writes again under the same event id. False when it was already recorded."""
        record = self._record()
        step = self._step(record, index) if job_id is None else next(
            (s for s in record.every_step() if s.handle and s.handle.job_id == job_id), None)
        if step is None:
            raise InvalidTransition(f"clip {self.clip_id} has no job {job_id}")
        if kind in REPEATABLE:
            marker = f"{kind}:{step.charged(kind)}"
        elif kind in step.charges:
            return False
        else:
            marker = kind
        write(step, marker)
        step.charges.append(marker)
        step.spent_usd += cost
        record.spent_usd += cost
        self._write(record)
        return True

    @_transition
    def finish_step(self, index: int, state: str, why: str | None) -> None:
        """The provider's last word on step `index`: succeeded, failed, or still going at the
        deadline (pending: the clip is picked up later)."""
        if state not in ("succeeded", "failed", "pending"):
            raise InvalidTransition(f"a step cannot finish as {state!r}")
        record = self._record()
        step = self._step(record, index)
        if record.state == "done" and step.state != state:
            raise InvalidTransition(f"clip {self.clip_id} is done: step {index} stays "
                                    f"{step.state}")
        step.state, step.message = state, why  # type: ignore[assignment]
        if state in ("pending", "failed"):
            record.state = state  # type: ignore[assignment]
        self._write(record)

    @_transition
    def cancel_step(self, index: int, stopped: bool, why: str) -> bool:
        """A cancel was asked of step `index`'s job; False when it had already ended. Stopped:
        the provider ended it — the step is cancelled and the clip failed, with why (whatever
        the provider still bills for it reaches the ledger through reconciliation). Not
        stopped (the protocol has no cancel, or the job was past it): the job runs to its end
        and is billed, so the clip is left pending for the sweep or a rerun to collect — paid
        work is never dropped."""
        record = self._record()
        step = self._step(record, index)
        if step.handle is None or step.state not in ("submitted", "pending", "unknown"):
            return False
        step.state = "cancelled" if stopped else "pending"
        step.message = why
        record.state, record.reason = ("failed" if stopped else "pending"), why
        self._write(record)
        return True

    @_transition
    def mark_pending(self, index: int, why: str | None) -> None:
        self.finish_step(index, "pending", why)

    @_transition
    def remember_remote(self, index: int, remote: RemoteVideo) -> None:
        """Where step `index`'s output can be fetched (and its video id to extend)."""
        record = self._record()
        self._step(record, index).remote = remote
        self._write(record)

    @_transition
    def record_archive(self, archived: Archived) -> None:
        """The original is in the archive (write-once: another checksum is refused)."""
        record = self._record()
        if record.archive and record.archive.sha256 != archived.sha256:
            raise InvalidTransition(f"clip {self.clip_id} is archived as "
                                    f"{record.archive.sha256}, not {archived.sha256}")
        record.archive = archived
        self._write(record)

    @_transition
    def record_refetch(self, archived: Archived, trimmed_sha256: str | None = None) -> None:
        """A done clip's files fetched again (they were missing or corrupt): the checksums
        of what is in the archive now."""
        record = self._record()
        if record.state != "done" or record.outcome is None:
            raise InvalidTransition(f"clip {self.clip_id} is not done: nothing to refetch")
        record.archive, record.local_copies_deleted = archived, False
        record.outcome.result.sha256 = archived.sha256
        if trimmed_sha256 and record.outcome.trim:
            record.outcome.trim.trimmed_sha256 = trimmed_sha256
        self._write(record)

    @_transition
    def mark_local_deleted(self) -> None:
        """Retention deleted the clip's local files; its verified replica copies remain."""
        record = self._record()
        if record.state != "done":
            raise InvalidTransition(f"clip {self.clip_id} is not done: its files stay")
        record.local_copies_deleted = True
        self._write(record)

    @_transition
    def mark_done(self, outcome: ClipOutcome, *, archived: Archived | None = None,
                  spent: Decimal | None = None) -> None:
        """Archived, inspected, accepted. A clip stitched from others brings its archive
        entry and its cost (the parts' charges)."""
        record = self._record()
        if record.state in ("failed", "lost"):
            raise InvalidTransition(f"clip {self.clip_id} is {record.state}")
        if archived is not None:
            record.archive = archived
        if spent is not None:
            record.spent_usd = spent
        record.state, record.outcome, record.reason = "done", outcome, None
        self._write(record)

    @_transition
    def mark_unarchived(self, why: str) -> None:
        """Paid, but its output could not be written to the archive (disk full, download
        refused, over the size cap): kept open, and retried by the sweep until its URL
        expires. A done clip whose file went missing becomes unarchived the same way."""
        record = self._record()
        if record.state in ("failed", "lost"):
            raise InvalidTransition(f"clip {self.clip_id} is {record.state}")
        record.state, record.reason = "unarchived", why
        self._write(record)

    @_transition
    def mark_rejected(self, why: str) -> None:
        """A delivered take replaced by a later one: it stays done, paid and archived."""
        record = self._record()
        if record.state != "done" or record.outcome is None:
            raise InvalidTransition(f"clip {self.clip_id} is not done: nothing to reject")
        record.outcome.rejected = why
        self._write(record)

    @_transition
    def note_attempt(self, model: str | None, why: str) -> None:
        """A model given up on (or retried) for this clip; the clip runs on."""
        record = self._open()
        record.attempts.append(Attempt(model=model, why=why, at=datetime.now(UTC)))
        record.state = "running"
        self._write(record)

    @_transition
    def mark_lost(self, why: str) -> str:
        """Paid, but its output can no longer be had: its URL expired before archival, or a
        done clip's file is gone and so is the provider's copy. Returns the reason kept —
        why, what was paid and for which jobs."""
        record = self._record()
        jobs = ", ".join(record.job_ids) or "none"
        reason = f"{why}; {usd_text(record.spent_usd)} paid for jobs {jobs}"
        record.attempts.append(Attempt(why=why, at=datetime.now(UTC)))
        record.state, record.reason = "lost", reason
        self._write(record)
        return reason

    @_transition
    def leave_for_budget(self, run_id: str, why: str) -> None:
        """A batch run's budget guard refused this clip's next submit."""
        record = self.read()
        if record is None:
            return  # refused before its first submit: nothing was journalled
        record.left_for_budget = BudgetLeft(run_id=run_id, why=why)
        self._write(record)

    @_transition
    def adopt(self, record: ClipJournal) -> bool:
        """A record from another journal (a migration), kept as it was written there; False
        when this journal has the clip already (its record wins: it may have moved on)."""
        if self.read() is not None:
            return False
        self.journal._write(record)
        return True

    @_transition
    def mark_provider_deleted(self, index: int) -> None:
        """The sweep deleted the provider's copy of step `index`'s output (retention)."""
        record = self._record()
        self._step(record, index).provider_deleted = True
        self._write(record)


def _of_clip(transition: Callable[Concatenate[Clip, P], R]
             ) -> Callable[Concatenate["Journal", str, P], R]:
    """`transition` as a Journal method taking the clip's id."""

    @functools.wraps(transition)
    def on_clip(journal: "Journal", clip_id: str, *args: P.args, **kwargs: P.kwargs) -> R:
        return transition(Clip(journal, clip_id), *args, **kwargs)

    return on_clip


class Journal(ABC):
    """Clip records and the transitions on them; a backend keeps the records and the locks.

    A backend gives: `read` (None when absent or quarantined), `_write` (only inside
    `changing`), `changing` (the record lock: one transition, re-entrant in its thread, never
    held across an await), `sending` (the send lock, across a send), `signature_lock`, claims
    (create-if-absent), and listing."""

    @abstractmethod
    def read(self, clip_id: str) -> ClipJournal | None: ...

    @abstractmethod
    def _write(self, record: ClipJournal) -> None: ...

    @abstractmethod
    def changing(self, clip_id: str) -> AbstractContextManager[None]: ...

    @abstractmethod
    def _send_lock(self, clip_id: str) -> AbstractContextManager[None]: ...

    @abstractmethod
    def signature_lock(self, signature: str) -> AbstractContextManager[None]:
        """Serialise, across processes, the sends of requests a provider echoes back alike
        (a protocol without idempotency keys): held from before the send until the job is
        claimed, so that what a lookup finds in the send's window is that send's job."""

    @abstractmethod
    def claim_job(self, protocol: str, job_id: str, clip_id: str, index: int) -> None:
        """Claim a provider job for one clip step, create-if-absent: returns when this step
        holds the claim (now or already); `JobClaimed` when another step does. Recovery
        adopts a job only with its claim, so one job never becomes two clips."""

    @abstractmethod
    def claimed_by_other(self, protocol: str, job_id: str, clip_id: str, index: int) -> bool:
        """Whether another clip step already holds this job (read only)."""

    @abstractmethod
    def claims(self) -> list[Claim]:
        """Every claim held, by protocol and job id."""

    @abstractmethod
    def quarantined(self, clip_id: str | None = None) -> list[Quarantined]:
        """Records moved aside as unreadable (of one clip, or all), oldest first."""

    @abstractmethod
    def records(self) -> list[ClipJournal]: ...

    @abstractmethod
    def matching(self, prefix: str) -> list[str]:
        """The ids of the clips whose id starts with `prefix` (letters and digits only)."""

    @abstractmethod
    def learned(self, kind: str) -> Learned:
        """The facts of `kind` learned by every worker using this journal."""

    @abstractmethod
    def close(self) -> None:
        """Let go of whatever the backend holds open (connections)."""

    @contextmanager
    def sending(self, clip_id: str) -> Iterator[Clip]:
        """The clip's send lock, held across a send, its lookup and the record of what came
        of it, so two runs of one request never send together. Awaited sends hold it: enter
        it off the event loop (another run of the clip in this process may hold it)."""
        _check_clip_id(clip_id)
        with self._send_lock(clip_id):
            yield Clip(self, clip_id)

    def start(self, fresh: ClipJournal) -> ClipJournal:
        """Clip.start for `fresh`'s clip."""
        return Clip(self, fresh.clip_id).start(fresh)

    record_intent = _of_clip(Clip.record_intent)
    mark_sending = _of_clip(Clip.mark_sending)
    withdraw_intent = _of_clip(Clip.withdraw_intent)
    record_submit = _of_clip(Clip.record_submit)
    mark_unknown = _of_clip(Clip.mark_unknown)
    record_charge = _of_clip(Clip.record_charge)
    finish_step = _of_clip(Clip.finish_step)
    mark_pending = _of_clip(Clip.mark_pending)
    remember_remote = _of_clip(Clip.remember_remote)
    record_archive = _of_clip(Clip.record_archive)
    mark_done = _of_clip(Clip.mark_done)
    record_refetch = _of_clip(Clip.record_refetch)
    mark_local_deleted = _of_clip(Clip.mark_local_deleted)
    mark_unarchived = _of_clip(Clip.mark_unarchived)
    mark_rejected = _of_clip(Clip.mark_rejected)
    note_attempt = _of_clip(Clip.note_attempt)
    cancel_step = _of_clip(Clip.cancel_step)
    mark_lost = _of_clip(Clip.mark_lost)
    leave_for_budget = _of_clip(Clip.leave_for_budget)
    mark_provider_deleted = _of_clip(Clip.mark_provider_deleted)

    def adopt(self, record: ClipJournal) -> bool:
        """Clip.adopt for `record`'s clip."""
        return Clip(self, record.clip_id).adopt(record)

    def open_records(self) -> list[ClipJournal]:
        """Clips a run or the sweep must still finish."""
        return [r for r in self.records() if r.is_open]

    def jobs_in_flight(self, account: str) -> int:
        """Jobs at the provider on `account` (kling:standard) that have not ended, by the
        journal: what a suspended run's account is charged against its concurrency limit,
        since no process holds a slot for it."""
        return sum(step.handle is not None and step.handle.account == account
                   and step.state in ("submitted", "pending", "unknown")
                   for record in self.open_records() for step in record.steps)

    def done(self, clip_id: str) -> bool:
        """Whether the clip is archived, inspected and accepted."""
        record = self.read(clip_id)
        return bool(record and record.state == "done")

    def spent(self, clip_id: str) -> Decimal:
        """Every charge recorded for the clip (0 when it has no record)."""
        record = self.read(clip_id)
        return record.spent_usd if record else Decimal(0)


def _check_clip_id(clip_id: str) -> str:
    """A clip id names a folder or a row: letters and digits only."""
    if not clip_id.isalnum():
        raise ValueError(f"not a clip id: {clip_id!r}")
    return clip_id


def _is_database(place: str) -> bool:
    return place.startswith(("postgresql://", "postgres://"))


def journal_kept(place: str) -> bool:
    """Whether a journal is kept at `place` yet (a database always; a folder once made), so
    that a reader need not create one to find it empty."""
    return _is_database(place) or Path(place).is_dir()


def open_journal(place: str, *, connections: int = 4) -> Journal:
    """The journal at `place`: a postgresql:// URL, or a folder (created if absent)."""
    if _is_database(place):
        try:
            from storage.journal_postgres import PostgresJournal
        except ImportError as err:
            raise JournalUnavailable(f"a PostgreSQL journal needs psycopg ({err.name} is "
                                     "missing): install reelflow[postgres]") from None
        return PostgresJournal(place, connections=connections)
    from storage.journal_folder import FolderJournal

    return FolderJournal(Path(place))


def new_record(request, plan: RoutePlan | None) -> ClipJournal:
    """The record a clip starts with (Journal.start creates it if absent)."""
    return ClipJournal(clip_id=request.clip_id, request=request, plan=plan,
                       parent_clip_id=request.source_clip)
