"""What a finished clip leaves behind: the sidecar, the inspection ledger row, the journal's
`done`, and the Prefect artifacts a person reads (plan and reasons, cost, timings, checks, path).
"""

import asyncio
from contextlib import suppress

from models import (
    Archived,
    ClipOutcome,
    ClipRequest,
    ClipResult,
    Inspection,
    RoutePlan,
    Trim,
)
from storage.archive import AlreadyArchived
from storage.ledger import event_row
from tasks.clip_summary import publish_summary
from tasks.image_files import CropResult
from tasks.prompt_text import PreparedPrompt
from tasks.runtime import Runtime


async def publish(rt: Runtime, request: ClipRequest, plan: RoutePlan, archived: Archived,
                  inspection: Inspection, trimmed: Trim, prepared: PreparedPrompt,
                  crop: CropResult | None, downgraded: bool) -> ClipResult:
    outcome = ",".join(filter(None, ["downgraded" if downgraded else None,
                                     "flash_frame_trimmed" if inspection.flash_frame else None,
                                     "too_long_trimmed" if trimmed.too_long else None])) or "ok"
    record = rt.journal.read(request.clip_id)
    job_ids = record.job_ids
    await asyncio.to_thread(rt.ledger.append, [event_row(
        "inspection", request, plan, rt.run_id, key=("inspection", archived.sha256),
        job_id=job_ids[-1] if job_ids else None, seconds_delivered=inspection.seconds,
        resolution_actual=inspection.size, download_s=archived.download_s,
        inspection_s=trimmed.inspection_s, inspection_outcome=outcome)])
    result = ClipResult(
        clip_id=request.clip_id, model=plan.model, tier=plan.tier, path=archived.path,
        sha256=archived.sha256, trimmed_path=trimmed.trimmed_path,
        seconds_delivered=inspection.seconds, resolution_actual=inspection.size,
        downgraded=downgraded, flash_frame=inspection.flash_frame,
        audio=inspection.audio and not trimmed.audio_removed,
        cost_usd=float(record.spent_usd), job_ids=job_ids)
    sidecar = rt.archive.beside(archived.path, ".json")
    if not rt.archive.exists(sidecar):
        with suppress(AlreadyArchived):  # a concurrent run of this clip wrote the same sidecar
            rt.archive.write_json(sidecar, {
                "request": request.model_dump(mode="json"),
                "plan": plan.model_dump(mode="json"),
                "jobs": [s.handle.model_dump(mode="json") for s in record.steps if s.handle],
                "sha256": archived.sha256, "trimmed_sha256": trimmed.trimmed_sha256,
                "inspection": inspection.model_dump(), "trim": trimmed.model_dump(),
                "prompt": prepared.model_dump(mode="json"),
                "crop": crop.model_dump(mode="json") if crop else None})
    await asyncio.to_thread(rt.journal.mark_done, request.clip_id,
                            ClipOutcome(result=result, inspection=inspection, trim=trimmed))
    if rt.per_clip_ui:
        await publish_summary(rt, result, inspection, trim=trimmed, sent=prepared.prompt,
                              extra=["## Timings", f"- download {archived.download_s} s",
                                     f"- inspection {trimmed.inspection_s} s"])
    return result


def reject(rt: Runtime, result: ClipResult, request: ClipRequest, plan: RoutePlan,
           why: str) -> None:
    """A delivered take replaced by a later one: still paid for and kept in the archive, but
    not accepted — the ledger says so (analytics counts it as a hidden cost)."""
    rt.ledger.append([event_row(
        "rejection", request, plan, rt.run_id, key=("rejection",),
        job_id=result.job_ids[-1] if result.job_ids else None,
        seconds_delivered=result.seconds_delivered, resolution_actual=result.resolution_actual,
        inspection_outcome=f"rejected: {why}")])
    rt.journal.mark_rejected(request.clip_id, why)
