"""The archive sweep's steps: resume, verify, compact, retain (flows/sweep.py wires them).

- resume: every open clip with a job at the provider (pending at a deadline, or a run killed
  mid-poll) is resumed through the same code a run uses — polled, its charge recorded, archived
  before its URL expires, inspected. A submit whose outcome is unknown (or whose send a run was
  killed in) is recovered by the provider's lookup, never sent blind. An intent never sent is
  listed, not touched (sending it would be a payment nobody asked the sweep for).

- verify: every archived clip's file (and trimmed copy) is re-read and its sha256 compared with
  what the journal recorded when it was archived: missing and corrupt files are reported.
- compact: each closed day's ledger parts (before today, UTC) become one part file; the new
  file's row count must equal the old parts' before any old part is deleted. Rows are kept as
  they are (readers deduplicate by event_id), so compaction never changes a report. On an
  object store the same: the merged part is one create-only put, then the old parts are
  deleted; two sweeps racing leave at worst two copies of a row under one event_id.
- retain: a provider-side copy is deleted where the protocol can (once the archive holds a
  verified copy); with a replica configured, archived files are copied there (write-once) and
  verified, and a local file older than the retention period is deleted only when the replica
  holds a verified copy — never the only copy.
"""

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from models import LEDGER_SCHEMA
from storage.archive import Archive
from storage.ledger import LedgerWriter
from storage.ledger_files import LedgerFiles
from storage.records import ClipJournal
from tasks.archiving import ClipLost, ClipUnarchived, finished
from tasks.dispatch import make
from tasks.runtime import Runtime

COMPACTED_RUN = "compacted"


class Resumed(BaseModel):
    clip_id: str
    outcome: str = Field(description="done, or why it is still open.")
    cost_usd: float = 0.0


class Verified(BaseModel):
    """Every done clip's files checked; the damaged ones fetched again where they can be."""

    checked: int = 0
    missing: list[str] = Field(default_factory=list)
    corrupt: list[str] = Field(default_factory=list)
    restored: list[str] = Field(default_factory=list, description="Clips fetched again.")
    lost: list[str] = Field(default_factory=list, description="Clips gone for good, and why.")
    unarchived: list[str] = Field(
        default_factory=list, description="Clips whose refetch could not be written yet.")
    partials_removed: list[str] = Field(
        default_factory=list, description="Temporary files of writers that died.")


class CompactedDay(BaseModel):
    day: str
    parts_before: int
    rows: int


class Retained(BaseModel):
    provider_copies_deleted: list[str] = Field(default_factory=list)
    replicated: list[str] = Field(default_factory=list)
    local_deleted: list[str] = Field(default_factory=list)
    kept_only_copy: list[str] = Field(default_factory=list)


def verify(archive: Archive, records: list[ClipJournal], replica: Archive | None
           ) -> tuple[Verified, list[ClipJournal]]:
    """(what was found, the clips to restore). A clip whose local files retention deleted is
    checked in the replica."""
    found, damaged = Verified(), []
    for record in records:
        bad = False
        for location, digest in record.files():
            found.checked += 1
            where, held = archive, location
            if record.local_copies_deleted and replica is not None:
                where, held = replica, _replica_location(archive, replica, location)
            if not where.exists(held):
                found.missing.append(held)
                bad = True
            elif where.sha256(held) != digest:
                found.corrupt.append(held)
                bad = True
        if bad:
            damaged.append(record)
    return found, damaged


def compact(place: str | Path, today: date, options: dict[str, Any] | None = None
            ) -> list[CompactedDay]:
    """One part per closed day of the ledger at `place` (a folder or an fsspec URL): the
    merged part is written whole and its row count checked before the old parts go."""
    files, done = LedgerFiles(place, options), []
    writer = LedgerWriter(place, COMPACTED_RUN, options)
    for day, parts in sorted(files.by_day().items()):
        if day >= today or len(parts) <= 1:
            continue
        try:
            tables = [files.read_table(p) for p in parts]
        except FileNotFoundError:  # another sweep compacted this day since the listing
            continue
        writer.write(day, pa.concat_tables([_conform(t) for t in tables]))
        files.retire(day, parts)
        done.append(CompactedDay(day=day.isoformat(), parts_before=len(parts),
                                 rows=sum(t.num_rows for t in tables)))
    return done


