"""await_job: wait for a submitted job within k x p95 and record its charges as they land.

No Prefect timeout and no retries (DESIGN.md §6): the deadline is the poller's. A job seen going
from running back to queued was re-queued (each one a charge); where the provider reports its
own deduction (Kling's final_unit_deduction), re-queues no poll happened to see are charged too.
A job still running at the deadline is `pending`: kept, and collected by the next run or the
sweep. Progress goes to a UI artifact per job when the run shows per-clip UI.
"""

import asyncio
import functools
from datetime import UTC, datetime
from decimal import Decimal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models import ClipRequest, JobHandle, JobStatus, RoutePlan, usd_text
from providers import latency
from providers.poller import PollOutcome, PollPlan, plan_for
from providers.poller import await_job as poll_until_done
from providers.pricebook import clip_cost, failed_charge, requeue_charge
from tasks import run_names
from tasks.charges import charge
from tasks.progress import Progress, job_key
from tasks.runtime import Runtime


class PendingAtDeadline(RuntimeError):
    """The provider had not finished by k x p95: the job is kept; the next run or the sweep
    collects it and its charge."""


def poll_plan_of(rt: Runtime, model: str, seconds: int, resolution: str) -> PollPlan:
    """A job's polling schedule and deadline (k x p95 of its latency prior, time-scaled)."""
    row = rt.catalog.row(model)
    prior = latency.estimate(row.latency, seconds, resolution, datetime.now(UTC))
    return plan_for(prior, time_scale=rt.time_scale(row.protocol),
                    k=rt.settings.poll_deadline_k)


async def await_step(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                     handle: JobHandle, on_progress=None) -> PollOutcome:
    """Wait for the job within k x p95; record its charge (and any re-queue) as it lands."""
    row = rt.catalog.row(plan.model)
    tier = row.tier_named(plan.tier)
    adapter = rt.adapter(row, plan.tier)
    seconds = plan.steps[index].seconds
    poll_plan = poll_plan_of(rt, plan.model, seconds, request.resolution)
    states: list[str] = []

    def requeued() -> None:
        charge(rt, request, plan, index, "requeue",
               requeue_charge(row, tier, request.resolution, seconds,
                              row.sound_priced(request.audio)), "requeue")

    def seen(status: JobStatus, done: float) -> None:
        if states and states[-1] == "running" and status.state == "queued":
            requeued()
        states.append(status.state)
        if on_progress:
            on_progress(status, done)

    elapsed = (datetime.now(UTC) - handle.submitted_at).total_seconds()
    outcome = await poll_until_done(adapter.status, handle, poll_plan, on_progress=seen,
                                    elapsed_at_start=max(0.0, elapsed))
    timing = {"queued_s": round(outcome.queued_s, 3), "running_s": round(
        outcome.waited_s - (outcome.running_seen_s or 0), 3)}
    units = outcome.status.billed_units
    if outcome.state in ("succeeded", "failed") and units is not None:
        # the provider's own deduction counts the re-queues no poll happened to see: a
        # re-queue bills the whole generation again, a failure less than one
        reported = int(units / seconds + 1e-6) - (outcome.state == "succeeded")
        step = rt.journal.read(request.clip_id).steps[index]
        for _ in range(reported - step.charged("requeue")):
            requeued()
    cost = Decimal(0)
    if outcome.state == "succeeded":
        cost = clip_cost(tier, request.resolution, seconds, row.sound_priced(request.audio))
        await asyncio.to_thread(functools.partial(
            charge, rt, request, plan, index, "complete", cost, "generation", **timing))
    elif outcome.state == "failed":
        cost = Decimal(0) if outcome.status.policy else failed_charge(
            row, tier, request.resolution, seconds, row.sound_priced(request.audio))
        await asyncio.to_thread(functools.partial(
            charge, rt, request, plan, index, "fail", cost, "failed_generation", **timing))
    await asyncio.to_thread(rt.journal.finish_step, request.clip_id, index, outcome.state,
                            outcome.status.message)
    get_run_logger().info("job %s %s after %.0f s: %s charged%s", handle.job_id, outcome.state,
                          outcome.waited_s, usd_text(cost),
                          f" ({outcome.status.message})" if outcome.state == "failed"
                          and outcome.status.message else "")
    return outcome


@task(name="await job", task_run_name=run_names.await_, retries=0, cache_policy=NO_CACHE)
async def await_job(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int,
                    handle: JobHandle) -> PollOutcome:
    """No Prefect timeout: the deadline is the poller's (k x p95); progress goes to the UI."""
    if not rt.per_clip_ui:
        return await await_step(rt, request, plan, index, handle)
    label = f"{plan.model_name} job {handle.job_id}"
    async with Progress(job_key(request.clip_id, handle.job_id), label) as progress:
        return await await_step(rt, request, plan, index, handle,
                                on_progress=lambda status, done: progress.report(
                                    done, status.state, status.message))
