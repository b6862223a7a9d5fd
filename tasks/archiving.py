"""archive_output: a finished job's output streamed into the archive once, before its URL
expires — and kept there: a clip is done only while its files are in the archive with the
recorded checksums.

The journal says whether a clip is archived; a file a killed run wrote before journalling is
kept (write-once). An output that cannot be written (disk full, download refused, over the
model's size cap) leaves the paid clip `unarchived` with the reason: the next run or the sweep
fetches it again until its URL expires, then it is `lost`. A done clip whose file is missing
or corrupt is fetched again from the provider while it still has it (a stitched clip is
stitched again from its parts), else it is `lost` with its jobs, cost and why. Prefect retries
transient errors only (DESIGN.md §6).
"""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from models import Archived, ClipRequest, ClipResult, JobHandle, RoutePlan
from providers.errors import Expired, InvalidRequest, Transient
from storage.archive import AlreadyArchived
from storage.records import ClipJournal
from tasks import run_names
from tasks.inspection import inspect_and_trim
from tasks.joining import stitch_into_archive
from tasks.runtime import Runtime
from tasks.step_runs import last_attempt

# what leaves a paid output unarchived (retried later) rather than failing the clip
UNWRITABLE = (OSError, InvalidRequest, Transient)


class ClipLost(RuntimeError):
    """A paid output can no longer be had: its URL expired before it was archived, or its
    archived file is gone and so is the provider's copy. Its charge is recorded."""


class ClipUnarchived(RuntimeError):
    """A paid output could not be written to the archive; the sweep (or a rerun) fetches it
    again while the provider still has it."""


async def archive_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                       handle: JobHandle) -> Archived:
    """Stream the output into the archive, once; the journal says whether it is there."""
    record = rt.journal.read(request.clip_id)
    if record and record.archive:
        return record.archive
    first = record.steps[0].handle if record and record.steps else None
    submitted = first.submitted_at if first else handle.submitted_at
    final = rt.archive.path_for(request.clip_id, submitted)
    started = time.monotonic()
    if rt.archive.exists(final):  # archived by a run killed before it journalled
        digest, size = rt.archive.sha256(final), rt.archive.size(final)
    else:
        try:
            async with rt.archiving:
                digest, size = await _fetch(rt, request.clip_id, plan.model, plan.tier, index,
                                            handle, final)
        except Expired as err:
            reason = rt.journal.mark_lost(request.clip_id, f"the output of {handle.job_id} "
                                          f"expired before it could be archived ({err})")
            raise ClipLost(reason) from None
    archived = Archived(path=final, sha256=digest, bytes=size,
                        download_s=round(time.monotonic() - started, 3), submitted_at=submitted)
    await asyncio.to_thread(rt.journal.record_archive, request.clip_id, archived)
    get_run_logger().log(rt.step_log_level, "archived %s (%.1f MB, sha256 %s…)", final,
                         size / 1e6, digest[:12])
    return archived


async def _fetch(rt: Runtime, clip_id: str, model: str, tier: str, index: int,
                 handle: JobHandle, final: str) -> tuple[str, int]:
    """(sha256, bytes) of the job's output written to `final`: the provider's result asked
    again once if its URL expired (it may hand out a fresh one); Expired when it is gone."""
    row = rt.catalog.row(model)
    adapter = rt.adapter(row, tier)
    if rt.archive.local:  # what a killed download left in this day's folder (once per fetch,
        # not per write: a day's folder holds thousands of files)
        await asyncio.to_thread(rt.archive.remove_partials, Path(final).parent)
    for attempt in range(2):
        try:
            remote = await adapter.result(handle)
            await asyncio.to_thread(rt.journal.remember_remote, clip_id, index, remote)
            async with _writing(rt, final) as sink:
                download = await adapter.download(remote, sink,
                                                  max_bytes=row.max_output_bytes)
            return download.sha256, download.bytes
        except AlreadyArchived:
            return rt.archive.sha256(final), rt.archive.size(final)
        except Expired:
            if attempt:
                raise
        except UNWRITABLE as err:
            if isinstance(err, Transient) and not last_attempt():
                raise  # retried: by Prefect (a task run) or run_step (a plain call)
            why = f"output of job {handle.job_id} not archived: {type(err).__name__}: {err}"
            rt.journal.mark_unarchived(clip_id, why)
            raise ClipUnarchived(f"{why}; the sweep or a rerun fetches it again until its URL "
                                 "expires") from None
    raise AssertionError("unreachable")


