"""A run that may suspend holds no slot while the provider renders, so its account's jobs in
flight are counted from the journal, under the journal's lock for the account: a submit waits
while the account is at its limit, and goes once a job ends."""

import asyncio
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from models import ClipRequest, JobHandle
from providers.router import parse_subscriptions, plan
from storage.journal import new_record
from storage.journal_folder import FolderJournal
from storage.records import StepRecord
from tasks.suspending import admitted


def _submitted(journal, decision, request: ClipRequest, job: str) -> str:
    clip = journal.start(new_record(request, decision)).clip_id
    journal.record_intent(clip, StepRecord(index=0, kind="generate", seconds=5,
                                           model=decision.model, tier=decision.tier, key=job))
    journal.record_submit(clip, 0, JobHandle(
        protocol="kling_native", endpoint="sandbox", endpoint_kind="sandbox",
        account=f"{decision.provider}:{decision.tier}", credential_ref="KEY", job_id=job,
        submitted_at=datetime.now(UTC)))
    return clip


@pytest.fixture
def world(catalog, now, sandbox_endpoints):
    return catalog, now, sandbox_endpoints


def _account(tmp_path, world, prompt: str, limit: int):
    """A folder journal, a Kling request and its plan, and a runtime whose account allows
    `limit` jobs in flight."""
    catalog, now, endpoints = world
    journal = FolderJournal(tmp_path / "journal")
    request = ClipRequest(prompt=prompt, duration=5, resolution="720p", policy="kling-v3")
    decision = plan(request, catalog, now=now, endpoints=endpoints,
                    subscriptions=parse_subscriptions("kling:standard", catalog))
    rt = SimpleNamespace(journal=journal, admissions={}, slots=SimpleNamespace(
        limits={decision.concurrency_key: limit}))
    return journal, request, decision, rt


def test_a_submit_waits_while_the_account_is_at_its_limit_and_goes_once_a_job_ends(
        tmp_path, world):
    journal, request, decision, rt = _account(tmp_path, world, "A tern, held back", 2)
    first = _submitted(journal, decision, request, "job-1")
    _submitted(journal, decision, request.model_copy(update={"take": 1}), "job-2")
    assert journal.jobs_in_flight(f"{decision.provider}:{decision.tier}") == 2
    assert journal.jobs_in_flight("fal:standard") == 0

    async def submit() -> float:
        async with admitted(rt, decision):
            return time.monotonic()

    async def scenario() -> tuple[float, float]:
        waiting = asyncio.create_task(submit())
        await asyncio.sleep(1.0)
        assert not waiting.done()  # two in flight, limit two: it waits
        ended = time.monotonic()
        await asyncio.to_thread(journal.finish_step, first, 0, "succeeded", None)
        return ended, await asyncio.wait_for(waiting, 15)

    ended, went = asyncio.run(scenario())
    assert went >= ended


def test_a_chunk_s_many_submits_at_once_are_admitted_one_by_one_without_hanging(
        tmp_path, world):
    """25 clips of a chunk run ask at once: one thread waits on the journal's lock, not 25 —
    25 filled the default thread pool and the holder could not count or send (bench
    webhooks hung on its first chunk). Each is admitted with the ones before it sent, and the
    account's jobs are counted once for the 25, not once each (a count reads every open
    record)."""
    journal, request, decision, rt = _account(tmp_path, world, "A flock of terns", 100)

    async def submit(n: int) -> None:
        async with admitted(rt, decision):
            await asyncio.to_thread(
                _submitted, journal, decision, request.model_copy(update={"take": n}),
                f"job-{n}")

    async def chunk() -> None:
        await asyncio.wait_for(asyncio.gather(*(submit(n) for n in range(25))), 60)

    counted = []
    count = journal.jobs_in_flight
    journal.jobs_in_flight = lambda account: counted.append(account) or count(account)
    asyncio.run(chunk())
    assert count(f"{decision.provider}:{decision.tier}") == 25
    assert len(counted) == 1


def test_submits_held_under_one_count_still_stop_at_the_account_s_limit(
        tmp_path, world):
    journal, request, decision, rt = _account(tmp_path, world, "A line of terns", 5)
    account = f"{decision.provider}:{decision.tier}"
    sent: list[str] = []

    async def submit(n: int) -> None:
        async with admitted(rt, decision):
            sent.append(await asyncio.to_thread(
                _submitted, journal, decision, request.model_copy(update={"take": n}),
                f"job-{n}"))

    async def scenario() -> None:
        submits = asyncio.gather(*(submit(n) for n in range(8)))
        await asyncio.sleep(1.5)
        assert len(sent) == 5 and journal.jobs_in_flight(account) == 5  # the rest wait
        for clip in sent[:3]:
            await asyncio.to_thread(journal.finish_step, clip, 0, "succeeded", None)
        await asyncio.wait_for(submits, 30)

    asyncio.run(scenario())
    assert len(sent) == 8 and journal.jobs_in_flight(account) == 5
