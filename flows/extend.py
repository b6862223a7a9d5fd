"""extend_clip: continue an archived clip.

Native extension where the clip's model has it and the provider gave a video id (Kling
video-extend, OpenAI /videos/extensions): chains of extension steps reach long clips within the
model's cap, each step paid once. Elsewhere — a model without the endpoint, or a clip that was
itself stitched — the last-frame fallback: the parent's last frame starts an image-to-video
continuation (on the parent's model when it takes images, else the router's choice), and parent
and continuation are stitched into the child (tasks/extension.py).
"""

from prefect import flow

from models import ClipResult
from tasks import run_names
from tasks.extension import extend
from tasks.runtime import clip_run


@flow(name="extend-clip", flow_run_name=run_names.extension, retries=0, log_prints=True)
async def extend_clip(clip_id: str, prompt: str, seconds: float, take: int = 0) -> ClipResult:
    """Add `seconds` to the archived clip `clip_id`, described by `prompt`."""
    async with clip_run() as rt:
        return await extend(rt, clip_id, prompt, seconds, take)
