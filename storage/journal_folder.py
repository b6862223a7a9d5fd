"""The journal in a folder: <root>/<clip_id>/record.json, for one machine or a shared POSIX
filesystem.

A record is created by mkdir (atomic) and written as a temporary file renamed into place. The
record lock and the send lock are flocks on <clip>/lock and <clip>/send.lock: the kernel drops
them when a process dies, even by SIGKILL, and each thread opens its own file description, so
they exclude threads too. A record that cannot be read is moved to _quarantine/ with a note.
Claims are files created with os.link (create-if-absent, never seen half-written).
"""

import fcntl
import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from storage.journal import Claim, JobClaimed, Journal, Quarantined, _check_clip_id
from storage.learned import FolderLearned, Learned
from storage.records import ClipJournal

log = logging.getLogger(__name__)


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`: between processes, and between threads of one (each
    opens its own file description)."""
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class FolderJournal(Journal):
    """A folder of clip records: <root>/<clip_id>/record.json (+ lock, send.lock)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._held = threading.local()  # the records whose lock this thread holds

    def _folder(self, clip_id: str) -> Path:
        return self.root / _check_clip_id(clip_id)

    def read(self, clip_id: str) -> ClipJournal | None:
        """The clip's record; None when it has none, or had one that could not be read (it is
        quarantined now: see `quarantined`)."""
        path = self._folder(clip_id) / "record.json"
        try:
            return ClipJournal.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as err:  # invalid JSON, bytes or fields (ValidationError too)
            self._quarantine(clip_id, path, f"{type(err).__name__}: {err}"[:2000])
            return None

    def _quarantine(self, clip_id: str, path: Path, found: str) -> None:
        folder = self.root / "_quarantine"
        folder.mkdir(exist_ok=True)
        try:
            written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            target = folder / f"{clip_id}.{written:%Y%m%dT%H%M%S%f}.json"
            path.rename(target)  # another reader may have moved it first
        except FileNotFoundError:
            return
        note = Quarantined(clip_id=clip_id, path=str(target), found=found, last_written=written)
        target.with_suffix(".note.json").write_text(note.model_dump_json(indent=2),
                                                    encoding="utf-8")
        log.warning("journal record of clip %s could not be read (%s): moved to %s", clip_id,
                    found.splitlines()[0], target)

    def quarantined(self, clip_id: str | None = None) -> list[Quarantined]:
        folder = self.root / "_quarantine"
        notes = sorted(folder.glob(f"{clip_id or '*'}.*.note.json")) if folder.exists() else []
        return [Quarantined.model_validate_json(n.read_text(encoding="utf-8")) for n in notes]

    def _write(self, record: ClipJournal) -> None:
        folder = self._folder(record.clip_id)
        tmp = folder / f".record.{os.getpid()}.tmp"
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(folder / "record.json")

    @contextmanager
    def changing(self, clip_id: str) -> Iterator[None]:
        """The record's lock, for one transition (re-entered freely by the thread holding
        it: a transition may call another). Never held across an await."""
        held: set[str] = self._held.__dict__.setdefault("clips", set())
        if clip_id in held:
            yield
            return
        folder = self._folder(clip_id)
        folder.mkdir(exist_ok=True)
        with _exclusive(folder / "lock"):
            held.add(clip_id)
            try:
                yield
            finally:
                held.discard(clip_id)

    @contextmanager
    def _send_lock(self, clip_id: str) -> Iterator[None]:
        folder = self._folder(clip_id)
        folder.mkdir(exist_ok=True)
        with _exclusive(folder / "send.lock"):
            yield

    def claim_job(self, protocol: str, job_id: str, clip_id: str, index: int) -> None:
        path = self._claim_path(protocol, job_id)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({"protocol": protocol, "clip_id": clip_id, "step": index,
                                   "job_id": job_id}), encoding="utf-8")
        try:
            os.link(tmp, path)  # create-if-absent, and never seen half-written
        except FileExistsError:
            if self.claimed_by_other(protocol, job_id, clip_id, index):
                raise JobClaimed(f"job {job_id} is claimed by another clip; not adopting it"
                                 ) from None
        finally:
            tmp.unlink()

    def claimed_by_other(self, protocol: str, job_id: str, clip_id: str, index: int) -> bool:
        try:
            held = json.loads(self._claim_path(protocol, job_id).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return True
        return (held.get("clip_id"), held.get("step")) != (clip_id, index)

    def claims(self) -> list[Claim]:
        folder = self.root / "_claims"
        found = [Claim.model_validate_json(p.read_text(encoding="utf-8"))
                 for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(found, key=lambda c: (c.protocol, c.job_id))

    def _claim_path(self, protocol: str, job_id: str) -> Path:
        job = f"{protocol}\0{job_id}"  # a provider's job ids are unique across its accounts
        return self.root / "_claims" / f"{hashlib.sha256(job.encode()).hexdigest()}.json"

    @contextmanager
    def signature_lock(self, signature: str) -> Iterator[None]:
        locks = self.root / "_signatures"
        locks.mkdir(exist_ok=True)
        with _exclusive(locks / f"{signature}.lock"):
            yield

    def records(self) -> list[ClipJournal]:
        found = []
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir() and folder.name.isalnum() and (record := self.read(folder.name)):
                found.append(record)
        return found

    def matching(self, prefix: str) -> list[str]:
        if not prefix.isalnum():
            return []
        return sorted(p.name for p in self.root.glob(f"{prefix}*")
                      if p.is_dir() and p.name.isalnum())

    def learned(self, kind: str) -> Learned:
        """<kind>/ beside the journal's folder (the home's capabilities/ by default)."""
        return FolderLearned(self.root.parent / kind)

    def close(self) -> None:
        """Nothing to let go of: every lock is a file opened for the one transition."""
