"""A clip made by joining clips: an emulated storyboard's scenes, or an archived clip and the
continuation generated from its last frame (the extension fallback).

Each part is a clip of its own (journalled, paid once, archived, inspected). Joining stitches
them into the target's archive entry (write-once; a rerun keeps what is there), inspects the
result, writes its inspection ledger row (cost 0: the parts carry the charges), marks the
target's journal record done and leaves a markdown artifact listing the parts.
"""

import asyncio
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from models import Archived, ClipOutcome, ClipRequest, ClipResult, RoutePlan, usd_text
from storage.archive import AlreadyArchived
from storage.ledger import event_row
from tasks.clip_summary import publish_summary
from tasks.framing import asked_size
from tasks.inspection import inspect_file
from tasks.runtime import Runtime
from tasks.stitch import Stitched, last_frame_jpeg, stitch


async def last_frame_file(rt: Runtime, part: ClipResult, folder: Path, name: str) -> str:
    """The part's last frame (of its trimmed copy when there is one: no flash frame, no extra
    seconds) as a JPEG file, the next generation's image-to-video input."""
    with rt.archive.reading(part.trimmed_path or part.path) as source:
        jpeg = await asyncio.to_thread(last_frame_jpeg, source)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(jpeg)
    return str(path)


def stitch_into_archive(rt: Runtime, target: ClipRequest, parts: list[ClipResult]
                        ) -> tuple[str, datetime, Stitched | None]:
    """Stitch into the archive, write-once; a file already there (a rerun) is kept. Dated as
    its last part was."""
    record = rt.journal.read(parts[-1].clip_id)
    when = (record.archive.submitted_at if record and record.archive else None) or \
        datetime.now(UTC)
    final = rt.archive.path_for(target.clip_id, when)
    if rt.archive.exists(final):
        return final, when, None
    aspect = "16:9" if target.aspect_ratio == "auto" else target.aspect_ratio
    try:
        with rt.archive.writing(final) as sink, ExitStack() as stack:
            sources = [stack.enter_context(rt.archive.reading(p.trimmed_path or p.path))
                       for p in parts]
            return final, when, stitch(sources, sink, asked_size(target.resolution, aspect))
    except AlreadyArchived:
        return final, when, None


@task(name="stitch clips", retries=0, cache_policy=NO_CACHE)
async def stitch_parts(rt: Runtime, target: ClipRequest, parts: list[ClipResult]
                       ) -> tuple[str, datetime, Stitched | None]:
    return await asyncio.to_thread(stitch_into_archive, rt, target, parts)


async def join(rt: Runtime, target: ClipRequest, decision: RoutePlan, parts: list[ClipResult],
               paid: list[ClipResult], *, title: str) -> ClipResult:
    """Stitch `parts` into `target`'s clip and record it; `paid` are the parts generated for
    it (their charges are its cost)."""
    final, when, stitched = await stitch_parts(rt, quote(target), parts)
    with rt.archive.reading(final) as source:
        found = inspect_file(source)
    method = stitched.method if stitched else "kept"
    downgraded = [i + 1 for i, p in enumerate(parts) if p.downgraded]
    cost = sum((Decimal(str(p.cost_usd)) for p in paid), Decimal(0))
    result = ClipResult(
        clip_id=target.clip_id, model=decision.model, tier=decision.tier, path=final,
        sha256=rt.archive.sha256(final), seconds_delivered=found.seconds,
        resolution_actual=found.size, downgraded=bool(downgraded),
        flash_frame=False, cost_usd=float(cost), job_ids=[j for p in paid for j in p.job_ids],
        scene_clip_ids=[p.clip_id for p in parts], stitch_method=method)
    outcome = f"stitched_{method}" + (f",parts_downgraded:{'+'.join(map(str, downgraded))}"
                                     if downgraded else "")
    rt.ledger.append([event_row(
        "inspection", target, decision, rt.run_id, key=("inspection", result.sha256),
        seconds_delivered=found.seconds, resolution_actual=result.resolution_actual,
        inspection_outcome=outcome)])
    archived = Archived(path=final, sha256=result.sha256, bytes=rt.archive.size(final),
                        submitted_at=when)
    rt.journal.mark_done(target.clip_id, ClipOutcome(result=result, inspection=found,
                                                     stitch=method),
                         archived=archived, spent=cost)
    rows = [f"| {i + 1} | `{p.clip_id[:12]}` | {p.seconds_delivered:g} s | "
            f"{p.resolution_actual} | {usd_text(Decimal(str(p.cost_usd)))} |"
            for i, p in enumerate(parts)]
    await publish_summary(rt, result, found, extra=[
        f"## {title}: {len(parts)} parts, stitched by {method}",
        "| part | clip | length | size | cost |", "|---|---|---|---|---|", *rows])
    return result
