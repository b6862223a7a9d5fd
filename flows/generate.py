"""generate_clip: plan -> prepare -> submit once -> await -> archive -> inspect -> record.

The flow only wires tasks; each task's body is a plain function in tasks/. Retries follow
DESIGN.md §6: submit_job has none (an ambiguous submit is resolved through the journal and the
provider's lookup), await_job has no Prefect timeout (its deadline is the poller's k x p95), and
archive_output retries transient errors only. Fallback re-plans without a model that refused the
prompt, stayed out of capacity past the request's wait budget, kept failing, or whose account
stopped — and says why.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from prefect import flow, get_run_logger, tags, task
from prefect.cache_policies import NO_CACHE
from prefect.context import get_run_context
from prefect.utilities.annotations import quote

from flows.clip_result import ClipResult, publish, reject
from flows.progress import Progress
from models import ClipRequest, JobHandle, Resolution, RoutePlan, Shot, SubmitRequest
from providers.catalog import ModelRow
from providers.errors import AccountError, JobFailed, RateLimited, Rejected, Transient
from providers.poller import PollOutcome
from providers.router import PlanError, parse_subscriptions, plan
from tasks.generation import (
    Archived,
    PendingAtDeadline,
    archive_step,
    asked_size,
    await_step,
    inspect_and_trim,
    journal_for,
    submit_step,
)
from tasks.images import CropResult, prepare_image_file, with_image_digest
from tasks.inspection import Inspection
from tasks.prompts import PreparedPrompt, policy_exclusions, prepare_prompt_text
from tasks.runtime import Runtime, build_runtime

MAX_FAILURES_PER_MODEL = 2
T = TypeVar("T")


def only_transient(task, task_run, state) -> bool:
    try:
        state.result()
    except Transient:
        return True
    except Exception:
        return False
    return False


def route(request: ClipRequest, rt: Runtime, excluded: dict[str, str] | None = None
          ) -> RoutePlan:
    """The router with this run's catalog, subscriptions, endpoints and exclusions (pure)."""
    words = " ".join([request.prompt, request.camera or "", *(s.prompt for s in request.scenes)])
    return plan(request, rt.catalog, now=datetime.now(UTC),
                subscriptions=parse_subscriptions(rt.settings.subscriptions, rt.catalog),
                endpoints=rt.endpoints,
                exclude={**policy_exclusions(words, rt.catalog), **(excluded or {})})


# Every task is async: a sync task called from async code builds its own Prefect client (an
# SSL context, ~50 ms) per call; CPU-bound bodies run in a thread so the event loop keeps
# polling other jobs. The runtime (journal, adapters) is not data: nothing is cached (NO_CACHE).
# Requests, plans (every rejected candidate) and catalog rows go in quote()d: Prefect would
# otherwise walk and rebuild them at every call, looking for futures (~70 ms of CPU a clip);
# handles and archived files stay plain, so the UI still links submit -> await -> archive.
@task(name="plan route", retries=0, cache_policy=NO_CACHE)
async def plan_route(request: ClipRequest, rt: Runtime, excluded: dict[str, str]) -> RoutePlan:
    return route(request, rt, excluded)


@task(name="prepare prompt", retries=0, cache_policy=NO_CACHE)
async def prepare_prompt(prompt: str, row: ModelRow, camera: str | None = None,
                         negative_prompt: str | None = None) -> PreparedPrompt:
    """Pure and fast, nothing to retry."""
    return prepare_prompt_text(prompt, row, camera=camera, negative_prompt=negative_prompt)


@task(name="prepare image", retries=0, cache_policy=NO_CACHE)
async def prepare_image(path: str, row: ModelRow, aspect: str, resolution: Resolution,
                        focus: tuple[float, float] | None) -> tuple[bytes, CropResult]:
    """CPU work on a local file; a failure is the input's, not transient."""
    return await asyncio.to_thread(prepare_image_file, path, row, aspect=aspect,
                                   resolution=resolution, focus=focus)


@task(name="inspect clip", retries=0, cache_policy=NO_CACHE)
async def inspect_clip(rt: Runtime, request: ClipRequest, archived: Archived,
                       expected_seconds: float) -> tuple[Inspection, dict]:
    return await asyncio.to_thread(inspect_and_trim, rt, request, archived, expected_seconds)


submit_job = task(submit_step, name="submit job", retries=0, cache_policy=NO_CACHE)


@task(name="await job", retries=0, cache_policy=NO_CACHE)
async def await_job(rt: Runtime, request: ClipRequest, decision: RoutePlan, index: int,
                    handle: JobHandle, run_id: str) -> PollOutcome:
    """No Prefect timeout: the deadline is the poller's (k x p95); progress goes to the UI."""
    if not rt.per_clip_ui:
        return await await_step(rt, request, decision, index, handle, run_id)
    label = f"{decision.model_name} job {handle.job_id}"
    async with Progress(f"job-{request.clip_id[:16]}-{index}", label) as progress:
        return await await_step(rt, request, decision, index, handle, run_id,
                                on_progress=lambda status, done: progress.report(
                                    done, status.state))