@asynccontextmanager
async def _writing(rt: Runtime, final: str) -> AsyncIterator[BinaryIO]:
    """Archive.writing with its ends in a thread: the temporary file's fsync and its link
    into place, or its upload to an object store, would stop the event loop that polls
    every other job (a 50 MB put for seconds)."""
    manager = rt.archive.writing(final)
    sink = await asyncio.to_thread(manager.__enter__)
    try:
        yield sink
    except BaseException as err:
        if not await asyncio.to_thread(manager.__exit__, type(err), err, err.__traceback__):
            raise
    else:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def damaged(rt: Runtime, record: ClipJournal) -> list[str]:
    """The clip's archived files that are missing or not what was recorded."""
    return [f"{location} is {'corrupt' if rt.archive.exists(location) else 'missing'}"
            for location, digest in record.files() if not _intact(rt, location, digest)]


async def finished(rt: Runtime, record: ClipJournal) -> ClipResult:
    """The result of a done clip, its files verified — fetched again (and said so) when one is
    missing or corrupt; ClipLost when the provider no longer has it."""
    problems = await asyncio.to_thread(damaged, rt, record)
    if not problems:
        return record.outcome.result
    get_run_logger().warning("clip %s is done but %s: fetching it again", record.clip_id[:12],
                             "; ".join(problems))
    return await restore(rt, record)


async def restore(rt: Runtime, record: ClipJournal) -> ClipResult:
    """Put a done clip's files back: from the replica when it holds them, else the original
    from the provider (or stitched again from its parts) and the trimmed copy cut again from
    it. Damaged files are set aside, not deleted."""
    replica = rt.replica
    for location, digest in record.files():
        if await asyncio.to_thread(_intact, rt, location, digest):
            continue
        rt.archive.set_aside(location)
        if replica is not None:
            copy = replica.location_in(rt.archive.relative(location))
            await asyncio.to_thread(replica.copy_to, copy, rt.archive, location, digest)
    original = record.archive.path
    if not rt.archive.exists(original):
        if record.steps:
            await _refetch(rt, record, original)
        else:
            parts = [await finished(rt, rt.journal.read(clip))
                     for clip in record.outcome.result.scene_clip_ids]
            await asyncio.to_thread(stitch_into_archive, rt, record.request, parts)
    archived = record.archive.model_copy(update={"sha256": rt.archive.sha256(original),
                                                 "bytes": rt.archive.size(original)})
    trimmed_sha = None
    trim = record.outcome.trim
    if trim and trim.trimmed_path:
        # cut where it was cut; a record from before kept_s: the asked length (an extension's
        # is not known then, so only its flash frame is cut again)
        expected = trim.kept_s or (record.request.seconds if record.request.mode != "extend"
                                   else float("inf"))
        _, trim = await asyncio.to_thread(inspect_and_trim, rt, record.request, archived,
                                          expected)
        trimmed_sha = trim.trimmed_sha256
    rt.journal.record_refetch(record.clip_id, archived, trimmed_sha)
    return rt.journal.read(record.clip_id).outcome.result


def _intact(rt: Runtime, location: str, digest: str) -> bool:
    return rt.archive.exists(location) and rt.archive.sha256(location) == digest


async def _refetch(rt: Runtime, record: ClipJournal, final: str) -> None:
    last = record.steps[-1]
    try:
        if last.provider_deleted or last.handle is None:
            raise Expired("the provider's copy was deleted by retention")
        await _fetch(rt, record.clip_id, last.model, last.tier, last.index, last.handle, final)
    except Expired as err:
        reason = rt.journal.mark_lost(record.clip_id, "its archived file is gone and the "
                                      f"provider no longer has it ({err})")
        raise ClipLost(f"clip {record.clip_id[:12]}: {reason}") from None


archive_output = task(archive_step, name="archive output",
                      task_run_name=run_names.labelled("archive output"), retries=2,
                      retry_delay_seconds=[1, 4], retry_jitter_factor=0.5,
                      retry_condition_fn=lambda task, run, state: _transient(state),
                      cache_policy=NO_CACHE)


def _transient(state: State) -> bool:
    """Retry archive_output only when it failed on a transient error. The engine hands the
    raised error over as the Failed state's data, read there: `state.result()` inside the
    async engine is a coroutine, never awaited, so no error ever counted as transient and
    archive_output never retried (until issue 22 found it)."""
    return isinstance(state.data, Transient)
