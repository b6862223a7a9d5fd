"""An edit of an archived clip: a text request that names its source clip and asks for a longer
clip than the source is. Made from scratch it pays for every second again; continued it pays
only for the seconds it adds. So it is planned as an extension of the source (mode extend, the
added seconds, the request's prompt as the continuation) when all of these hold, and made from
scratch otherwise, the log saying which and why:

- the source is archived here, and its model extends natively (an extension endpoint, the
  provider's video id, and the endpoint not known to refuse it);
- the request asks for the source's resolution and aspect ratio, and no other model by name;
- the extension plans (its model offers the added length) and costs less than the cheapest
  plan from scratch.

Deterministic: the same edit of the same source is the same extension request, so a rerun
finds its journal record and pays nothing again."""

from typing import NamedTuple

from models import POLICIES, ClipRequest, usd_text
from providers.router import PlanError
from tasks.parents import archived_parent, extends_natively, full_clip_id
from tasks.routing import route
from tasks.runtime import Runtime


class EditPlan(NamedTuple):
    """The request to run (an extension, or the edit as asked) and why."""

    request: ClipRequest
    why: str


def is_edit(request: ClipRequest) -> bool:
    return request.mode == "text" and bool(request.source_clip)


def plan_edit(rt: Runtime, request: ClipRequest) -> EditPlan:
    """The edit as an extension of its source when that is cheaper and the model allows it."""
    clip_id = full_clip_id(rt.journal, request.source_clip or "")
    parent = archived_parent(rt.journal, clip_id)
    source = parent.outcome.inspection.seconds
    added = round(request.seconds - source)
    model = parent.plan.model

    def regenerate(why: str) -> EditPlan:
        return EditPlan(request, f"edit of {clip_id[:12]} made from scratch at "
                                 f"{request.seconds:g} s: {why}")

    if added <= 0:
        return regenerate(f"it is not longer than the source ({source:g} s)")
    if (request.resolution, request.aspect_ratio) != (parent.request.resolution,
                                                      parent.request.aspect_ratio):
        return regenerate(f"it asks {request.resolution} {request.aspect_ratio}, the source is "
                          f"{parent.request.resolution} {parent.request.aspect_ratio}")
    if request.policy not in POLICIES and request.policy != model:
        return regenerate(f"it names {request.policy}, the source was made on {model}")
    refused = rt.capabilities.refused_here(rt.endpoints).get((model, "extend"))
    if refused or not extends_natively(rt.catalog, parent):
        return regenerate(f"{model} cannot continue it natively"
                          + (f" ({refused})" if refused else ""))
    extension = request.model_copy(update={
        "mode": "extend", "source_clip": clip_id, "duration": float(added), "policy": model})
    try:
        continued = route(extension, rt)
    except PlanError as err:
        return regenerate(f"{model} cannot add {added} s ({err.message})")
    try:
        scratch = route(request, rt).cost_usd
    except PlanError:
        scratch = None
    if scratch is not None and continued.cost_usd >= scratch:
        return regenerate(f"extending costs {usd_text(continued.cost_usd)}, from scratch "
                          f"{usd_text(scratch)}")
    instead = f" instead of {usd_text(scratch)} from scratch" if scratch is not None else ""
    return EditPlan(extension, f"edit of {clip_id[:12]} planned as an extension: {added} s "
                               f"added to its {source:g} s on {model} for "
                               f"{usd_text(continued.cost_usd)}{instead}")