archive_output = task(archive_step, name="archive output", retries=2, retry_delay_seconds=[1, 4],
                      retry_jitter_factor=0.5, retry_condition_fn=only_transient,
                      cache_policy=NO_CACHE)


async def _make_clip(rt: Runtime, request: ClipRequest, decision: RoutePlan, run_id: str,
                     parent_video: str | None = None):
    """All steps of one plan; returns (last handle, aspect sent, prepared prompt, crop).
    An extension starts from the parent's provider video id."""
    row = rt.catalog.row(decision.model)
    labels = [f"provider:{decision.provider}", f"model:{decision.model}",
              f"tier:{decision.tier}"] if rt.per_clip_ui else []
    with tags(*labels):
        prepared = await prepare_prompt(
            request.prompt or " ".join(s.prompt for s in request.scenes), quote(row),
            request.camera, request.negative_prompt)
        image, crop, aspect = None, None, request.aspect_ratio
        if request.mode == "image":
            image, crop = await prepare_image(request.image, quote(row), request.aspect_ratio,
                                              request.resolution, request.focus)
            aspect = crop.aspect_ratio
    aspect = "16:9" if aspect == "auto" else aspect
    size = row.wire[request.resolution].sizes.get(aspect)
    shots = [Shot(prompt=s.prompt, seconds=max(1, round(s.duration))) for s in request.scenes]
    handle = None
    for index, step in enumerate(decision.steps):
        mode = request.mode if index == 0 else "extend"
        submit = SubmitRequest(
            model=row.id, endpoint=row.endpoint, mode=mode, prompt=prepared.prompt,
            negative_prompt=prepared.negative_prompt, seconds=step.seconds,
            resolution=request.resolution, aspect_ratio=aspect,
            wire_params=row.wire[request.resolution].params, size=size, image=image,
            image_type="image/jpeg", camera_control=prepared.camera_control, shots=shots,
            parent_video_id=parent_video if mode == "extend" else None)
        async with rt.slots.slot(decision.provider, decision.tier):
            if rt.before_submit:
                rt.before_submit(request, decision, index)
            with tags(*labels):
                handle = await submit_job(rt, quote(request), quote(decision), index,
                                          quote(submit), run_id)
                outcome = await await_job(rt, quote(request), quote(decision), index, handle,
                                          run_id)
        if outcome.state == "pending":
            raise PendingAtDeadline(f"pending at deadline: {decision.model} job "
                                    f"{handle.job_id} is still running; the next run of this "
                                    "request or the sweep will collect it")
        if outcome.state == "failed":
            raise JobFailed(outcome.status.message or "failed", policy=outcome.status.policy)
        if index + 1 < len(decision.steps):
            parent_video = (await rt.adapter(row, decision.tier).result(handle)).video_id
    return handle, aspect, prepared, crop


