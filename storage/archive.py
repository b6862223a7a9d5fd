"""The archive: clips/<yyyy>/<mm>/<dd>/<clip_id>.mp4 (submit date, UTC) plus a sidecar JSON.

Invariant: write-once. A file is streamed to a temporary name beside its final place and then
hard-linked to the final name — link(2) fails if the name exists, so nothing is ever overwritten,
and a reader sees the whole file or none. A trimmed copy sits beside the original as
<clip_id>.trimmed.mp4; the sidecar holds both checksums. Whether a clip is archived is read from
the journal first, so nothing is downloaded twice.

(Object stores through fsspec — a conditional put — are the next step; this is the local folder.)
"""

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO


class AlreadyArchived(FileExistsError):
    """The final name exists: the archive is write-once."""


class Archive:
    def __init__(self, root: Path):
        self.root = root

    def path_for(self, clip_id: str, submitted_at: datetime, suffix: str = ".mp4") -> Path:
        day = submitted_at.strftime("%Y/%m/%d")
        return self.root / "clips" / day / f"{clip_id}{suffix}"

    @contextmanager
    def writing(self, final: Path) -> Iterator[BinaryIO]:
        """A temporary file beside `final`; on success it becomes `final` (never replacing)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
        try:
            with tmp.open("wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            self.commit(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def commit(tmp: Path, final: Path) -> None:
        try:
            os.link(tmp, final)
        except FileExistsError:
            raise AlreadyArchived(f"{final} exists; the archive never overwrites") from None

    def write_json(self, final: Path, data: dict) -> None:
        with self.writing(final) as handle:
            handle.write(json.dumps(data, indent=2, default=str).encode())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
