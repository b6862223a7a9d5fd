"""One clip's life: plan -> prepare -> submit once -> await -> archive -> inspect -> publish.

`generate` resumes what the journal holds (a done clip pays nothing; a recorded job is
collected, not sent again), plans otherwise (or takes the plan a batch made before paying),
runs every step of the plan (`make_clip`), and on a model's failure asks tasks/fallback.py
whether to wait, retry or fall back. A silently downgraded clip is accepted, failed, or
regenerated once as the next take, as the request says.
"""

import asyncio
from typing import NamedTuple

from prefect import get_run_logger, tags
from prefect.utilities.annotations import quote

from models import ClipRequest, ClipResult, JobHandle, RoutePlan, Shot, SubmitRequest
from providers.errors import CapabilityRefused, JobFailed
from providers.router import PlanError
from storage.journal import new_record
from storage.records import ClipJournal
from tasks.archiving import ClipLost, archive_output, finished
from tasks.awaiting import PendingAtDeadline, await_job
from tasks.fallback import FALLBACK_ERRORS, Fallbacks, Retry, Wait
from tasks.framing import asked_size
from tasks.image_files import CropResult, with_image_digest
from tasks.images import prepare_image
from tasks.inspection import inspect_clip
from tasks.parents import native_extension
from tasks.prompt_text import PreparedPrompt
from tasks.prompts import prepare_prompt
from tasks.publishing import publish, reject
from tasks.routing import plan_route, remember_refusal
from tasks.runtime import Runtime
from tasks.step_runs import run_step
from tasks.submission import submit_job


class DeliveredDowngraded(RuntimeError):
    """The provider delivered less than asked and the request's downgrade policy is fail."""


class Made(NamedTuple):
    """What the steps of one plan produced."""

    handle: JobHandle
    aspect: str
    prepared: PreparedPrompt
    crop: CropResult | None


async def generate(rt: Runtime, request: ClipRequest, planned: RoutePlan | None = None, *,
                   regenerated: bool = False) -> ClipResult:
    """One clip, paid for once. `planned`: the plan a batch already made for this request
    before paying anything, used until a fallback."""
    logger = get_run_logger()
    fallbacks = Fallbacks(request.fallback_wait_s)
    request = with_image_digest(request)
    parent_video, expected = None, request.seconds
    fell_from: tuple[str, str] | None = None  # (model, why) of the last fallback
    if request.mode == "extend":
        request, parent_video, expected = native_extension(rt.journal, request)
    while True:
        record = rt.journal.read(request.clip_id)
        if record is None and (lost := rt.journal.quarantined(request.clip_id)):
            logger.warning("the journal record of clip %s could not be read (%s) and was moved "
                           "to %s: its jobs are recovered by the provider's lookup, nothing is "
                           "sent blind", request.clip_id[:12], lost[-1].found.splitlines()[0],
                           lost[-1].path)
        if record and record.state == "done":
            logger.info("clip %s is already archived: nothing to pay", request.clip_id[:12])
            return await finished(rt, record)
        if record and record.state == "lost":
            raise ClipLost(f"clip {request.clip_id[:12]} was paid for and lost: "
                           f"{record.reason}; ask for take {request.take + 1} to make it again")
        decision = _resumable(record, fallbacks) or (
            planned if planned is not None and not fallbacks.excluded
            else await plan_route(quote(request), rt, fallbacks.excluded))
        if fell_from:
            logger.warning("fell back from %s to %s (%s): %s", fell_from[0], decision.model,
                           decision.tier, fell_from[1])
            fell_from = None
        logger.info("plan: %s", "; ".join(decision.reasons))
        if decision.storyboard == "emulated":
            raise PlanError("mode", f"{decision.model} has no native storyboard; scene-by-scene "
                            "storyboards are generate_storyboard's (reelflow storyboard FILE)",
                            ["text", "image", "extend", "storyboard on a native model"])
        started = await asyncio.to_thread(rt.journal.start, new_record(request, decision))
        if started.state == "done":
            continue  # a concurrent run of this request finished it
        try:
            made = await make_clip(rt, request, decision, parent_video)
        except FALLBACK_ERRORS as err:
            if isinstance(err, CapabilityRefused):
                learned = remember_refusal(rt, decision, err)
                logger.warning("learned: %s on %s: %s", decision.model, learned.capability,
                               learned.says())
                if request.mode == "extend":  # only the parent's model can continue natively
                    rt.journal.note_attempt(request.clip_id, decision.model, learned.says())
                    raise
            step = fallbacks.after(err, decision,
                                   rt.time_scale(rt.catalog.row(decision.model).protocol))
            if isinstance(step, Wait):
                logger.info("out of capacity on %s; waiting %.1f s", decision.model,
                            step.seconds)
                await asyncio.sleep(step.seconds)
                continue
            rt.journal.note_attempt(request.clip_id, decision.model, step.why)
            if not isinstance(step, Retry):
                fallbacks.exclude(decision, step, rt.catalog)
                fell_from = (decision.model, step.why)
            continue
        return await _finish(rt, request, decision, made, expected, regenerated)


