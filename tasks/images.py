"""The Prefect task that prepares a clip's input image (the plain work is tasks/image_files.py)."""

import asyncio
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from models import Resolution
from providers.catalog import ModelRow
from tasks import run_names
from tasks.image_files import CropResult, prepare_image_file


@task(name="prepare image", task_run_name=run_names.labelled("prepare image"), retries=0,
      cache_policy=NO_CACHE)
async def prepare_image(path: str, row: ModelRow, aspect: str, resolution: Resolution,
                        focus: tuple[float, float] | None,
                        options: dict[str, Any] | None = None) -> tuple[bytes, CropResult]:
    """CPU work on a file, or on an object read from a store with fsspec storage `options`
    (a chunk run on another machine reads its image there), in a thread; a failure is the
    input's, not transient."""
    return await asyncio.to_thread(prepare_image_file, path, row, options, aspect=aspect,
                                   resolution=resolution, focus=focus)
