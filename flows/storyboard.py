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

from prefect import flow, get_run_logger
from prefect.utilities.annotations import quote

from flows.clip_result import ClipResult
from flows.generate import generate, in_run, plan_route
from flows.joining import join, last_frame_file
from models import ClipRequest, RoutePlan
from tasks.generation import journal_for
from tasks.prompts import storyboard_anchors
from tasks.runtime import Runtime


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
            image = await last_frame_file(rt, result, frames, f"scene-{index + 2}.jpg")
    return results


async def make_storyboard(rt: Runtime, board: ClipRequest, run_id: str) -> ClipResult:
    """The plain orchestration: native → generate; emulated → scenes, stitch, record."""
    logger = get_run_logger()
    record = rt.journal.read(board.clip_id)
    if record and record.state == "done":
        logger.info("storyboard %s is already archived: nothing to pay", board.clip_id[:12])
        return ClipResult.model_validate(record.inspection["result"])
    decision = await plan_route(quote(board), rt, {})
    logger.info("plan: %s", "; ".join(decision.reasons))
    if decision.storyboard != "emulated":
        return await generate(rt, board, run_id, planned=decision)
    with rt.journal.locked(board.clip_id) as locked:
        locked.ensure(journal_for(board, decision))
    prompts = storyboard_anchors(board.scenes)
    groups = chains(board)
    logger.info("emulated storyboard on %s: %d scenes in %d parallel chain(s)",
                decision.model_name, len(board.scenes), len(groups))
    done = await asyncio.gather(*(_chain(rt, board, decision, group, prompts, run_id)
                                  for group in groups))
    scenes = [result for chain in done for result in chain]
    return await join(rt, board, decision, scenes, scenes, run_id,
                      title=f"Storyboard, emulated on {decision.model_name}")


@flow(name="generate-storyboard", retries=0, log_prints=True)
async def generate_storyboard(storyboard: ClipRequest) -> ClipResult:
    """Scenes into one clip: native multi-shot where the model has it, else scene by scene
    with last-frame continuity, stitched."""
    return await in_run(lambda rt, run_id: make_storyboard(rt, storyboard, run_id))
