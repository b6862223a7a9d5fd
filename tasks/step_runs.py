"""How a clip's steps run: each as a task run of its own for a single clip, whose UI shows
them; in a batch, which shows its own progress and summary, as plain calls inside the row's one
task run. A task run costs the worker ~16 ms of CPU and the Prefect server two or three API
calls: a 1,000-row batch made five of them per row, then two (issue 22). A step with Prefect
retries (archiving's transient errors) keeps them as a plain call: the same number, delays,
jitter and retry condition, applied here — so a batch row is one task run."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from prefect import Task
from prefect.states import Failed
from prefect.utilities.annotations import BaseAnnotation
from prefect.utilities.math import clamped_poisson_interval

from tasks.runtime import Runtime

R = TypeVar("R")
# (attempt, retries) of the step running as a plain call in this context
_ATTEMPT: ContextVar[tuple[int, int] | None] = ContextVar("step_attempt", default=None)


async def run_step(rt: Runtime, step: Task[..., Awaitable[R]], *args: Any) -> R:
    if rt.per_clip_ui:
        return await step(*args)
    plain: Callable[..., Awaitable[R]] = step.fn
    values = [a.unwrap() if isinstance(a, BaseAnnotation) else a for a in args]
    attempt = 0
    while True:
        token = _ATTEMPT.set((attempt, step.retries))
        try:
            return await plain(*values)
        except Exception as err:
            if attempt >= step.retries or not _retried(step, err):
                raise
        finally:
            _ATTEMPT.reset(token)
        await asyncio.sleep(_delay(step, attempt))
        attempt += 1


def last_attempt() -> bool:
    """Whether the step running now gets no retry after this attempt: its plain call's count,
    else its own task run's, else (called outside any step) true."""
    from prefect.context import TaskRunContext

    plain = _ATTEMPT.get()
    if plain is not None:
        attempt, retries = plain
        return attempt >= retries
    context = TaskRunContext.get()
    if context is None:
        return True
    return context.task_run.run_count > context.task.retries


def _retried(step: Task, err: Exception) -> bool:
    """The step's retry condition, asked as Prefect's engine asks it: with the error as a
    Failed state's data (a plain call has no task run to show it)."""
    condition = step.retry_condition_fn
    if condition is None:
        return True
    return bool(condition(step, None, Failed(data=err)))  # type: ignore[arg-type]


def _delay(step: Task, attempt: int) -> float:
    """Prefect's: the attempt's delay (the last one repeated), with the step's jitter."""
    delays = step.retry_delay_seconds or 0
    delay = delays[min(attempt, len(delays) - 1)] if isinstance(delays, Sequence) else delays
    if step.retry_jitter_factor and delay > 0:
        delay = clamped_poisson_interval(delay, clamping_factor=step.retry_jitter_factor)
    return float(delay)
