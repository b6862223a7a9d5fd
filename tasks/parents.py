"""The archived clip an extension continues: found in this home's journal, or refused (before
anything is paid) with the field named."""

from models import ClipRequest
from providers.catalog import Catalog
from providers.router import PlanError
from storage.journal import Journal
from storage.records import ClipJournal


def full_clip_id(journal: Journal, prefix: str) -> str:
    """The clip a unique prefix names (the 12-character ids `reelflow clips` prints)."""
    matches = journal.matching(prefix)
    if not matches:
        raise PlanError("clip_id", f"no archived clip {prefix!r} in this home",
                        ["an id `reelflow clips` lists"])
    if len(matches) > 1:
        raise PlanError("clip_id", f"{prefix!r} starts {len(matches)} clips: give more of it",
                        [m[:16] for m in matches[:5]])
    return matches[0]


def archived_parent(journal: Journal, clip_id: str | None) -> ClipJournal:
    parent = journal.read(clip_id) if clip_id and clip_id.isalnum() else None
    if parent is None or parent.state != "done" or parent.plan is None \
            or parent.outcome is None:
        raise PlanError("source_clip", f"no archived clip {clip_id!r} in this home")
    return parent


def extends_natively(catalog: Catalog, parent: ClipJournal) -> bool:
    """The parent's model has an extension endpoint and the provider gave a video id."""
    remote = parent.steps[-1].remote if parent.steps else None
    return "extend" in catalog.row(parent.plan.model).modes and bool(remote and remote.video_id)


def native_extension(journal: Journal, request: ClipRequest) -> tuple[ClipRequest, str, float]:
    """The request pinned to the parent's model, the provider's video id to continue, and the
    length the extended clip must have. Native extension only: it needs that video id."""
    parent = archived_parent(journal, request.source_clip)
    remote = parent.steps[-1].remote if parent.steps else None
    if remote is None or not remote.video_id:
        raise PlanError("source_clip", f"the provider gave no video id for "
                        f"{request.source_clip}: its model cannot extend it natively")
    pinned = request.model_copy(update={
        "policy": parent.plan.model, "resolution": parent.request.resolution,
        "aspect_ratio": parent.request.aspect_ratio})
    return pinned, remote.video_id, parent.outcome.inspection.seconds + request.seconds
