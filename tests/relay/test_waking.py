"""Waking a run whose last job came back a moment before its suspension: the Prefect API
refuses the resume (the run is still Running), so the relay asks again until the run has
suspended — or has ended, or the retries run out (the backstop is behind them)."""

import asyncio

import pytest

from relay import waking
from storage.callbacks import WaitGroup

GROUP = WaitGroup(key="k", flow_run_id="run-1", steps=["c-0"])


@pytest.fixture
def answers(monkeypatch):
    """The Prefect API's answers to each resume, in order: (accepted, not suspended yet)."""
    said: list[tuple[bool, bool]] = []
    asked: list[str] = []

    async def resumed(flow_run_id: str) -> tuple[bool, bool]:
        asked.append(flow_run_id)
        return said.pop(0) if said else (False, False)

    monkeypatch.setattr(waking, "_resumed", resumed)
    monkeypatch.setattr(waking, "RETRY_EVERY_S", 0.01)
    return said, asked


def test_a_run_about_to_suspend_is_resumed_once_it_has(answers):
    said, asked = answers
    said += [(False, True), (False, True), (True, False)]

    async def wake() -> bool:
        woke = await waking.resume(GROUP)
        await asyncio.gather(*waking._retrying)
        return woke

    assert asyncio.run(wake())
    assert asked == ["run-1"] * 3 and not said


def test_a_run_no_longer_suspended_is_not_asked_again(answers):
    said, asked = answers
    said.append((False, False))  # ended, or resumed by the backstop meanwhile
    assert not asyncio.run(waking.resume(GROUP))
    assert asked == ["run-1"] and not waking._retrying


def test_the_retries_stop_when_the_run_never_suspends(answers, monkeypatch):
    said, asked = answers
    monkeypatch.setattr(waking, "RETRY_FOR_S", 0.1)
    said += [(False, True)] * 1000

    async def wake() -> bool:
        woke = await waking.resume(GROUP)
        await asyncio.gather(*waking._retrying)
        return woke

    assert asyncio.run(wake())  # taken as "will be resumed"; the backstop is behind it
    assert 2 <= len(asked) < 100
