"""archive_output: a finished job's output streamed into the archive once, before its URL
expires. The journal says whether it is there; a file a killed run wrote before journalling is
kept (write-once). Prefect retries transient errors only (DESIGN.md §6)."""

import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from models import Archived, ClipRequest, JobHandle, RoutePlan
from providers.errors import Expired, Transient
from storage.archive import AlreadyArchived
from tasks.runtime import Runtime


class ClipLost(RuntimeError):
    """A paid output could not be archived (its URL expired first)."""


async def archive_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                       handle: JobHandle) -> Archived:
    """Stream the output into the archive, once; the journal says whether it is there."""
    record = rt.journal.read(request.clip_id)
    if record and record.archive:
        return record.archive
    adapter = rt.adapter(rt.catalog.row(plan.model), plan.tier)
    first = record.steps[0].handle if record and record.steps else None
    submitted = first.submitted_at if first else handle.submitted_at
    final = rt.archive.path_for(request.clip_id, submitted)
    started = time.monotonic()
    if rt.archive.exists(final):  # archived by a run killed before it journalled
        digest, size = rt.archive.sha256(final), rt.archive.size(final)
    else:
        for attempt in range(2):
            remote = await adapter.result(handle)
            rt.journal.remember_remote(request.clip_id, index, remote)
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
                    rt.journal.mark_lost(request.clip_id,
                                         f"output expired before archival: {err}")
                    raise ClipLost(f"the output of {handle.job_id} expired before it could "
                                   "be archived; its charge is recorded") from None
    archived = Archived(path=final, sha256=digest, bytes=size,
                        download_s=round(time.monotonic() - started, 3), submitted_at=submitted)
    rt.journal.record_archive(request.clip_id, archived)
    return archived


def only_transient(task, task_run, state) -> bool:
    """Retry the task only when it failed on a transient error."""
    try:
        state.result()
    except Transient:
        return True
    except Exception:
        return False
    return False


archive_output = task(archive_step, name="archive output", retries=2, retry_delay_seconds=[1, 4],
                      retry_jitter_factor=0.5, retry_condition_fn=only_transient,
                      cache_policy=NO_CACHE)
