"""The job journal: one record per clip id, so a paid submit happens once.

Invariant: a record is created (create-if-absent: mkdir is atomic) before a paid submit, and the
provider's handle is written the moment submit returns. Every change happens under an exclusive
lock on the clip's folder (flock; the kernel drops it when a process dies, even by SIGKILL), and
each write is a temporary file renamed into place, so a reader never sees half a record.

Whoever holds the lock and finds `submitted` resumes that job; finds `intent` without a handle
means the last submitter died mid-submit: the caller resolves it with the provider's lookup
(Kling by external_task_id, OpenAI by listing), never by blindly sending again. Terminal states:
done, failed; `pending` (deadline reached, the provider may still finish) and `unknown` (a
submit whose outcome cannot be known) are picked up by the next run or the sweep.
"""

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from models import JobHandle, RemoteVideo

StepState = Literal["intent", "submitted", "succeeded", "failed", "pending", "unknown"]
ClipState = Literal["intent", "running", "done", "failed", "pending", "unknown"]


class StepRecord(BaseModel):
    """One paid generation of the clip."""

    index: int
    kind: str
    seconds: int
    state: StepState = "intent"
    model: str
    tier: str
    key: str | None = Field(
        default=None, description="The idempotency key this step is sent with (Kling's "
        "external_task_id): a rerun looks the job up by the key the send used.")
    send_started_at: datetime | None = Field(
        default=None, description="When the last send of this step began: recovery by listing "
        "looks only at jobs created since.")
    handle: JobHandle | None = None
    remote: RemoteVideo | None = None
    charges: list[str] = Field(default_factory=list, description="Ledger events written.")
    message: str | None = None
    provider_deleted: bool = Field(
        default=False, description="The provider's copy was deleted by the sweep (retention).")


class ClipJournal(BaseModel):
    clip_id: str
    state: ClipState = "intent"
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    request: dict
    plan: dict | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    archive: dict | None = None
    inspection: dict | None = None
    attempts: list[str] = Field(default_factory=list, description="Models tried, with why.")
    spent_usd: str = Field(default="0", description="Every charge recorded for this clip.")
    parent_clip_id: str | None = None


class Journal:
    """A folder of clip records: <root>/<clip_id>/record.json (+ lock)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _folder(self, clip_id: str) -> Path:
        if not clip_id.isalnum():
            raise ValueError(f"not a clip id: {clip_id!r}")
        return self.root / clip_id

    def create(self, record: ClipJournal) -> bool:
        """Create the record if absent; False if another run already has it."""
        folder = self._folder(record.clip_id)
        try:
            folder.mkdir()
        except FileExistsError:
            return False
        self._write(record)
        return True

    def read(self, clip_id: str) -> ClipJournal | None:
        try:
            text = (self._folder(clip_id) / "record.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return ClipJournal.model_validate_json(text)

    def _write(self, record: ClipJournal) -> None:
        record.updated_at = datetime.now(UTC)
        folder = self._folder(record.clip_id)
        tmp = folder / f".record.{os.getpid()}.tmp"
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(folder / "record.json")

    @contextmanager
    def locked(self, clip_id: str) -> Iterator["Locked"]:
        """Exclusive access to one clip's record for the length of the block."""
        folder = self._folder(clip_id)
        folder.mkdir(exist_ok=True)
        with (folder / "lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield Locked(self, clip_id)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def claim(self, protocol: str, job_id: str, clip_id: str, index: int) -> bool:
        """Claim a provider job for one clip step, create-if-absent (O_EXCL): True when this
        step holds the claim (now or already), False when another step holds it. Recovery
        adopts a job only with its claim, so one job never becomes two clips."""
        path = self._claim_path(protocol, job_id)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"protocol": protocol, "clip_id": clip_id, "step": index,
                                   "job_id": job_id}), encoding="utf-8")
        try:
            os.link(tmp, path)  # create-if-absent, and never seen half-written
        except FileExistsError:
            return not self.claimed_by_other(protocol, job_id, clip_id, index)
        finally:
            tmp.unlink()
        return True

    def claimed_by_other(self, protocol: str, job_id: str, clip_id: str, index: int) -> bool:
        """Whether another clip step already holds this job (read only)."""
        try:
            held = json.loads(self._claim_path(protocol, job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True
        return (held.get("clip_id"), held.get("step")) != (clip_id, index)

    def _claim_path(self, protocol: str, job_id: str) -> Path:
        job = f"{protocol}\0{job_id}"  # a provider's job ids are unique across its accounts
        return self.root / "_claims" / f"{hashlib.sha256(job.encode()).hexdigest()}.json"

    @contextmanager
    def signature_lock(self, signature: str) -> Iterator[None]:
        """Serialise, across processes, the sends of requests a provider echoes back alike
        (a protocol without idempotency keys): held from before the send until the job is
        claimed, so that what a lookup finds in the send's window is that send's job."""
        locks = self.root / "_signatures"
        locks.mkdir(exist_ok=True)
        with (locks / f"{signature}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self) -> list[ClipJournal]:
        found = []
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and folder.name.isalnum() and (record := self.read(folder.name)):
                found.append(record)
        return found

    def open_records(self) -> list[ClipJournal]:
        """Clips a run or the sweep must still finish."""
        return [r for r in self.records() if r.state in ("intent", "running", "pending",
                                                          "unknown")]


class Locked:
    """The record of one clip while its lock is held."""

    def __init__(self, journal: Journal, clip_id: str):
        self.journal, self.clip_id = journal, clip_id

    def read(self) -> ClipJournal | None:
        return self.journal.read(self.clip_id)

    def write(self, record: ClipJournal) -> None:
        self.journal._write(record)

    def ensure(self, fresh: ClipJournal) -> tuple[ClipJournal, bool]:
        """The existing record, or `fresh` written now; True when it was created here."""
        existing = self.read()
        if existing is not None:
            return existing, False
        self.write(fresh)
        return fresh, True


def dumps(value: object) -> str:
    return json.dumps(value, default=str)
