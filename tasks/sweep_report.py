"""What a sweep found and did, as a log line and a markdown artifact; `ArchiveDamaged` when a
clip is lost or its files could not be put back, so the run ends Failed and someone looks."""

from prefect import get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from pydantic import BaseModel, Field

from models import usd_text
from storage.journal import Quarantined
from tasks.reconciling import Reconciliation, publish_reconciliation
from tasks.suspending import Woken
from tasks.sweeping import CompactedDay, Resumed, Retained, Verified


class SweepReport(BaseModel):
    resumed: list[Resumed]
    left_open: list[Resumed] = Field(description="Entries the sweep will not touch, and why.")
    reconciliation: Reconciliation
    verified: Verified
    compacted: list[CompactedDay]
    retained: Retained
    quarantined: list[Quarantined] = Field(
        default_factory=list, description="Journal records moved aside as unreadable.")
    woken: list[Woken] = Field(
        default_factory=list, description="Suspended runs whose callback was late: resumed, "
        "or why not.")


class ArchiveDamaged(RuntimeError):
    """Archived clips lost, or not put back yet: the run ends Failed so someone looks."""


async def publish_sweep(report: SweepReport) -> SweepReport:
    """Log and leave the artifact; raise ArchiveDamaged after, when the archive is damaged."""
    verified, retained = report.verified, report.retained
    get_run_logger().info(
        "sweep: %d resumed, %d left open, %d files verified (%d missing, %d corrupt; %d clips "
        "fetched again, %d lost), %d days compacted, %d provider copies deleted, %d local "
        "files deleted", len(report.resumed), len(report.left_open), verified.checked,
        len(verified.missing), len(verified.corrupt), len(verified.restored),
        len(verified.lost), len(report.compacted), len(retained.provider_copies_deleted),
        len(retained.local_deleted))
    for lost in report.quarantined:
        get_run_logger().warning("journal record of clip %s quarantined: %s (%s)",
                                 lost.clip_id[:12], lost.path, lost.found.splitlines()[0])
    await acreate_markdown_artifact(key="sweep-archive", description="the last sweep",
                                    markdown=_markdown(report))
    await publish_reconciliation(report.reconciliation, "sweep-archive-reconciliation")
    if verified.lost or verified.unarchived:
        raise ArchiveDamaged("; ".join(verified.lost + verified.unarchived))
    return report


def _markdown(report: SweepReport) -> str:
    lines = ["# Archive sweep", "", "## Resumed"]
    lines += [f"- `{r.clip_id[:12]}` {r.outcome} ({usd_text(r.cost_usd)})" for r in report.resumed]
    lines += ["", "## Left open"] + [f"- `{r.clip_id[:12]}` {r.outcome}"
                                      for r in report.left_open]
    if report.woken:
        lines += ["", "## Suspended runs whose callback was late"] + [
            f"- run `{w.flow_run_id}` (clip `{w.clip_id[:12]}`, job {w.job_id}): {w.outcome}"
            for w in report.woken]
    c = report.reconciliation
    lines += ["", f"## Reconciliation\n{c.checked_jobs} jobs checked against the provider's "
              f"bill; {len(c.reconciled)} charges found only there, now in the ledger"] + [
        f"- `{r.clip_id[:12]}` job {r.job_id}: {usd_text(r.usd)}" for r in c.reconciled]
    if c.not_reconcilable:
        lines.append(f"- not reconcilable job by job: {', '.join(c.not_reconcilable)}")
    v = report.verified
    lines += ["", f"## Checksums\n{v.checked} files checked; missing {len(v.missing)}, "
              f"corrupt {len(v.corrupt)}; {len(v.restored)} clips fetched again"] + [
        f"- missing `{p}`" for p in v.missing] + [f"- corrupt `{p}`" for p in v.corrupt] + [
        f"- fetched again: `{c[:12]}`" for c in v.restored] + [
        f"- **lost**: {why}" for why in v.lost] + [f"- not archived yet: {why}"
                                                    for why in v.unarchived]
    if v.partials_removed:
        lines.append(f"- {len(v.partials_removed)} temporary files of dead writers removed")
    if report.quarantined:
        lines += ["", "## Quarantined journal records"] + [
            f"- `{q.clip_id[:12]}`: `{q.path}` ({q.found.splitlines()[0]})"
            for q in report.quarantined]
    lines += ["", "## Ledger compaction"] + [
        f"- {d.day}: {d.parts_before} parts → 1 ({d.rows} rows)" for d in report.compacted]
    r = report.retained
    lines += ["", f"## Retention\nprovider copies deleted {len(r.provider_copies_deleted)}, "
              f"replicated {len(r.replicated)}, local files deleted {len(r.local_deleted)}, "
              f"kept as the only copy {len(r.kept_only_copy)}"]
    return "\n".join(lines) + "\n"
