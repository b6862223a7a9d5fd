"""generate_storyboard: scenes into one clip, natively or scene by scene.

Native multi-shot (Kling `multi_prompt`) is one generation, generate_clip's path. Everywhere
else each scene is a clip of its own with last-frame continuity, chains of scenes in parallel,
then stitched into clips/<date>/<storyboard id>.mp4 (tasks/storyboards.py). A rerun pays for
nothing done.
"""

from prefect import flow

from models import ClipResult
from tasks import run_names
from tasks.forms import StoryboardForm
from tasks.runtime import clip_run
from tasks.storyboards import make_storyboard
from tasks.suspending import WaitParameter, until_back


@flow(name="generate-storyboard", flow_run_name=run_names.clip, retries=0,
      log_prints=True)
async def generate_storyboard(storyboard: StoryboardForm,
                              wait: WaitParameter = None) -> ClipResult:
    """Scenes into one clip: native multi-shot where the model has it, else scene by scene
    with last-frame continuity, stitched.

    Args:
        storyboard: The scenes, in order (each a prompt and seconds, optionally an image and
            a camera move), and what the whole clip is delivered as.
        wait: How the run waits while the provider renders: poll, or suspend (no process
            waits; the relay's callback resumes it). Left empty: REELFLOW_WAIT, else poll.
    """
    async with clip_run(wait=wait, may_suspend=True) as rt:
        board = storyboard.to_request()
        return await until_back(rt, lambda rt: make_storyboard(rt, board))
