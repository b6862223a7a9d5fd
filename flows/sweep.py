"""sweep_archive (hourly): finish what runs left open, and keep the archive honest.

1. Open clips with a job at the provider are resumed through the code a run uses; unknown
   submits are recovered by lookup, never sent blind (tasks/sweeping.py).
   Runs suspended on a job whose callback is late (or lost) are resumed once the job has
   ended (tasks/suspending.py: the backstop).
2. Every job's charges are compared with the provider's own bill (tasks/reconciling.py); what
   only the bill has is written as `reconciled` ledger rows.
3. Checksums are re-verified across the archive; a missing or corrupt file is fetched again
   (from the replica, the provider, or its parts), else its clip is lost — said so.
4. The ledger's closed days are compacted (row counts checked before old parts go).
5. Retention, with a replica configured: provider copies deleted where the protocol can, and
   local files past their retention, once the replica holds verified copies — never the only
   copy; without one, the provider's copy stays until its own expiry.

The run ends Failed when a clip is lost or could not be put back, after its report artifact.
"""

from prefect import flow

from tasks.reconciling import reconcile_task
from tasks.runtime import clip_run
from tasks.suspending import wake_overdue
from tasks.sweep_report import SweepReport, publish_sweep
from tasks.sweeping import apply_retention, compact_ledger, resume_open, verify_archive


@flow(name="sweep-archive", retries=0, log_prints=True)
async def sweep_archive() -> SweepReport:
    """Resume open clips, reconcile, verify the archive, compact the ledger, apply retention."""
    async with clip_run() as rt:
        resumed, left_open = await resume_open(rt)
        woken = await wake_overdue(rt)
        reconciliation = await reconcile_task(rt)
        verified = await verify_archive(rt)
        compacted = await compact_ledger(rt)
        retained = await apply_retention(rt)
        return await publish_sweep(SweepReport(
            resumed=resumed, left_open=left_open, reconciliation=reconciliation,
            verified=verified, compacted=compacted, retained=retained,
            quarantined=rt.journal.quarantined(), woken=woken))
