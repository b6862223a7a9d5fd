"""sweep_archive (hourly): finish what runs left open, and keep the archive honest.

1. Every journal entry with a job at the provider (pending at a deadline, or a run killed
   mid-poll) is resumed through the same code a run uses: polled, its charge recorded, its
   output archived before its URL expires, inspected. A submit whose outcome is unknown (or
   whose send a run was killed in) is recovered by the provider's lookup — never sent blind; a
   lookup that still cannot answer leaves it unknown. An intent never sent is listed, not
   touched (sending it would be a new payment nobody asked the sweep for).
2. Every job's charges are compared with the provider's own bill (tasks/reconciling.py); what
   only the bill has is written as `reconciled` ledger rows.
3. Checksums are re-verified across the archive; missing or corrupt files are reported.
4. The ledger's closed days are compacted (row counts checked before old parts go).
5. Retention (tasks/sweeping.py): provider copies deleted where the protocol can, local files
   deleted only when a verified replica exists — never the only copy.

The run ends Failed when a file is missing or corrupt, after its report artifact.
"""

import sys
from datetime import UTC, datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from flows.batch import make
from flows.generate import in_run
from models import ClipRequest
from storage.archive import Archive
from tasks.reconciling import Reconciliation, reconcile_task
from tasks.runtime import Runtime
from tasks.sweeping import CompactedDay, Retained, Verified, compact, retain, verify


class Resumed(BaseModel):
    clip_id: str
    outcome: str = Field(description="done, or why it is still open.")
    cost_usd: float = 0.0


class SweepReport(BaseModel):
    resumed: list[Resumed]
    left_open: list[Resumed] = Field(description="Entries the sweep will not touch, and why.")
    reconciliation: Reconciliation
    verified: Verified
    compacted: list[CompactedDay]
    retained: Retained


class ArchiveDamaged(RuntimeError):
    """Missing or corrupt archive files: the run ends Failed so someone looks."""


@task(name="resume open clips", retries=0, cache_policy=NO_CACHE)
async def resume_open(rt: Runtime, run_id: str) -> tuple[list[Resumed], list[Resumed]]:
    resumed, left = [], []
    for record in rt.journal.open_records():
        last = record.steps[-1] if record.steps else None
        if last is None or not (last.handle or last.send_started_at or last.state == "unknown"):
            left.append(Resumed(clip_id=record.clip_id,
                                outcome="never submitted: rerun the request"))
            continue
        try:
            result = await make(rt, ClipRequest.model_validate(record.request), run_id)
            resumed.append(Resumed(clip_id=record.clip_id, outcome="done",
                                   cost_usd=result.cost_usd))
        except Exception as err:  # one clip's trouble is reported, the sweep goes on
            resumed.append(Resumed(clip_id=record.clip_id,
                                   outcome=f"{type(err).__name__}: {err}"))
    return resumed, left


async def sweep(rt: Runtime, run_id: str) -> SweepReport:
    logger = get_run_logger()
    resumed, left = await resume_open(rt, run_id)
    reconciliation = await reconcile_task(rt, run_id)
    done = [r for r in rt.journal.records() if r.state == "done"]
    verified = verify(rt.archive, done)
    compacted = compact(rt.settings.home_path / "ledger", datetime.now(UTC).date())
    s = rt.settings
    replica = Archive(s.archive_replica, s.archive_replica_options) if s.archive_replica \
        else None
    retained = await retain(rt, done, verified, replica, s.local_retention_days)
    report = SweepReport(resumed=resumed, left_open=left, reconciliation=reconciliation,
                         verified=verified,
                         compacted=compacted, retained=retained)
    logger.info("sweep: %d resumed, %d left open, %d files verified (%d missing, %d corrupt), "
                "%d days compacted, %d provider copies deleted, %d local files deleted",
                len(resumed), len(left), verified.checked, len(verified.missing),
                len(verified.corrupt), len(compacted), len(retained.provider_copies_deleted),
                len(retained.local_deleted))
    await acreate_markdown_artifact(key="sweep-archive", description="the last sweep",
                                    markdown=_markdown(report))
    if verified.missing or verified.corrupt:
        raise ArchiveDamaged(f"missing: {verified.missing}; corrupt: {verified.corrupt}")
    return report


def _markdown(report: SweepReport) -> str:
    lines = ["# Archive sweep", "", "## Resumed"]
    lines += [f"- `{r.clip_id[:12]}` {r.outcome} (${r.cost_usd:.2f})" for r in report.resumed]
    lines += ["", "## Left open"] + [f"- `{r.clip_id[:12]}` {r.outcome}"
                                      for r in report.left_open]
    c = report.reconciliation
    lines += ["", f"## Reconciliation\n{c.checked_jobs} jobs checked against the provider's "
              f"bill; {len(c.reconciled)} charges found only there, now in the ledger"] + [
        f"- `{r.clip_id[:12]}` job {r.job_id}: ${r.usd}" for r in c.reconciled]
    if c.not_reconcilable:
        lines.append(f"- not reconcilable job by job: {', '.join(c.not_reconcilable)}")
    v = report.verified
    lines += ["", f"## Checksums\n{v.checked} files checked; missing {len(v.missing)}, "
              f"corrupt {len(v.corrupt)}"] + [f"- missing `{p}`" for p in v.missing] + \
        [f"- corrupt `{p}`" for p in v.corrupt]
    lines += ["", "## Ledger compaction"] + [
        f"- {d.day}: {d.parts_before} parts → 1 ({d.rows} rows)" for d in report.compacted]
    r = report.retained
    lines += ["", f"## Retention\nprovider copies deleted {len(r.provider_copies_deleted)}, "
              f"replicated {len(r.replicated)}, local files deleted {len(r.local_deleted)}, "
              f"kept as the only copy {len(r.kept_only_copy)}"]
    return "\n".join(lines) + "\n"


@flow(name="sweep-archive", retries=0, log_prints=True)
async def sweep_archive() -> SweepReport:
    """Resume open clips, verify the archive, compact the ledger, apply retention."""
    return await in_run(sweep)


if __name__ == "__main__":
    import asyncio

    sys.exit(0 if asyncio.run(sweep_archive()) else 1)
