"""Scenes into one clip. Native multi-shot (Kling `multi_prompt`) is one generation: the clip
lifecycle's path. Everywhere else — Sora 2 among them, whose wire has no storyboard field — each
scene is its own clip (journalled, paid once, archived, inspected like any other, its ledger
rows carrying the storyboard's id), continuity comes from the previous scene's last frame as
the next scene's image-to-video input, and scenes that bring their own image start a new chain
that runs in parallel with the others. The scenes are then stitched (tasks/stitch.py: remux
when they match, re-encode to the asked size when a scene came back downgraded) into
clips/<date>/<storyboard id>.mp4, inspected, and recorded. A rerun pays for nothing done.
"""


from prefect import get_run_logger
from prefect.utilities.annotations import quote

from models import ClipRequest, ClipResult, RoutePlan
from storage.journal import new_record
from tasks.archiving import finished
from tasks.clip_lifecycle import generate
from tasks.joining import join, last_frame_file
from tasks.prompt_text import storyboard_anchors
from tasks.routing import plan_route
from tasks.runtime import Runtime
from tasks.suspending import gathered


def scene_request(board: ClipRequest, decision: RoutePlan, index: int, prompt: str,
                  image: str | None) -> ClipRequest:
    """Scene `index` as a clip of its own on the storyboard's model."""
    scene = board.scenes[index]
    return ClipRequest(
        mode="image" if image else "text", prompt=prompt, duration=scene.duration,
        image=image, camera=scene.camera, negative_prompt=board.negative_prompt,
        aspect_ratio=board.aspect_ratio, resolution=board.resolution, policy=decision.model,
        downgrade="accept", fallback_wait_s=board.fallback_wait_s, take=board.take,
        storyboard_id=board.clip_id, labels=board.labels)


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
                 prompts: list[str]) -> list[ClipResult]:
    frames = rt.settings.home_path / "frames" / board.clip_id
    results: list[ClipResult] = []
    image = board.scenes[indexes[0]].image
    for index in indexes:
        result = await generate(rt, scene_request(board, decision, index, prompts[index], image))
        results.append(result)
        if index != indexes[-1]:
            image = await last_frame_file(rt, result, frames, f"scene-{index + 2}.jpg")
    return results


async def make_storyboard(rt: Runtime, board: ClipRequest) -> ClipResult:
    """Native → the clip lifecycle; emulated → scenes, stitch, record."""
    logger = get_run_logger()
    record = rt.journal.read(board.clip_id)
    if record and record.state == "done":
        logger.info("storyboard %s is already archived: nothing to pay", board.clip_id[:12])
        return await finished(rt, record)
    decision = await plan_route(quote(board), rt, {})
    if decision.storyboard != "emulated":
        return await generate(rt, board, planned=decision)  # which logs the plan, once
    logger.info("plan: %s", "; ".join(decision.reasons))
    rt.journal.start(new_record(board, decision))
    prompts = storyboard_anchors(board.scenes)
    groups = chains(board)
    logger.info("emulated storyboard on %s: %d scenes in %d parallel chain(s)",
                decision.model_name, len(board.scenes), len(groups))
    done = await gathered(*(_chain(rt, board, decision, group, prompts) for group in groups))
    scenes = [result for chain in done for result in chain]
    return await join(rt, board, decision, scenes, scenes,
                      title=f"Storyboard, emulated on {decision.model_name}")
