"""The archive: clips/<yyyy>/<mm>/<dd>/<clip_id>.mp4 (submit date, UTC) plus a sidecar JSON.

Invariant: write-once, on a local folder or on any fsspec object store (s3://, gs://, ...).
Locally a file is streamed to a temporary name beside its final place and then hard-linked to
the final name — link(2) fails if the name exists, so nothing is ever overwritten, and a reader
sees the whole file or none. On an object store the bytes are staged in a local temporary file
(MP4 muxers seek, object-store writers do not) and then put with a condition that the key does
not exist (S3 `If-None-Match: *`): a second writer gets 412 and learns the clip is archived.
A trimmed copy sits beside the original as <clip_id>.trimmed.mp4; the sidecar holds both
checksums. Whether a clip is archived is read from the journal first, so nothing is downloaded
twice.

Locations are strings: an absolute path for a local archive, a full URL (s3://bucket/...) for an
object store — what the journal, the ledger's sidecar and the artifacts show.

A temporary file carries its writer's pid (`.<name>.<pid>-<uuid>.part`): one left by a process
that died (SIGKILL) is removed by the next download into that folder or by the sweep
(`remove_partials`), never one a live process is still writing.
"""

import hashlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from storage.places import open_place


class AlreadyArchived(FileExistsError):
    """The final name exists: the archive is write-once."""


PARTIAL = re.compile(r"^(\.[^/]+\.|reelflow-)(?P<pid>\d+)-[0-9a-f]{32}[^/]*\.part$")
LEGACY_PARTIAL = re.compile(r"^\.[^/]+\.[0-9a-f]{32}\.part$")  # before pids: owner unknown
LEGACY_PARTIAL_AGE_S = 24 * 3600


def _age_s(path: Path) -> float:
    try:
        return datetime.now(UTC).timestamp() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Archive:
    def __init__(self, url: str | Path, storage_options: dict[str, Any] | None = None):
        self.place = open_place(url, storage_options)
        self.fs, self.root, self.local = self.place.fs, self.place.root, self.place.local

    def path_for(self, clip_id: str, submitted_at: datetime, suffix: str = ".mp4") -> str:
        day = submitted_at.strftime("%Y/%m/%d")
        return self._location(f"{self.root}/clips/{day}/{clip_id}{suffix}")

    @staticmethod
    def beside(location: str, suffix: str) -> str:
        """<clip_id>.mp4 → <clip_id><suffix> in the same folder (sidecar, trimmed copy)."""
        return location.removesuffix(".mp4") + suffix

    def location_in(self, relative: str) -> str:
        """The location of `relative` (e.g. clips/2026/11/25/<id>.mp4) in this archive."""
        return self._location(f"{self.root}/{relative.lstrip('/')}")

    def relative(self, location: str) -> str:
        """The inverse of location_in."""
        return location.removeprefix(self._location(self.root)).lstrip("/")

    def _location(self, path: str) -> str:
        return self.place.location(path)

    def exists(self, location: str) -> bool:
        return self.fs.exists(location)

    def size(self, location: str) -> int:
        return self.fs.size(location)

    def sha256(self, location: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(location, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    @contextmanager
    def reading(self, location: str) -> Iterator[str | BinaryIO]:
        """Something PyAV opens: the path itself locally, a seekable remote file otherwise."""
        if self.local:
            yield location
            return
        with self.fs.open(location, "rb") as handle:
            yield handle

    def link(self, location: str) -> str:
        """What a person clicks in the UI: a file:// URI locally, the object's URL otherwise."""
        return Path(location).resolve().as_uri() if self.local else location

    @contextmanager
    def writing(self, final: str) -> Iterator[BinaryIO]:
        """A temporary file; on success it becomes `final`, never replacing what is there."""
        tag = f"{os.getpid()}-{uuid.uuid4().hex}"
        if self.local:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(final).with_name(f".{Path(final).name}.{tag}.part")
        else:
            fd, name = tempfile.mkstemp(prefix=f"reelflow-{tag}", suffix=".part")
            os.close(fd)
            tmp = Path(name)
        try:
            with tmp.open("wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            self._commit(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def _commit(self, tmp: Path, final: str) -> None:
        try:
            if self.local:
                os.link(tmp, final)
            else:
                self.fs.put_file(str(tmp), final, mode="create")
        except FileExistsError:
            raise AlreadyArchived(f"{final} exists; the archive never overwrites") from None

    def remove_partials(self, folder: Path | None = None) -> list[str]:
        """Delete the temporary files of writers that died, in `folder` (default: the whole
        archive and the local staging folder of an object store); returns what went."""
        if folder is not None:
            candidates = list(folder.glob(".*.part"))
        elif self.local:
            candidates = list(Path(self.root).glob("clips/**/.*.part"))
        else:
            candidates = list(Path(tempfile.gettempdir()).glob("reelflow-*.part"))
        removed = []
        for path in candidates:
            found = PARTIAL.match(path.name)
            dead = not _alive(int(found["pid"])) if found else bool(
                LEGACY_PARTIAL.match(path.name)) and _age_s(path) > LEGACY_PARTIAL_AGE_S
            if dead:
                path.unlink(missing_ok=True)
                removed.append(str(path))
        return removed

    def set_aside(self, location: str) -> str | None:
        """Move a damaged file out of the clip's name, kept beside it for a person to look
        at; None when there is nothing there."""
        if not self.exists(location):
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        aside = f"{location}.damaged-{stamp}"
        self.fs.mv(location, aside)
        return aside

    def copy_to(self, location: str, other: "Archive", target: str, digest: str) -> bool:
        """Copy `location` to `target` in `other` (write-once) unless it is there, and only a
        source that has checksum `digest`; True when `other` then holds it with that
        checksum."""
        if not other.exists(target) and self.exists(location) \
                and self.sha256(location) == digest:
            try:
                with other.writing(target) as sink, self.fs.open(location, "rb") as source:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        sink.write(block)
            except AlreadyArchived:
                pass
        return other.exists(target) and other.sha256(target) == digest

    def write_json(self, final: str, data: dict) -> None:
        with self.writing(final) as handle:
            handle.write(json.dumps(data, indent=2, default=str).encode())
