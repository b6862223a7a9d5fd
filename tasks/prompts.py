"""The Prefect task that prepares a clip's prompt (the plain work is tasks/prompt_text.py)."""

import asyncio

from prefect import task
from prefect.cache_policies import NO_CACHE

from providers.catalog import ModelRow
from tasks import run_names
from tasks.prompt_text import PreparedPrompt, prepare_prompt_text


@task(name="prepare prompt", task_run_name=run_names.labelled("prepare prompt"), retries=0,
      cache_policy=NO_CACHE)
async def prepare_prompt(prompt: str, row: ModelRow, camera: str | None = None,
                         negative_prompt: str | None = None) -> PreparedPrompt:
    """Pure and linear in the prompt, nothing to retry; in a thread, so a long prompt never
    holds up the event loop (every other job's polling)."""
    return await asyncio.to_thread(prepare_prompt_text, prompt, row, camera=camera,
                                   negative_prompt=negative_prompt)

