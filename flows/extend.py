"""extend_clip: continue an archived clip with the native extension of the model that made it
(Kling video-extend with the result's video id; OpenAI /videos/extensions). The child is a new
clip — its own id, archive entry, inspection and ledger rows — whose parent is kept in the journal
and the ledger (parent_clip_id). The last-frame fallback for models without extension comes with
generate_storyboard's continuity work."""

import sys

from prefect import flow

from flows.clip_result import ClipResult
from flows.generate import generate_in_run
from models import ClipRequest


@flow(name="extend-clip", retries=0, log_prints=True)
async def extend_clip(clip_id: str, prompt: str, seconds: float, take: int = 0) -> ClipResult:
    """Add `seconds` to the archived clip `clip_id`, described by `prompt`."""
    return await generate_in_run(ClipRequest(mode="extend", source_clip=clip_id, prompt=prompt,
                                             duration=seconds, take=take))


if __name__ == "__main__":
    from cli.main import main

    sys.exit(main(["extend", *sys.argv[1:]]))