def _conform(table: pa.Table) -> pa.Table:
    """An older part (fewer columns) in today's schema: missing columns are null."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in LEDGER_SCHEMA]
    return pa.Table.from_arrays(columns, schema=LEDGER_SCHEMA)


async def retain(rt: Runtime, records: list[ClipJournal], replica: Archive | None,
                 keep_days: float | None) -> Retained:
    """`records`: done clips whose files this sweep verified. With no replica every file is
    the only copy: nothing local goes, and the provider's copy is kept until its own expiry
    (a second copy while the archive has one). With a replica, a clip whose every file the
    replica holds verified loses its provider copy, and its local files once older than
    `keep_days`."""
    out = Retained()
    cutoff = datetime.now(UTC) - timedelta(days=keep_days) if keep_days is not None else None
    for record in records:
        files = record.files()
        if not files or record.local_copies_deleted:
            continue
        if replica is None:
            out.kept_only_copy += [location for location, _ in files]
            continue
        copies = [(location, _replica_location(rt.archive, replica, location))
                  for location, _ in files]
        held = [rt.archive.copy_to(location, replica, copy, digest)
                for (location, copy), (_, digest) in zip(copies, files, strict=True)]
        out.replicated += [copy for (_, copy), ok in zip(copies, held, strict=True) if ok]
        out.kept_only_copy += [loc for (loc, _), ok in zip(copies, held, strict=True) if not ok]
        if not all(held):
            continue
        await _delete_provider_copies(rt, record, out)
        if cutoff is not None and record.updated_at < cutoff and rt.archive.local:
            for location, _ in files:
                Path(location).unlink(missing_ok=True)
                out.local_deleted.append(location)
            rt.journal.mark_local_deleted(record.clip_id)
    return out


async def _delete_provider_copies(rt: Runtime, record: ClipJournal, out: Retained) -> None:
    for step in record.steps:
        if step.handle is None or step.remote is None or step.provider_deleted:
            continue
        row = rt.catalog.row(step.model)
        if await rt.adapter(row, step.tier).delete_output(step.handle):
            rt.journal.mark_provider_deleted(record.clip_id, step.index)
            out.provider_copies_deleted.append(step.handle.job_id)


def _replica_location(archive: Archive, replica: Archive, location: str) -> str:
    return replica.location_in(archive.relative(location))


@task(name="resume open clips", retries=0, cache_policy=NO_CACHE)
async def resume_open(rt: Runtime) -> tuple[list[Resumed], list[Resumed]]:
    """(resumed, left open): every open clip with a job or a send to recover, through the
    code a run uses; one clip's trouble is reported and the sweep goes on."""
    resumed, left = [], []
    for record in rt.journal.open_records():
        last = record.steps[-1] if record.steps else None
        if last is None or not (last.handle or last.send_started_at or last.state == "unknown"):
            left.append(Resumed(clip_id=record.clip_id,
                                outcome="never submitted: rerun the request"))
            continue
        try:
            result = await make(rt, record.request)
            resumed.append(Resumed(clip_id=record.clip_id, outcome="done",
                                   cost_usd=result.cost_usd))
        except Exception as err:  # one clip's trouble is reported, the sweep goes on
            resumed.append(Resumed(clip_id=record.clip_id,
                                   outcome=f"{type(err).__name__}: {err}"))
    return resumed, left


def done_records(rt: Runtime) -> list[ClipJournal]:
    return [r for r in rt.journal.records() if r.state == "done"]


@task(name="verify and restore the archive", retries=0, cache_policy=NO_CACHE)
async def verify_archive(rt: Runtime) -> Verified:
    """Every done clip's checksums re-read (in a thread); a missing or corrupt file fetched
    again — from the replica, the provider, or its parts — else the clip is lost, said so,
    and the others go on. Temporary files of dead writers are removed."""
    found, damaged = await asyncio.to_thread(verify, rt.archive, done_records(rt),
                                             rt.replica)
    for record in damaged:
        try:
            await finished(rt, record)
            found.restored.append(record.clip_id)
        except ClipLost as err:
            found.lost.append(str(err))
        except ClipUnarchived as err:
            found.unarchived.append(str(err))
    found.partials_removed = await asyncio.to_thread(rt.archive.remove_partials)
    return found


@task(name="compact ledger", retries=0, cache_policy=NO_CACHE)
async def compact_ledger(rt: Runtime) -> list[CompactedDay]:
    return await asyncio.to_thread(compact, rt.settings.ledger_place, datetime.now(UTC).date(),
                                   rt.settings.ledger_options)


@task(name="apply retention", retries=0, cache_policy=NO_CACHE)
async def apply_retention(rt: Runtime) -> Retained:
    """After verify_archive: every done clip's files are intact (the others are no longer
    done)."""
    return await retain(rt, done_records(rt), rt.replica, rt.settings.local_retention_days)
