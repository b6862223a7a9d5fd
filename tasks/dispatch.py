"""One request, whatever its mode — the entry a batch row, the sweep and generate_clip share:
storyboards and extensions have their own paths; an edit of an archived clip (a text request
naming its source clip, longer than it) is an extension when that is cheaper (tasks/edits.py);
a single clip starts from the plan a batch made before paying anything, when there is one."""

from prefect import get_run_logger

from models import ClipRequest, ClipResult, RoutePlan
from tasks.clip_lifecycle import generate
from tasks.edits import is_edit, plan_edit
from tasks.extension import extend
from tasks.runtime import Runtime
from tasks.storyboards import make_storyboard


async def make(rt: Runtime, request: ClipRequest, plan: RoutePlan | None = None) -> ClipResult:
    if request.mode == "storyboard":
        return await make_storyboard(rt, request)
    if is_edit(request):
        edit = plan_edit(rt, request)
        get_run_logger().info("plan: %s", edit.why)
        if edit.request is not request:
            return await extend(rt, edit.request)
    if request.mode == "extend":
        return await extend(rt, request)
    return await generate(rt, request, planned=plan)
