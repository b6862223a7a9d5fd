"""A batch's steps as plain calls inside the row's task run: a step with Prefect retries keeps
them (count, delays, condition) — archiving's transient errors are retried there as in a
single clip's task run — and the batch's progress bar is updated by its percentage, not once
per row."""

import asyncio

import pytest
from prefect import task

import tasks.progress
import tasks.step_runs
from providers.errors import InvalidRequest, Transient
from tasks.archiving import archive_output
from tasks.progress import Progress
from tasks.step_runs import last_attempt, run_step


class Batch:
    per_clip_ui = False


@pytest.fixture
def slept(monkeypatch):
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(tasks.step_runs.asyncio, "sleep", sleep)
    return waits


def flaky(errors: list[Exception]):
    calls: list[bool] = []

    async def step() -> str:
        calls.append(last_attempt())
        if errors:
            raise errors.pop(0)
        return "archived"

    return calls, task(step, retries=archive_output.retries,
                       retry_delay_seconds=archive_output.retry_delay_seconds,
                       retry_jitter_factor=archive_output.retry_jitter_factor,
                       retry_condition_fn=archive_output.retry_condition_fn)


def test_a_transient_error_is_retried_with_the_task_s_delays_and_the_last_try_knows(slept):
    calls, step = flaky([Transient("503"), Transient("503")])
    assert asyncio.run(run_step(Batch(), step)) == "archived"
    assert calls == [False, False, True]  # the last attempt marks a clip unarchived instead
    # 1 s and 4 s, with archive_output's jitter (factor 0.5: between half and one and a half)
    assert len(slept) == 2 and 0.5 <= slept[0] <= 1.5 and 2 <= slept[1] <= 6


def test_an_error_that_is_not_transient_is_not_retried(slept):
    calls, step = flaky([InvalidRequest("400")])
    with pytest.raises(InvalidRequest):
        asyncio.run(run_step(Batch(), step))
    assert calls == [False] and slept == []


def test_the_retries_run_out(slept):
    calls, step = flaky([Transient("503")] * 3)
    with pytest.raises(Transient):
        asyncio.run(run_step(Batch(), step))
    assert calls == [False, False, True] and len(slept) == 2


def test_outside_any_step_every_attempt_is_the_last():
    assert last_attempt()


def test_a_batch_s_bar_moves_by_its_percentage_with_the_count_shown(monkeypatch):
    sent: list[tuple[float, str]] = []

    async def update(artifact_id, percent, description):
        sent.append((percent, description))

    async def create(percent, key, description):
        return "artifact"

    monkeypatch.setattr(tasks.progress, "aupdate_progress_artifact", update)
    monkeypatch.setattr(tasks.progress, "acreate_progress_artifact", create)

    async def batch(rows: int) -> None:
        async with Progress("batch-x", "batch x", state=f"0 of {rows} requests") as progress:
            for done in range(1, rows + 1):
                progress.report(done / rows, "done" if done == rows else "running",
                                detail=f"{done} of {rows} requests")
                await asyncio.sleep(0)

    asyncio.run(batch(1000))
    assert 20 <= len(sent) <= 22, len(sent)
    assert sent[0] == (0.1, "batch x: running · 1 of 1000 requests")
    assert sent[-1] == (100.0, "batch x: done · 1000 of 1000 requests")
    assert [p for p, _ in sent] == sorted(p for p, _ in sent)
