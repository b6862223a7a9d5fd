"""What a finished clip leaves behind: the sidecar, the inspection ledger row, the journal's
`done`, and the Prefect artifacts a person reads (plan and reasons, cost, timings, checks, path).
"""

from contextlib import suppress
from datetime import UTC, datetime
from decimal import Decimal

from prefect.artifacts import acreate_link_artifact, acreate_markdown_artifact
from pydantic import BaseModel, Field

from models import ClipRequest, LedgerRow, RoutePlan, usd_text
from storage.archive import AlreadyArchived
from storage.ledger import event_id
from tasks.generation import Archived
from tasks.inspection import Inspection
from tasks.runtime import Runtime


class ClipResult(BaseModel):
    """The answer of generate_clip."""

    clip_id: str = Field(description="Idempotency key of the request.")
    model: str
    tier: str
    path: str = Field(description="Archived original.")
    sha256: str
    trimmed_path: str | None = None
    seconds_delivered: float
    resolution_actual: str
    downgraded: bool
    flash_frame: bool
    cost_usd: float = Field(description="Every charge of this clip, from the ledger.")
    job_ids: list[str]
    scene_clip_ids: list[str] = Field(
        default_factory=list, description="An emulated storyboard's scenes, in order.")
    stitch_method: str | None = Field(
        default=None, description="How its scenes were joined: remux or re-encode.")


async def publish(rt: Runtime, request: ClipRequest, plan: RoutePlan, archived: Archived,
            inspection: Inspection, trimmed: dict, prepared, crop, downgraded: bool,
            run_id: str) -> ClipResult:
    size = f"{inspection.width}x{inspection.height}"
    outcome = ",".join(filter(None, ["downgraded" if downgraded else None,
                                     "flash_frame_trimmed" if inspection.flash_frame else None,
                                     "too_long_trimmed" if any("longer" in r for r in
                                                               trimmed["trim_reasons"]) else None
                                     ])) or "ok"
    record = rt.journal.read(request.clip_id)
    job_ids = [s.handle.job_id for s in record.steps if s.handle]
    rt.ledger.append([LedgerRow(
        event_id=event_id(request.clip_id, "inspection", archived.sha256),
        event_time=datetime.now(UTC), event_kind="inspection", provider=plan.provider,
        model=plan.model, tier=plan.tier, account=f"{plan.provider}:{plan.tier}",
        endpoint=plan.endpoint, job_id=job_ids[-1] if job_ids else None,
        **request.ledger_columns(), seconds_billed=plan.seconds_billed,
        seconds_delivered=inspection.seconds, resolution_actual=size,
        download_s=archived.download_s, inspection_s=trimmed["inspection_s"], cost_usd=Decimal(0),
        charge_kind="none",
        inspection_outcome=outcome, flow_run_id=run_id)])
    result = ClipResult(
        clip_id=request.clip_id, model=plan.model, tier=plan.tier, path=archived.path,
        sha256=archived.sha256, trimmed_path=trimmed["trimmed_path"],
        seconds_delivered=inspection.seconds, resolution_actual=size, downgraded=downgraded,
        flash_frame=inspection.flash_frame, cost_usd=float(Decimal(record.spent_usd)),
        job_ids=job_ids)
    sidecar = rt.archive.beside(archived.path, ".json")
    if not rt.archive.exists(sidecar):
        with suppress(AlreadyArchived):  # a concurrent run of this clip wrote the same sidecar
            rt.archive.write_json(sidecar, {
                "request": request.model_dump(mode="json"),
                "plan": plan.model_dump(mode="json"),
                "jobs": [s.handle.model_dump(mode="json") for s in record.steps if s.handle],
                "sha256": archived.sha256, "trimmed_sha256": trimmed["trimmed_sha256"],
                "inspection": inspection.model_dump(), "trim": trimmed,
                "prompt": prepared.model_dump(mode="json"),
                "crop": crop.model_dump(mode="json") if crop else None})
    with rt.journal.locked(request.clip_id) as locked:
        current = locked.read()
        current.state = "done"
        current.inspection = {"result": result.model_dump(mode="json"),
                              "inspection": inspection.model_dump(), "trim": trimmed}
        locked.write(current)
    if rt.per_clip_ui:
        await _artifacts(rt, request, plan, result, inspection, trimmed, archived)
    return result


async def _artifacts(rt: Runtime, request: ClipRequest, plan: RoutePlan, result: ClipResult,
                     inspection: Inspection, trimmed: dict, archived: Archived) -> None:
    key = f"clip-{request.clip_id[:16]}"
    reasons = "\n".join(f"- {r}" for r in plan.reasons)
    checks = [f"- duration {inspection.seconds:g} s (asked {request.seconds:g} s, billed "
              f"{plan.seconds_billed} s)",
              f"- frame size {result.resolution_actual} (asked {request.resolution})"
              + (" — **silently downgraded**" if result.downgraded else ""),
              f"- flash frame: {'yes, trimmed' if inspection.flash_frame else 'no'}"]
    if trimmed["trimmed_path"]:
        checks.append(f"- trimmed copy ({trimmed['trim_method']}): "
                      f"`{trimmed['trimmed_path']}`")
    await acreate_markdown_artifact(
        key=key,
        description=f"{plan.model_name} {plan.tier}: {usd_text(Decimal(str(result.cost_usd)))}",
        markdown=(f"# Clip `{request.clip_id[:12]}`\n\n**{plan.model_name} · {plan.tier}** "
                  f"({plan.protocol}, {plan.endpoint}) — cost "
                  f"{usd_text(Decimal(str(result.cost_usd)))}, jobs "
                  f"{', '.join(result.job_ids)}\n\n## Why\n{reasons}\n\n## Checks\n"
                  + "\n".join(checks) + f"\n\n## Timings\n- download {archived.download_s} s\n"
                  f"- inspection {trimmed['inspection_s']} s\n\n## Archive\n`{result.path}`\n"
                  f"sha256 `{result.sha256}`\n"))
    await acreate_link_artifact(key=f"{key}-file", link=rt.archive.link(result.path),
                                link_text=result.path.rsplit("/", 1)[-1])


def reject(rt: Runtime, result: ClipResult, request: ClipRequest, plan: RoutePlan, why: str,
           run_id: str) -> None:
    """A delivered take replaced by a later one: still paid for and kept in the archive, but
    not accepted — the ledger says so (analytics counts it as a hidden cost)."""
    rt.ledger.append([LedgerRow(
        event_id=event_id(request.clip_id, "rejection"), event_time=datetime.now(UTC),
        event_kind="rejection", provider=plan.provider, model=plan.model, tier=plan.tier,
        account=f"{plan.provider}:{plan.tier}", endpoint=plan.endpoint,
        job_id=result.job_ids[-1] if result.job_ids else None, **request.ledger_columns(),
        seconds_billed=plan.seconds_billed, seconds_delivered=result.seconds_delivered,
        resolution_actual=result.resolution_actual,
        cost_usd=Decimal(0), charge_kind="none", inspection_outcome=f"rejected: {why}",
        flow_run_id=run_id)])
    with rt.journal.locked(request.clip_id) as locked:
        current = locked.read()
        current.inspection["rejected"] = why
        locked.write(current)
