"""The adaptive schedule, on a fake clock: sparse early, dense near the median, bounded."""

import asyncio

import pytest

from models import JobHandle, JobStatus
from providers.errors import Transient
from providers.poller import PollPlan, await_job

HANDLE = JobHandle(protocol="kling_native", endpoint="x", endpoint_kind="sandbox",
                   account="a", credential_ref="r", job_id="1",
                   submitted_at="2026-11-25T00:00:00Z")
KLING_5S = PollPlan(p50_s=38, sigma=0.55, p95_s=94)


class FakeJob:
    """A job that queues for `queued` seconds and finishes at `done`, on a fake clock."""

    def __init__(self, done: float, queued: float = 0.0, errors_at: tuple[int, ...] = ()):
        self.now, self.done, self.queued, self.errors_at, self.calls = 0.0, done, queued, \
            errors_at, 0

    async def status(self, handle):
        self.calls += 1
        if self.calls in self.errors_at:
            raise Transient("blip")
        if self.now >= self.done:
            return JobStatus(state="succeeded")
        return JobStatus(state="queued" if self.now < self.queued else "running")

    async def sleep(self, seconds):
        self.now += seconds

    def clock(self):
        return self.now


def wait(job, plan, **kw):
    return asyncio.run(await_job(job.status, HANDLE, plan, clock=job.clock, sleep=job.sleep,
                                 **kw))


def test_intervals_shrink_toward_the_median_then_grow():
    early, near, late = (KLING_5S.next_interval(t) for t in (1, 38, 150))
    assert early > 5 and near < early and late > near


def test_a_job_at_the_median_is_found_with_few_polls_and_a_small_delay():
    job = FakeJob(done=38)
    outcome = wait(job, KLING_5S)
    assert outcome.state == "succeeded"
    assert outcome.polls <= 12
    assert outcome.waited_s - 38 < 0.2 * 38


def test_the_deadline_returns_pending_not_failed():
    job = FakeJob(done=10_000)
    outcome = wait(job, KLING_5S)
    assert outcome.state == "pending"
    assert outcome.waited_s == pytest.approx(3 * 94, abs=1)


def test_time_queued_does_not_use_up_the_deadline():
    job = FakeJob(done=330, queued=200)
    outcome = wait(job, KLING_5S)
    assert outcome.state == "succeeded" and outcome.queued_s > 150


def test_a_job_queued_a_moment_is_not_scheduled_as_if_it_queued_until_it_was_seen_running():
    """Queued at the first poll, running at the next (the sparse early one, ~15 s into a
    38 s-median job) and done at 20 s: found within the curve's usual delay, not after a
    second early wait (30.7 s when that interval was counted as queued)."""
    job = FakeJob(done=20, queued=1)
    outcome = wait(job, KLING_5S)
    assert outcome.state == "succeeded"
    assert outcome.waited_s - 20 < 0.1 * 20
    # reported: queued until first seen running, which with the running time adds up
    assert outcome.queued_s == pytest.approx(outcome.running_seen_s)


def test_transient_errors_are_counted_and_polling_goes_on():
    job = FakeJob(done=40, errors_at=(2, 3))
    outcome = wait(job, KLING_5S)
    assert outcome.state == "succeeded" and outcome.errors == 2


def test_a_provider_hint_is_a_floor():
    class Hinted(FakeJob):
        async def status(self, handle):
            status = await super().status(handle)
            return status.model_copy(update={"poll_after_s": 30.0})

    job = Hinted(done=38)
    wait(job, KLING_5S)
    assert job.calls <= 38 // 30 + 2


def test_progress_reaches_the_callback_with_the_share_done():
    seen = []
    wait(FakeJob(done=60, queued=5), KLING_5S, on_progress=lambda s, d: seen.append((s, d)))
    assert seen[0] == (JobStatus(state="queued"), 0.0)
    running = [done for status, done in seen if status.state == "running"]
    assert running == sorted(running) and running[0] > 0 and running[-1] <= 0.95
    assert seen[-1][0].state == "succeeded" and seen[-1][1] == 1.0


def test_a_provider_s_own_percentage_is_the_progress_shown():
    class Reporting(FakeJob):
        async def status(self, handle):
            found = await super().status(handle)
            return found.model_copy(update={"progress": 42.0}) if found.state == "running" \
                else found

    seen = []
    wait(Reporting(done=30), KLING_5S, on_progress=lambda s, d: seen.append(d))
    assert 0.42 in seen and seen[-1] == 1.0
