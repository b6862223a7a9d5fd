"""Where the ledger's part files live: a folder, or an object store through fsspec.

Layout (both): <root>/date=<event date>/run=<flow run id>/part-<n>.parquet. Invariant: a part
file appears whole and is never overwritten. In a folder the writer claims a number with an
O_EXCL marker, writes a temporary name and renames it (storage/ledger.py). On an object store a
PUT appears whole, so the part is put directly on the condition that its key does not exist
(S3 `If-None-Match: *`): a number another writer took meanwhile answers 412 and the next number
is tried. The sweep's compaction puts the merged file the same way before it deletes the parts
it replaces: a reader in between sees those rows twice under the same event_ids, and every
reader counts an event_id once.

DuckDB reads an object store through the fsspec filesystem registered on its connection
(`register_filesystem`): its own httpfs extension cannot be downloaded here. Listings of an
object store are never served from fsspec's cache, since other machines write there.
"""

import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from storage.places import open_place

PART = re.compile(r"/date=(?P<day>\d{4}-\d{2}-\d{2})/run=[^/]+/part-[^/]*\.parquet$")


def _is_part(name: str) -> bool:
    """A part file, not a writer's dot-file (a marker, a temporary name)."""
    base = name.rsplit("/", 1)[-1]
    return base.endswith(".parquet") and not base.startswith(".")


class LedgerFiles:
    def __init__(self, place: str | Path, options: dict[str, Any] | None = None):
        self.place = open_place(place, options)

    @property
    def local(self) -> bool:
        return self.place.local

    def folder(self, day: date, run_id: str) -> str:
        return f"{self.place.root}/date={day.isoformat()}/run={run_id}"

    def exists(self) -> bool:
        return self.place.fs.exists(self.place.root)

    def parts(self) -> list[str]:
        """The part files' locations, in the order readers take them (by name)."""
        if not self.local:
            return sorted(self._listed())
        root = Path(self.place.root)
        if not root.exists():
            return []
        return sorted(str(p) for p in root.rglob("*.parquet") if _is_part(p.name))

    def by_day(self) -> dict[date, list[str]]:
        """The part files of each event date, in order."""
        days: dict[date, list[str]] = {}
        for location in self.parts():
            if found := PART.search(location):
                days.setdefault(date.fromisoformat(found["day"]), []).append(location)
        return days

    def stats(self) -> dict[str, tuple[int, int]]:
        """Each part's (size, modification time in ns): what tells a part loaded before from
        a new one."""
        if not self.local:
            return {location: (info["size"], _mtime_ns(info))
                    for location, info in self._listed().items()}
        found = {}
        for path in self.parts():
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # compacted away since it was listed
                continue
            found[path] = (stat.st_size, stat.st_mtime_ns)
        return found

    def _listed(self) -> dict[str, dict]:
        """An object store's part files and their details: one paginated listing, not cached."""
        self.place.fs.invalidate_cache(self.place.root)
        try:
            found = self.place.fs.find(self.place.root, detail=True)
        except FileNotFoundError:
            return {}
        return {self.place.location(name): info for name, info in found.items()
                if _is_part(name)}

    def count(self, folder: str) -> int:
        """How many parts an object store's run folder holds: where a new writer starts."""
        try:
            names = self.place.fs.ls(folder, detail=False, refresh=True)
        except FileNotFoundError:
            return 0
        return sum(_is_part(name) for name in names)

    def put_new(self, folder: str, data: bytes, n: int) -> tuple[str, int]:
        """`data` put on an object store as part `n` of `folder`, or the first free number
        after it, never over an existing key: (its location, its number)."""
        while True:
            target = f"{folder}/part-{n:05d}.parquet"
            try:
                self.place.fs.pipe_file(target, data, mode="create")
                return self.place.location(target), n
            except FileExistsError:
                n += 1

    def retire(self, day: date, parts: list[str]) -> None:
        """Delete `parts` (of `day`, replaced by a compacted part); in a folder also the run
        folders of that day left without a part, with their markers."""
        if not self.local:
            self.place.fs.rm(parts)
            return
        for part in parts:
            Path(part).unlink(missing_ok=True)
        for run in Path(self.place.root, f"date={day.isoformat()}").glob("run=*"):
            if not any(run.glob("part-*.parquet")):
                for marker in run.glob(".part-*"):
                    marker.unlink()
                run.rmdir()

    def read_table(self, location: str):
        with self.place.fs.open(location, "rb") as handle:
            return pq.read_table(handle)

    def readable_split(self, paths: list[str]) -> tuple[list[str], list[str]]:
        """(readable, unreadable) of `paths`, footer by footer: a part whose footer cannot be
        read (garbage, truncated, gone) is skipped by every reader and reported, never
        silently."""
        readable: list[str] = []
        unreadable: list[str] = []
        for path in paths:
            try:
                with self.place.fs.open(path, "rb") as handle:
                    pq.read_metadata(handle)
            except (OSError, ValueError):  # pyarrow.ArrowInvalid is a ValueError
                unreadable.append(path)
            else:
                readable.append(path)
        return readable, unreadable

    def attach(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """`con`, able to read the parts' locations (an object store's filesystem registered;
        DuckDB reads a folder itself)."""
        if not self.local:
            con.register_filesystem(self.place.fs)
        return con


def _mtime_ns(info: dict) -> int:
    stamp = info.get("LastModified") or info.get("mtime") or info.get("created") or 0
    seconds = stamp.timestamp() if isinstance(stamp, datetime) else float(stamp)
    return int(seconds * 1e9)
