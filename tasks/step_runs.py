"""How a clip's steps run: each as a task run of its own for a single clip, whose UI shows
them; in a batch, which shows its own progress and summary, as plain calls inside the row's one
task run. A task run costs the worker ~16 ms of CPU and the Prefect server two or three API
calls: a 1,000-row batch made five of them per row (issue 22). A step with Prefect retries
(archiving's transient errors) stays a task run of its own, so its retries stay Prefect's."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prefect import Task
from prefect.utilities.annotations import BaseAnnotation

from tasks.runtime import Runtime

R = TypeVar("R")


async def run_step(rt: Runtime, step: Task[..., Awaitable[R]], *args: Any) -> R:
    if rt.per_clip_ui or step.retries:
        return await step(*args)
    plain: Callable[..., Awaitable[R]] = step.fn
    return await plain(*(a.unwrap() if isinstance(a, BaseAnnotation) else a for a in args))
