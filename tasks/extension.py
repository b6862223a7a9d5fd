"""Continue an archived clip: natively where its model has the endpoint and the provider gave a
video id (each extension step paid once, tasks/clip_lifecycle.py), else from its last frame —
an image-to-video continuation stitched after the parent. Either way the child is a clip of its
own whose parent is kept in the journal and the ledger (parent_clip_id). An endpoint that
refuses the native extension (Kling's video-extend takes v1.x videos only, by the public
references) is learned once: that extension and every later one continue from the last frame,
and their plans say why."""

from prefect import get_run_logger

from models import ClipRequest, ClipResult
from providers.errors import CapabilityRefused
from storage.journal import new_record
from storage.records import ClipJournal
from tasks.archiving import finished
from tasks.clip_lifecycle import generate
from tasks.joining import join, last_frame_file
from tasks.parents import archived_parent, extends_natively, full_clip_id
from tasks.runtime import Runtime


async def extend(rt: Runtime, request: ClipRequest) -> ClipResult:
    """`request` (mode extend) continues its source clip, named by its id or a unique prefix.
    The child is that request with the full id — so a batch row's extension is the clip the
    row names, with its batch id and labels on the journal and the ledger."""
    clip_id = full_clip_id(rt.journal, request.source_clip or "")
    child = request.model_copy(update={"source_clip": clip_id})
    parent = archived_parent(rt.journal, clip_id)
    refused = rt.capabilities.refused_here(rt.endpoints).get((parent.plan.model, "extend"))
    if refused is None and extends_natively(rt.catalog, parent):
        try:
            return await generate(rt, child)
        except CapabilityRefused as err:
            refused = f"{err.capability} refused now ({err})"
    return await from_last_frame(rt, child, parent, refused)


async def from_last_frame(rt: Runtime, child: ClipRequest, parent: ClipJournal,
                          refused: str | None = None) -> ClipResult:
    """Continue from the parent's last frame, then stitch parent + continuation; `refused`:
    why the native extension is not used, for the plan's reasons."""
    child = child.model_copy(update={"resolution": parent.request.resolution,
                                     "aspect_ratio": parent.request.aspect_ratio,
                                     "policy": parent.plan.model})
    record = rt.journal.read(child.clip_id)
    if record and record.state == "done":
        return await finished(rt, record)
    before = parent.outcome.result
    row = rt.catalog.row(parent.plan.model)
    frame = await last_frame_file(rt, before, rt.settings.home_path / "frames" / child.clip_id,
                                  "continue-from.jpg")
    continuation = await generate(rt, ClipRequest(
        mode="image", prompt=child.prompt, duration=child.seconds, image=frame,
        resolution=child.resolution, aspect_ratio=child.aspect_ratio,
        policy=row.id if "image" in row.modes else "cheapest", take=child.take))
    decision = rt.journal.read(continuation.clip_id).plan
    if refused:
        why = (f"native extension on {parent.plan.model}: {refused}; continued from the "
               "parent's last frame")
        get_run_logger().info("plan: %s", why)
        decision = decision.model_copy(update={"reasons": [why, *decision.reasons]})
    rt.journal.start(new_record(child, decision))
    return await join(rt, child, decision, [before, continuation], [continuation],
                      title=f"Extension of {parent.clip_id[:12]} from its last frame")
