"""generate_storyboard: scenes into one clip, natively or scene by scene.

Native multi-shot (Kling `multi_prompt`) is one generation: generate_clip's path. Everywhere
else — Sora 2 among them, whose wire has no storyboard field — each scene is its own clip
(journalled, paid once, archived, inspected like any other, its ledger rows carrying the
storyboard's id), continuity comes from the previous scene's last frame as the next scene's
image-to-video input, and scenes that bring their own image start a new chain that runs in
parallel with the others. The scenes are then stitched (tasks/stitch.py: remux when they match,
re-encode to the asked size when a scene came back downgraded) into
clips/<date>/<storyboard id>.mp4, inspected, and recorded. A rerun pays for nothing done.
"""

import asyncio
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context

from flows.clip_result import ClipResult
from flows.generate import generate, plan_route
from models import ClipRequest, LedgerRow, RoutePlan, usd_text
from storage.archive import AlreadyArchived
from storage.ledger import event_id
from tasks.generation import asked_size, journal_for
from tasks.inspection import inspect_file
from tasks.prompts import storyboard_anchors
from tasks.runtime import Runtime, build_runtime
from tasks.stitch import Stitched, last_frame_jpeg, stitch


def scene_request(board: ClipRequest, decision: RoutePlan, index: int, prompt: str,
                  image: str | None) -> ClipRequest:
    """Scene `index` as a clip of its own on the storyboard's model."""
    scene = board.scenes[index]
    return ClipRequest(
        mode="image" if image else "text", prompt=prompt, duration=scene.duration,
        image=image, camera=scene.camera, negative_prompt=board.negative_prompt,
        aspect_ratio=board.aspect_ratio, resolution=board.resolution, policy=decision.model,
        downgrade="accept", fallback_wait_s=board.fallback_wait_s, take=board.take,
        storyboard_id=board.clip_id)


def chains(board: ClipRequest) -> list[list[int]]:
    """Scene indexes grouped into chains: a scene with its own image starts a new chain
    (nothing to continue from), the others follow the scene before them."""
    groups: list[list[int]] = []
    for index, scene in enumerate(board.scenes):
        if not groups or scene.image:
            groups.append([index])
        else:
            groups[-1].append(index)
    return groups


async def _chain(rt: Runtime, board: ClipRequest, decision: RoutePlan, indexes: list[int],
                 prompts: list[str], run_id: str) -> list[ClipResult]:
    frames = rt.settings.home_path / "frames" / board.clip_id
    results: list[ClipResult] = []
    image = board.scenes[indexes[0]].image
    for index in indexes:
        result = await generate(rt, scene_request(board, decision, index, prompts[index], image),
                                run_id)
        results.append(result)
        if index != indexes[-1]:
            with rt.archive.reading(result.trimmed_path or result.path) as source:
                jpeg = await asyncio.to_thread(last_frame_jpeg, source)
            frames.mkdir(parents=True, exist_ok=True)
            image = str(frames / f"scene-{index + 2}.jpg")
            with open(image, "wb") as handle:
                handle.write(jpeg)
    return results


@task(name="stitch scenes", retries=0, cache_policy=NO_CACHE)
def stitch_scenes(rt: Runtime, board: ClipRequest, decision: RoutePlan,
                  scenes: list[ClipResult]) -> tuple[str, Stitched | None]:
    """Stitch into the archive, write-once; a file already there (a rerun) is kept."""
    record = rt.journal.read(scenes[0].clip_id)
    submitted = record.archive["submitted_at"] if record and record.archive else None
    when = datetime.fromisoformat(submitted) if submitted else datetime.now(UTC)
    final = rt.archive.path_for(board.clip_id, when)
    if rt.archive.exists(final):
        return final, None
    aspect = "16:9" if board.aspect_ratio == "auto" else board.aspect_ratio
    try:
        with rt.archive.writing(final) as sink, ExitStack() as stack:
            sources = [stack.enter_context(rt.archive.reading(s.trimmed_path or s.path))
                       for s in scenes]
            stitched = stitch(sources, sink, asked_size(board, aspect))
    except AlreadyArchived:
        return final, None
    return final, stitched


