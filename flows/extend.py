"""extend_clip: continue an archived clip.

Native extension where the clip's model has it and the provider gave a video id (Kling
video-extend, OpenAI /videos/extensions): chains of extension steps reach long clips within the
model's cap, each step paid once. Elsewhere — a model without the endpoint, or a clip that was
itself stitched — the last-frame fallback: the parent's last frame starts an image-to-video
continuation (on the parent's model when it takes images, else the router's choice), and parent
and continuation are stitched into the child. Either way the child is a new clip — its own id,
archive entry, inspection and ledger rows — whose parent is kept in the journal and the ledger
(parent_clip_id).
"""

import sys

from prefect import flow

from flows.clip_result import ClipResult
from flows.generate import generate, in_run
from flows.joining import join, last_frame_file
from models import ClipRequest, RoutePlan
from providers.router import PlanError
from storage.journal import ClipJournal
from tasks.generation import journal_for
from tasks.runtime import Runtime


def _archived_parent(rt: Runtime, clip_id: str) -> ClipJournal:
    parent = rt.journal.read(clip_id) if clip_id.isalnum() else None
    if parent is None or parent.state != "done":
        raise PlanError("source_clip", f"no archived clip {clip_id!r} in this home")
    return parent


def extends_natively(rt: Runtime, parent: ClipJournal) -> bool:
    row = rt.catalog.row(parent.plan["model"])
    remote = parent.steps[-1].remote if parent.steps else None
    return "extend" in row.modes and bool(remote and remote.video_id)


async def extend(rt: Runtime, clip_id: str, prompt: str, seconds: float, take: int,
                 run_id: str) -> ClipResult:
    """The plain orchestration behind extend_clip."""
    child = ClipRequest(mode="extend", source_clip=clip_id, prompt=prompt, duration=seconds,
                        take=take)
    parent = _archived_parent(rt, clip_id)
    if extends_natively(rt, parent):
        return await generate(rt, child, run_id)
    return await from_last_frame(rt, child, parent, run_id)


async def from_last_frame(rt: Runtime, child: ClipRequest, parent: ClipJournal, run_id: str
                          ) -> ClipResult:
    """Continue from the parent's last frame, then stitch parent + continuation."""
    child = child.model_copy(update={"resolution": parent.request["resolution"],
                                     "aspect_ratio": parent.request["aspect_ratio"],
                                     "policy": parent.plan["model"]})
    record = rt.journal.read(child.clip_id)
    if record and record.state == "done":
        return ClipResult.model_validate(record.inspection["result"])
    before = ClipResult.model_validate(parent.inspection["result"])
    row = rt.catalog.row(parent.plan["model"])
    frame = await last_frame_file(rt, before, rt.settings.home_path / "frames" / child.clip_id,
                                  "continue-from.jpg")
    continuation = await generate(rt, ClipRequest(
        mode="image", prompt=child.prompt, duration=child.seconds, image=frame,
        resolution=child.resolution, aspect_ratio=child.aspect_ratio,
        policy=row.id if "image" in row.modes else "cheapest", take=child.take), run_id)
    decision = RoutePlan.model_validate(rt.journal.read(continuation.clip_id).plan)
    with rt.journal.locked(child.clip_id) as locked:
        locked.ensure(journal_for(child, decision))
    return await join(rt, child, decision, [before, continuation], [continuation], run_id,
                      title=f"Extension of {parent.clip_id[:12]} from its last frame")


@flow(name="extend-clip", retries=0, log_prints=True)
async def extend_clip(clip_id: str, prompt: str, seconds: float, take: int = 0) -> ClipResult:
    """Add `seconds` to the archived clip `clip_id`, described by `prompt`."""
    return await in_run(lambda rt, run_id: extend(rt, clip_id, prompt, seconds, take, run_id))


if __name__ == "__main__":
    from cli.main import main

    sys.exit(main(["extend", *sys.argv[1:]]))
