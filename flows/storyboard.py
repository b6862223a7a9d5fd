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


@flow(name="generate-storyboard", flow_run_name=run_names.clip, retries=0,
      log_prints=True)
async def generate_storyboard(storyboard: StoryboardForm) -> ClipResult:
    """Scenes into one clip: native multi-shot where the model has it, else scene by scene
    with last-frame continuity, stitched.

    Args:
        storyboard: The scenes, in order (each a prompt and seconds, optionally an image and
            a camera move), and what the whole clip is delivered as.
    """
    async with clip_run() as rt:
        return await make_storyboard(rt, storyboard.to_request())