async def generate(rt: Runtime, request: ClipRequest, run_id: str,
                   regenerated: bool = False, planned: RoutePlan | None = None) -> ClipResult:
    """The plain orchestration (the flow is a thin wrapper around this). `planned`: the plan
    a batch already made for this request before paying anything, used until a fallback."""
    logger = get_run_logger()
    excluded: dict[str, str] = {}
    failures: dict[str, int] = {}
    waited: dict[str, float] = {}
    request = with_image_digest(request)
    parent_video, expected = None, request.seconds
    if request.mode == "extend":
        request, parent_video, expected = _extension_of(rt, request)
    while True:
        record = rt.journal.read(request.clip_id)
        if record and record.state == "done":
            logger.info("clip %s is already archived: nothing to pay", request.clip_id[:12])
            return ClipResult.model_validate(record.inspection["result"])
        resumable = bool(record and record.plan and record.steps and record.steps[-1].state in (
            "intent", "submitted", "pending", "unknown") and record.steps[-1].model not in
            excluded)
        if resumable:
            decision = RoutePlan.model_validate(record.plan)
        elif planned is not None and not excluded:
            decision = planned
        else:
            decision = await plan_route(quote(request), rt, excluded)
        logger.info("plan: %s", "; ".join(decision.reasons))
        if decision.storyboard == "emulated":
            raise PlanError("mode", f"{decision.model} has no native storyboard; scene-by-scene "
                            "storyboards are generate_storyboard's (reelflow storyboard FILE)",
                            ["text", "image", "extend", "storyboard on a native model"])
        with rt.journal.locked(request.clip_id) as locked:
            existing, _ = locked.ensure(journal_for(request, decision))
            if not resumable and existing.plan != decision.model_dump(mode="json"):
                existing.plan, existing.state = decision.model_dump(mode="json"), "running"
                locked.write(existing)
        why = None
        try:
            handle, aspect, prepared, crop = await _make_clip(rt, request, decision, run_id,
                                                              parent_video)
        except RateLimited as err:
            scale = rt.time_scale(rt.catalog.row(decision.model).protocol)
            pause = err.retry_after_s or scale * min(30.0, 1.0 + waited.get(decision.model, 0))
            if waited.get(decision.model, 0.0) + pause <= request.fallback_wait_s:
                waited[decision.model] = waited.get(decision.model, 0.0) + pause
                logger.info("out of capacity on %s; waiting %.1f s", decision.model, pause)
                await asyncio.sleep(pause)
                continue
            why = _fallback_reason(err, decision, failures)
        except (Rejected, AccountError, JobFailed) as err:
            why = _fallback_reason(err, decision, failures)
            if why is None:
                _note_attempt(rt, request.clip_id, f"{decision.model}: failed, retrying")
                continue
        if why is not None:
            _note_attempt(rt, request.clip_id, f"{decision.model}: {why}")
            for row in rt.catalog.models:
                if row.id == decision.model or (
                        "account" in why and row.provider == decision.provider):
                    excluded[row.id] = why
            logger.warning("falling back from %s: %s", decision.model, why)
            continue
        archived = await archive_output(rt, quote(request), quote(decision),
                                        len(decision.steps) - 1, handle)
        inspection, trimmed = await inspect_clip(rt, quote(request), archived, expected)
        expected = asked_size(request, aspect)
        downgraded = min(inspection.width, inspection.height) < min(expected)
        if downgraded and request.downgrade == "fail":
            raise RuntimeError(f"delivered {inspection.width}x{inspection.height}, asked "
                               f"{expected[0]}x{expected[1]}; downgrade policy is fail")
        result = await publish(rt, request, decision, archived, inspection, trimmed, prepared, crop,
                         downgraded, run_id)
        if downgraded and request.downgrade == "regenerate" and not regenerated:
            logger.warning("silently downgraded; regenerating once as take %d",
                           request.take + 1)
            reject(rt, result, request, decision, f"silently downgraded to "
                   f"{result.resolution_actual}; replaced by take {request.take + 1}", run_id)
            return await generate(rt, request.model_copy(update={"take": request.take + 1}),
                                  run_id, regenerated=True)
        return result


def _extension_of(rt: Runtime, request: ClipRequest) -> tuple[ClipRequest, str, float]:
    """The request pinned to the parent's model, the provider's video id to continue, and the
    length the extended clip must have. Native extension only: it needs that video id."""
    parent = rt.journal.read(request.source_clip or "")
    if parent is None or parent.state != "done" or not parent.steps:
        raise PlanError("source_clip", f"no archived clip {request.source_clip!r} in this home")
    remote = parent.steps[-1].remote
    if remote is None or not remote.video_id:
        raise PlanError("source_clip", f"the provider gave no video id for "
                        f"{request.source_clip}: its model cannot extend it natively")
    model = parent.plan["model"]
    delivered = parent.inspection["inspection"]["seconds"]
    pinned = request.model_copy(update={
        "policy": model, "resolution": parent.request["resolution"],
        "aspect_ratio": parent.request["aspect_ratio"]})
    return pinned, remote.video_id, delivered + request.seconds


def _fallback_reason(err: Exception, decision: RoutePlan, failures: dict[str, int]
                     ) -> str | None:
    if isinstance(err, Rejected) or (isinstance(err, JobFailed) and err.policy):
        return f"refused on content policy ({err})"
    if isinstance(err, AccountError):
        return f"account {decision.provider}:{decision.tier} stopped ({err})"
    if isinstance(err, RateLimited):
        return "out of capacity past the request's wait budget"
    failures[decision.model] = failures.get(decision.model, 0) + 1
    if failures[decision.model] >= MAX_FAILURES_PER_MODEL:
        return f"failed {failures[decision.model]} times ({err})"
    return None


def _note_attempt(rt: Runtime, clip_id: str, why: str) -> None:
    with rt.journal.locked(clip_id) as locked:
        record = locked.read()
        record.attempts.append(why)
        record.state = "running"
        locked.write(record)


async def in_run(make: Callable[[Runtime, str], Awaitable[T]]) -> T:
    """`make(runtime, run id)` inside the current flow run, with a runtime built for it and
    closed after (every flow's body goes through here)."""
    run_id = str(get_run_context().flow_run.id)
    rt = await asyncio.to_thread(build_runtime, run_id)
    try:
        return await make(rt, run_id)
    finally:
        await rt.aclose()


@flow(name="generate-clip", retries=0, log_prints=True)
async def generate_clip(request: ClipRequest) -> ClipResult:
    """One request in; one verified, archived clip out, paid for once."""
    return await in_run(lambda rt, run_id: generate(rt, request, run_id))


if __name__ == "__main__":
    from cli.main import main

    sys.exit(main(["generate", *sys.argv[1:]]))
