"""generate_clip: plan -> prepare -> submit once -> await -> archive -> inspect -> record.

The flow is the entry; the clip's life is tasks/clip_lifecycle.py, one task per box of the DAG
(DESIGN.md §1). Retries follow DESIGN.md §6: submit_job has none (an ambiguous submit is
resolved through the journal and the provider's lookup), await_job has no Prefect timeout (its
deadline is the poller's k x p95), and archive_output retries transient errors only. A fallback
re-plans without a model that refused the prompt, stayed out of capacity past the request's
wait budget, kept failing, or whose account stopped — and says why.
"""

from prefect import flow

from models import ClipResult
from tasks import run_names
from tasks.clip_lifecycle import generate
from tasks.forms import ClipForm
from tasks.runtime import clip_run


@flow(name="generate-clip", flow_run_name=run_names.clip, retries=0, log_prints=True)
async def generate_clip(request: ClipForm) -> ClipResult:
    """One request in; one verified, archived clip out, paid for once.

    Args:
        request: The clip: text to video (a prompt and a duration), or image to video (an
            image too). Every field left out takes its default.
    """
    async with clip_run() as rt:
        return await generate(rt, request.to_request())
