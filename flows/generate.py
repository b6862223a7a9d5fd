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
from tasks.suspending import WaitParameter, until_back


@flow(name="generate-clip", flow_run_name=run_names.clip, retries=0, log_prints=True)
async def generate_clip(request: ClipForm, wait: WaitParameter = None) -> ClipResult:
    """One request in; one verified, archived clip out, paid for once.

    Args:
        request: The clip: text to video (a prompt and a duration), or image to video (an
            image too). Every field left out takes its default.
        wait: How the run waits while the provider renders: poll, or suspend (no process
            waits; the relay's callback resumes it). Left empty: REELFLOW_WAIT, else poll.
    """
    async with clip_run(wait=wait, may_suspend=True) as rt:
        clip = request.to_request()
        return await until_back(rt, lambda rt: generate(rt, clip))
