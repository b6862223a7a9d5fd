"""extend_clip: continue an archived clip.

Native extension where the clip's model has it and the provider gave a video id (Kling
video-extend, OpenAI /videos/extensions): chains of extension steps reach long clips within the
model's cap, each step paid once. Elsewhere — a model without the endpoint, or a clip that was
itself stitched — the last-frame fallback: the parent's last frame starts an image-to-video
continuation (on the parent's model when it takes images, else the router's choice), and parent
and continuation are stitched into the child (tasks/extension.py).
"""

from typing import Annotated

from prefect import flow
from pydantic import Field

from models import ClipRequest, ClipResult
from tasks import run_names
from tasks.extension import extend
from tasks.runtime import clip_run
from tasks.suspending import WaitParameter, until_back


@flow(name="extend-clip", flow_run_name=run_names.extension, retries=0, log_prints=True)
async def extend_clip(
    clip_id: Annotated[str, Field(min_length=4, title="Clip")],
    prompt: Annotated[str, Field(min_length=1)],
    seconds: Annotated[float, Field(gt=0, title="Seconds to add")],
    take: Annotated[int, Field(ge=0)] = 0,
    wait: WaitParameter = None,
) -> ClipResult:
    """Add `seconds` to the archived clip `clip_id`, described by `prompt`.

    Args:
        clip_id: The archived clip to continue: its id or any unique prefix, such as the
            12-character id `reelflow clips` lists.
        prompt: What happens in the added seconds.
        seconds: How many seconds to add.
        take: 0 for the first take; raise it to pay for another take of the same extension.
        wait: How the run waits while the provider renders: poll, or suspend (no process
            waits; the relay's callback resumes it). Left empty: REELFLOW_WAIT, else poll.
    """
    async with clip_run(wait=wait, may_suspend=True) as rt:
        request = ClipRequest(mode="extend", source_clip=clip_id, prompt=prompt,
                              duration=seconds, take=take)
        return await until_back(rt, lambda rt: extend(rt, request))
