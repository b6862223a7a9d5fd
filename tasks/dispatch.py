"""One request, whatever its mode — the entry a batch row and the sweep share: storyboards and
extensions have their own paths; a single clip starts from the plan a batch made before paying
anything, when there is one."""

from models import ClipRequest, ClipResult, RoutePlan
from tasks.clip_lifecycle import generate
from tasks.extension import extend
from tasks.runtime import Runtime
from tasks.storyboards import make_storyboard


async def make(rt: Runtime, request: ClipRequest, plan: RoutePlan | None = None) -> ClipResult:
    if request.mode == "storyboard":
        return await make_storyboard(rt, request)
    if request.mode == "extend":
        return await extend(rt, request)
    return await generate(rt, request, planned=plan)