async def make_storyboard(rt: Runtime, board: ClipRequest, run_id: str) -> ClipResult:
    """The plain orchestration: native → generate; emulated → scenes, stitch, record."""
    logger = get_run_logger()
    record = rt.journal.read(board.clip_id)
    if record and record.state == "done":
        logger.info("storyboard %s is already archived: nothing to pay", board.clip_id[:12])
        return ClipResult.model_validate(record.inspection["result"])
    decision = plan_route(board, rt, {})
    logger.info("plan: %s", "; ".join(decision.reasons))
    if decision.storyboard != "emulated":
        return await generate(rt, board, run_id)
    with rt.journal.locked(board.clip_id) as locked:
        locked.ensure(journal_for(board, decision))
    prompts = storyboard_anchors(board.scenes)
    groups = chains(board)
    logger.info("emulated storyboard on %s: %d scenes in %d parallel chain(s)",
                decision.model_name, len(board.scenes), len(groups))
    done = await asyncio.gather(*(_chain(rt, board, decision, group, prompts, run_id)
                                  for group in groups))
    scenes = [result for chain in done for result in chain]
    final, stitched = stitch_scenes(rt, board, decision, scenes)
    return await _record(rt, board, decision, scenes, final, stitched, run_id)


async def _record(rt: Runtime, board: ClipRequest, decision: RoutePlan,
                  scenes: list[ClipResult], final: str, stitched: Stitched | None,
                  run_id: str) -> ClipResult:
    with rt.archive.reading(final) as source:
        found = inspect_file(source)
    method = stitched.method if stitched else "kept"
    downgraded = [i + 1 for i, s in enumerate(scenes) if s.downgraded]
    cost = sum((Decimal(str(s.cost_usd)) for s in scenes), Decimal(0))
    result = ClipResult(
        clip_id=board.clip_id, model=decision.model, tier=decision.tier, path=final,
        sha256=rt.archive.sha256(final), seconds_delivered=found.seconds,
        resolution_actual=f"{found.width}x{found.height}", downgraded=bool(downgraded),
        flash_frame=False, cost_usd=float(cost),
        job_ids=[job for s in scenes for job in s.job_ids],
        scene_clip_ids=[s.clip_id for s in scenes], stitch_method=method)
    outcome = f"stitched_{method}" + (f",scenes_downgraded:{'+'.join(map(str, downgraded))}"
                                     if downgraded else "")
    rt.ledger.append([LedgerRow(
        event_id=event_id(board.clip_id, "inspection", result.sha256),
        event_time=datetime.now(UTC), event_kind="inspection", provider=decision.provider,
        model=decision.model, tier=decision.tier, account=f"{decision.provider}:{decision.tier}",
        endpoint=decision.endpoint, **board.ledger_columns(),
        seconds_billed=decision.seconds_billed, seconds_delivered=found.seconds,
        resolution_actual=result.resolution_actual, cost_usd=Decimal(0), charge_kind="none",
        inspection_outcome=outcome, flow_run_id=run_id)])
    with rt.journal.locked(board.clip_id) as locked:
        current = locked.read()
        current.state, current.spent_usd = "done", str(cost)
        current.archive = {"path": final, "sha256": result.sha256}
        current.inspection = {"result": result.model_dump(mode="json"),
                              "inspection": found.model_dump(), "stitch": method}
        locked.write(current)
    rows = "\n".join(f"| {i + 1} | `{s.clip_id[:12]}` | {s.seconds_delivered:g} s | "
                     f"{s.resolution_actual} | {usd_text(Decimal(str(s.cost_usd)))} |"
                     for i, s in enumerate(scenes))
    await acreate_markdown_artifact(
        key=f"storyboard-{board.clip_id[:16]}",
        description=f"{decision.model_name}: {len(scenes)} scenes, {usd_text(cost)}",
        markdown=(f"# Storyboard `{board.clip_id[:12]}`\n\n**{decision.model_name}**, emulated "
                  f"scene by scene, stitched by {method}; {found.seconds:g} s at "
                  f"{result.resolution_actual}, {usd_text(cost)}\n\n| scene | clip | length | "
                  f"size | cost |\n|---|---|---|---|---|\n{rows}\n\n`{final}`\n"))
    return result


async def storyboard_in_run(board: ClipRequest) -> ClipResult:
    run_id = str(get_run_context().flow_run.id)
    rt = await asyncio.to_thread(build_runtime, run_id)
    try:
        return await make_storyboard(rt, board, run_id)
    finally:
        await rt.aclose()


@flow(name="generate-storyboard", retries=0, log_prints=True)
async def generate_storyboard(storyboard: ClipRequest) -> ClipResult:
    """Scenes into one clip: native multi-shot where the model has it, else scene by scene
    with last-frame continuity, stitched."""
    return await storyboard_in_run(storyboard)
