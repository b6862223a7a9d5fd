"""Bounded adaptive polling, shared by every adapter.

The job's latency prior (the catalog's, for this model, duration, resolution and hour — later the
ledger's measurements) is a lognormal. After `t` seconds the next poll goes where the job has a
chance `q` of having finished since the last one:
t' = m * exp(sigma * z), with z = Φ⁻¹(F(t) + q(1 - F(t))).
Polls are sparse while completion is unlikely and dense around the median, and an interval never
exceeds `max_share` of the time already waited, so detection delay stays a small share of
generation time at a fraction of fixed-interval polling's requests.
Provider hints (openai-poll-after-ms, Retry-After) are floors.

Time spent queued does not count toward the deadline (up to a queue allowance of the same size);
the deadline itself is k × p95. Reaching it returns `pending` with the handle kept — not failed:
the provider may still finish and bill the job, and the sweep collects it. Cancel is sent only
when the caller aborts (the awaiting task is cancelled).
"""

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from statistics import NormalDist
from typing import Literal

from pydantic import BaseModel

from models import JobHandle, JobStatus
from providers.errors import RateLimited, Transient
from providers.http import backoff_s
from providers.latency import LatencyEstimate

NORMAL = NormalDist()
Z95 = 1.6448536269514722


class PollPlan(BaseModel):
    """How to wait for one job; durations already in the clock's seconds (time-scaled)."""

    p50_s: float
    sigma: float
    p95_s: float
    k: float = 3.0
    q: float = 0.1
    max_share: float = 0.1
    min_interval_s: float = 0.0
    max_interval_s: float = 60.0

    @property
    def deadline_s(self) -> float:
        return self.k * self.p95_s

    def share_done(self, elapsed: float) -> float:
        """The share of jobs like this one that have finished after `elapsed` seconds: the
        progress a person is shown when the provider reports none."""
        if elapsed <= 0:
            return 0.0
        return NORMAL.cdf((math.log(elapsed) - math.log(self.p50_s)) / max(self.sigma, 1e-6))

    def next_interval(self, elapsed: float) -> float:
        """Seconds to the next poll after `elapsed` seconds of waiting."""
        t = max(elapsed, 1e-9)
        sigma = max(self.sigma, 1e-6)
        done = NORMAL.cdf((math.log(t) - math.log(self.p50_s)) / sigma)
        target = min(done + self.q * (1 - done), 0.999999)
        next_t = self.p50_s * math.exp(sigma * NORMAL.inv_cdf(target))
        early = self.p50_s * math.exp(-Z95 * sigma)  # 5% of jobs finish before this
        if elapsed < early:
            interval = min(next_t, early) - elapsed
        else:
            # Never wait longer than a small share of the time already spent: the expected
            # detection delay stays under max_share / 2 of the generation time.
            interval = min(next_t - elapsed, self.max_share * elapsed)
        floor = max(self.min_interval_s, self.p50_s * 0.01)
        return min(max(interval, floor), self.max_interval_s)


def plan_for(estimate: LatencyEstimate, *, time_scale: float = 1.0, k: float = 3.0) -> PollPlan:
    """The poll plan for a job whose latency the catalog prior estimates (sandbox: scaled)."""
    return PollPlan(p50_s=estimate.p50_s * time_scale, sigma=estimate.sigma,
                    p95_s=estimate.p95_s * time_scale, k=k)


def _share(status: JobStatus, plan: PollPlan, elapsed: float) -> float:
    if status.state in ("succeeded", "failed"):
        return 1.0
    if status.progress is not None:
        return min(max(status.progress / 100, 0.0), 0.99)
    return 0.0 if status.state == "queued" else min(plan.share_done(elapsed), 0.95)


class PollOutcome(BaseModel):
    state: Literal["succeeded", "failed", "pending"]
    status: JobStatus
    polls: int
    errors: int
    waited_s: float
    queued_s: float
    running_seen_s: float | None


StatusFn = Callable[[JobHandle], Awaitable[JobStatus]]


async def await_job(
    status: StatusFn,
    handle: JobHandle,
    plan: PollPlan,
    *,
    cancel: Callable[[JobHandle], Awaitable[bool]] | None = None,
    on_progress: Callable[[JobStatus, float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    elapsed_at_start: float = 0.0,
) -> PollOutcome:
    """Poll `status` until the job ends or the deadline passes.

    `elapsed_at_start` is how long ago the job was submitted (a resumed job): it places the
    schedule on the job's latency curve; the deadline is counted from this call.
    Time queued (reported, and kept off the deadline) runs until the job is first seen
    running, so that it and the running time after it add up to the time waited. The schedule
    counts only the intervals the job was queued at both ends of: a job found running after it
    was found queued is taken to have started right after, not at the later poll. Counting
    that interval, as the schedule did, put a job that queued a moment back at the start of
    its curve, to wait out the sparse early interval a second time: live detection delay was
    15% of generation time where the simulation (no queue) says 5%.
    `on_progress(status, done)` sees every status with the share done in [0, 1]: the provider's
    own percentage when it reports one, else the latency curve's, capped below 1 until the job
    ends."""
    call_start = clock()
    start = call_start - elapsed_at_start
    polls = errors = 0
    queued = surely_queued = 0.0
    last = clock()
    running_seen: float | None = None
    current = JobStatus(state="queued")
    try:
        while True:
            now = clock()
            since_queued = now - last if current.state == "queued" and polls else 0.0
            queued = min(queued + since_queued, plan.deadline_s)
            last = now
            try:
                current = await status(handle)
                polls += 1
            except RateLimited as err:
                errors += 1
                await sleep(err.retry_after_s or backoff_s(errors, 1.0, 30))
                continue
            except Transient:
                errors += 1
                current = current.model_copy()
            if current.state == "queued":  # queued at both ends of the interval
                surely_queued = min(surely_queued + since_queued, plan.deadline_s)
            elapsed = clock() - start
            if on_progress:
                on_progress(current, _share(current, plan, elapsed))
            if current.state == "running" and running_seen is None:
                running_seen = elapsed
            if current.state in ("succeeded", "failed"):
                return PollOutcome(state=current.state, status=current, polls=polls,
                                   errors=errors, waited_s=elapsed, queued_s=queued,
                                   running_seen_s=running_seen)
            budget_used = clock() - call_start - queued
            if budget_used >= plan.deadline_s:
                return PollOutcome(state="pending", status=current, polls=polls,
                                   errors=errors, waited_s=elapsed, queued_s=queued,
                                   running_seen_s=running_seen)
            interval = plan.next_interval(max(elapsed - surely_queued, 0.0))
            if current.poll_after_s:
                interval = max(interval, current.poll_after_s)
            await sleep(min(interval, plan.deadline_s - budget_used + 1e-3))
    except asyncio.CancelledError:
        if cancel is not None:
            await asyncio.shield(cancel(handle))
        raise