def _resumable(record: ClipJournal | None, fallbacks: Fallbacks) -> RoutePlan | None:
    """The recorded plan, when its last step has a job (or a send) to resume — to collect,
    or to archive once more — on a model not given up on."""
    if record is None or record.plan is None or not record.steps:
        return None
    last = record.steps[-1]
    if last.state in ("intent", "submitted", "pending", "unknown", "succeeded") \
            and last.model not in fallbacks.excluded:
        return record.plan
    return None


async def make_clip(rt: Runtime, request: ClipRequest, decision: RoutePlan,
                    parent_video: str | None = None) -> Made:
    """All steps of one plan, each submitted once and awaited under its account's limit. An
    extension starts from the parent's provider video id."""
    row = rt.catalog.row(decision.model)
    labels = [f"provider:{decision.provider}", f"model:{decision.model}",
              f"tier:{decision.tier}"] if rt.per_clip_ui else []
    with tags(*labels):
        prepared = await run_step(
            rt, prepare_prompt, request.prompt or " ".join(s.prompt for s in request.scenes),
            quote(row), request.camera, request.negative_prompt)
        image, crop, aspect = None, None, request.aspect_ratio
        if request.mode == "image":
            image, crop = await run_step(rt, prepare_image, request.image, quote(row),
                                         request.aspect_ratio, request.resolution,
                                         request.focus)
            aspect = crop.aspect_ratio
    aspect = "16:9" if aspect == "auto" else aspect
    shots = [Shot(prompt=s.prompt, seconds=max(1, round(s.duration))) for s in request.scenes]
    handle = None
    for index, step in enumerate(decision.steps):
        mode = request.mode if index == 0 else "extend"
        submit = SubmitRequest(
            model=row.id, endpoint=row.endpoint, mode=mode, prompt=prepared.prompt,
            negative_prompt=prepared.negative_prompt, seconds=step.seconds,
            resolution=request.resolution, aspect_ratio=aspect,
            wire_params=row.wire[request.resolution].params,
            size=row.wire[request.resolution].sizes.get(aspect), audio=request.audio,
            image=image,
            image_type="image/jpeg", camera_control=prepared.camera_control, shots=shots,
            parent_video_id=parent_video if mode == "extend" else None)
        async with rt.slots.slot(decision.concurrency_key):
            if rt.before_submit:
                rt.before_submit(request, decision, index)
            with tags(*labels):
                handle = await run_step(rt, submit_job, rt, quote(request), quote(decision),
                                        index, quote(submit))
                outcome = await run_step(rt, await_job, rt, quote(request), quote(decision),
                                         index, handle)
        if outcome.state == "pending":
            raise PendingAtDeadline(f"pending at deadline: {decision.model} job "
                                    f"{handle.job_id} is still running; the next run of this "
                                    "request or the sweep will collect it")
        if outcome.state == "failed":
            raise JobFailed(outcome.status.message or "failed", policy=outcome.status.policy)
        if index + 1 < len(decision.steps):
            parent_video = (await rt.adapter(row, decision.tier).result(handle)).video_id
    return Made(handle, aspect, prepared, crop)


async def _finish(rt: Runtime, request: ClipRequest, decision: RoutePlan, made: Made,
                  expected: float, regenerated: bool) -> ClipResult:
    """Archive, inspect, check the delivered size against the downgrade policy, publish."""
    archived = await run_step(rt, archive_output, rt, quote(request), quote(decision),
                              len(decision.steps) - 1, made.handle)
    sound = rt.catalog.row(decision.model).audio
    inspection, trimmed = await run_step(rt, inspect_clip, rt, quote(request), archived,
                                         expected, sound)
    if trimmed.audio_mismatch:
        get_run_logger().warning("clip %s: %s (%s makes audio: %s)", request.clip_id[:12],
                                 trimmed.audio_mismatch, decision.model, sound)
    asked = asked_size(request.resolution, made.aspect)
    downgraded = min(inspection.width, inspection.height) < min(asked)
    if downgraded and request.downgrade == "fail":
        raise DeliveredDowngraded(f"delivered {inspection.size}, asked {asked[0]}x{asked[1]}; "
                                  "downgrade policy is fail")
    result = await publish(rt, request, decision, archived, inspection, trimmed, made.prepared,
                           made.crop, downgraded)
    if downgraded and request.downgrade == "regenerate" and not regenerated:
        get_run_logger().warning("silently downgraded; regenerating once as take %d",
                                 request.take + 1)
        reject(rt, result, request, decision, f"silently downgraded to "
               f"{result.resolution_actual}; replaced by take {request.take + 1}")
        return await generate(rt, request.model_copy(update={"take": request.take + 1}),
                              regenerated=True)
    return result
