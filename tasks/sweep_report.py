"""What a sweep found and did, as a log line and a markdown artifact; `ArchiveDamaged` when a
file is missing or corrupt, so the run ends Failed and someone looks."""

from prefect import get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from pydantic import BaseModel, Field

from tasks.reconciling import Reconciliation
from tasks.sweeping import CompactedDay, Resumed, Retained, Verified


class SweepReport(BaseModel):
    resumed: list[Resumed]
    left_open: list[Resumed] = Field(description="Entries the sweep will not touch, and why.")
    reconciliation: Reconciliation
    verified: Verified
    compacted: list[CompactedDay]
    retained: Retained


class ArchiveDamaged(RuntimeError):
    """Missing or corrupt archive files: the run ends Failed so someone looks."""


async def publish_sweep(report: SweepReport) -> SweepReport:
    """Log and leave the artifact; raise ArchiveDamaged after, when the archive is damaged."""
    verified, retained = report.verified, report.retained
    get_run_logger().info(
        "sweep: %d resumed, %d left open, %d files verified (%d missing, %d corrupt), "
        "%d days compacted, %d provider copies deleted, %d local files deleted",
        len(report.resumed), len(report.left_open), verified.checked, len(verified.missing),
        len(verified.corrupt), len(report.compacted), len(retained.provider_copies_deleted),
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
