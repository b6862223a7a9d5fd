"""One clip's life: plan -> prepare -> submit once -> await -> archive -> inspect -> publish.

`generate` resumes what the journal holds (a done clip pays nothing; a recorded job is
collected, not sent again), plans otherwise (or takes the plan a batch made before paying),
runs every step of the plan (`make_clip`), and on a model's failure asks tasks/fallback.py
whether to wait, retry or fall back. A silently downgraded clip is accepted, failed, or
regenerated once as the next take, as the request says.
"""

import asyncio
import contextlib
from typing import NamedTuple

from prefect import get_run_logger, tags
from prefect.exceptions import TerminationSignal
from prefect.utilities.annotations import quote

from models import ClipRequest, ClipResult, JobHandle, RoutePlan, Shot, SubmitRequest
from models.callback import HOOKED, Callback
from providers.errors import CapabilityRefused, JobFailed
from providers.router import PlanError
from storage.journal import new_record
from storage.records import ClipJournal
from tasks.archiving import ClipLost, archive_output, finished
from tasks.awaiting import PendingAtDeadline, await_job
from tasks.cancelling import cancel_clip
from tasks.fallback import FALLBACK_ERRORS, Fallbacks, PromptRefused, Retry, Stop, Wait
from tasks.framing import asked_size
from tasks.image_files import CropResult, with_image_digest
from tasks.images import prepare_image
from tasks.inspection import inspect_clip
from tasks.parents import native_extension
from tasks.prompt_text import PreparedPrompt
from tasks.prompts import prepare_prompt
from tasks.publishing import publish, reject
from tasks.routing import plan_route, remember_prompt_refusal, remember_refusal, route
from tasks.runtime import Runtime
from tasks.step_runs import run_step
from tasks.submission import submit_job
from tasks.suspending import admitted, park_unless_ended


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
    request = with_image_digest(request, rt.settings.inputs_options)
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
        logger.log(rt.step_log_level, "plan: %s", "; ".join(decision.reasons))
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
            if isinstance(step, Stop):
                raise _refused(rt, request, decision, err) from err
            rt.journal.note_attempt(request.clip_id, decision.model, step.why)
            if not isinstance(step, Retry):
                fallbacks.exclude(decision, step, rt.catalog)
                fell_from = (decision.model, step.why)
            continue
        return await _finish(rt, request, decision, made, expected, regenerated)


def _refused(rt: Runtime, request: ClipRequest, decision: RoutePlan,
             err: Exception) -> PromptRefused:
    """Remember the refusal, note it on the clip, and say what asking again would do."""
    learned = remember_prompt_refusal(rt, request, decision, err)
    rt.journal.note_attempt(request.clip_id, decision.model, learned.says())
    try:
        then = (f"asking again sends it to {route(request, rt).model}, routed around "
                f"{decision.provider}")
    except PlanError:
        then = "no other provider would take it"
    return PromptRefused(f"{learned.says()}: it was not sent to any other provider; reword "
                         f"it, or {then}")


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


def callback_for(rt: Runtime, protocol: str, clip_id: str, index: int) -> str | None:
    """The relay's URL for this step, where a relay is configured and the protocol calls
    back (the OpenAI Videos API has no video webhooks: openai-python lists none)."""
    settings = rt.settings
    if not settings.webhook_url or settings.webhook_secret is None or protocol not in HOOKED:
        return None
    return Callback(protocol=protocol, clip_id=clip_id, index=index).url(
        settings.webhook_url, settings.webhook_secret.get_secret_value())


@contextlib.asynccontextmanager
async def stopped_if_cancelled(rt: Runtime, clip_id: str):
    """A run cancelled once its job is journaled asks the provider to stop it, wherever the
    cancel lands: in the wait, or between the submit's journal write and the wait's first poll
    (a busy worker takes seconds there creating the await task run — the cancel the UI sent in
    that window used to leave a fal job running and billed). The worker's cancel is a
    SIGTERM, which Prefect's handler raises as TerminationSignal wherever the main thread is:
    a CancelledError at an await when it was idle, a TerminationSignal through our own code
    when it was busy (that landing left the fal job running, billed, journaled `submitted`)."""
    try:
        yield
    except (asyncio.CancelledError, TerminationSignal):
        for said in await asyncio.shield(cancel_clip(rt, clip_id)):
            get_run_logger().warning("%s", said.why)
        raise


def _has_job(rt: Runtime, clip_id: str, index: int) -> bool:
    """The step's job is journaled: a resumed run collects it, and is not admitted again —
    its own job is among those counted in flight, so at the account's limit it would wait on
    itself for ever."""
    record = rt.journal.read(clip_id)
    step = record.steps[index] if record and index < len(record.steps) else None
    return bool(step and step.handle and step.state in ("submitted", "pending", "unknown",
                                                        "succeeded"))


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
                                         request.focus, rt.settings.inputs_options)
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
            parent_video_id=parent_video if mode == "extend" else None,
            callback_url=callback_for(rt, row.protocol, request.clip_id, index))
        suspending = rt.settings.wait == "suspend"
        # a suspended run holds no process, so no slot: its account is counted in the journal
        in_flight = contextlib.nullcontext() if suspending else rt.slots.slot(
            decision.concurrency_key)
        async with in_flight, stopped_if_cancelled(rt, request.clip_id):
            if rt.before_submit:
                rt.before_submit(request, decision, index)
            with tags(*labels):
                async with admitted(rt, decision) if suspending and not _has_job(
                        rt, request.clip_id, index) else contextlib.nullcontext():
                    handle = await run_step(rt, submit_job, rt, quote(request),
                                            quote(decision), index, quote(submit))
                if suspending:
                    await park_unless_ended(rt, request, decision, index, handle)
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
