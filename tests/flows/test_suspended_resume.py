"""A run with wait=suspend parks a clip once its job is journaled and rendering; the run that
resumes it collects that job and is never admitted again for it — with the account at its
limit (its own job among those in flight) a second admission waited on itself for ever (bench
webhooks' resumed chunk run hung so). Judged by the sandbox's bill: one job, one charge."""

import asyncio
import uuid

import pytest
from prefect import flow

from models import ClipRequest
from tasks.clip_lifecycle import generate
from tasks.runtime import clip_run
from tasks.suspending import Parked
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
SLOW = {"p50_5s": 4000, "p95_5s": 5000, "p50_30s": 8000}


@flow
async def parked_then_resumed(request: ClipRequest) -> tuple[list[str], str]:
    """generate() as a suspending run makes it, at an account limit of one: it parks; made
    again, as the resumed run would make it while the job still renders, it parks again
    (not admitted: it holds no new slot); once the job ends it is collected."""
    async with clip_run(wait="suspend", may_suspend=True) as rt:
        decision_key = "provider:fal:standard"
        rt.slots.limits[decision_key] = 1
        parks = []
        for _ in range(50):
            try:
                result = await asyncio.wait_for(generate(rt, request), 60)
            except Parked as parked:
                parks.append(parked.waiting.steps[0].job_id)
                await asyncio.sleep(0.5)
                continue
            return parks, result.clip_id
    raise AssertionError("never collected")


def test_a_resumed_run_collects_its_parked_job_without_being_admitted_again(home, sandbox,
                                                                          monkeypatch):
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "200")
    sandbox.knobs(fal=SLOW)
    try:
        request = ClipRequest(prompt=f"A heron, parked {uuid.uuid4().hex[:6]}", duration=5,
                              resolution="720p", policy="kling-v3-fal")
        parks, clip = asyncio.run(parked_then_resumed(request))
    finally:
        sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143})
    record = journal_of(home).read(clip)
    assert record.state == "done" and len(record.job_ids) == 1
    assert len(parks) >= 2 and set(parks) == set(record.job_ids)  # the same job each time
    billed = [u for u in sandbox.usage() if u["job_id"] == record.job_ids[0]]
    assert [u["kind"] for u in billed] == ["complete"]
    assert_reconciled(home, sandbox)
