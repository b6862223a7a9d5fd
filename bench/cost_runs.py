"""The month through each pipeline, as its user would send it; each returns the tags of the
deliverables it delivered (accepted).

reelflow: one `run_batch` manifest for every request's first clip (UGC and edits' first clips
as text rows, product photos as image rows with `aspect_ratio: auto`, storyboards as
storyboard rows), then one manifest per round of edits: round k asks for each edit's clip of
round k-1 at its new length (5 s longer) with the edit's prompt (`source_clip`, the row's
`duration` the whole clip's), as a user asks for an edit of an archived clip once the previous
version is approved; reelflow plans it as an extension where that is cheaper
(tasks/edits.py). Refused prompts go in with the rest.

reelflow's Kling key holds the tier that pays at the month's volume: `reelflow_tier` prices the
month's billed seconds (each request's last version: first clip plus the seconds its extensions
add; refused prompts make nothing) on every Kling tier, minimums included, with the price book's
`tier_advice` — what `reelflow plan --volume` and `reelflow prices` recommend, read before the
month as a user would from the month before.

Naive: `bench.naive.naive_month` with the same requests: an edit is regenerated at its new
length with its whole story in one prompt.
"""

import asyncio
import json
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from bench.naive import Account, Clip, naive_month
from bench.workload import Request
from providers.catalog import load_catalog
from providers.pricebook import TierAdvice, tier_advice

# the temporary Prefect server can answer 503 for a while after a 2,000-row batch (its event
# queue full): the next manifest's run is started again after a pause
API_ATTEMPTS, API_PAUSE_S = 5, 20.0


def reelflow_tier(requests: list[Request], held: str = "standard") -> TierAdvice:
    """Which Kling tier pays at this month's billed seconds."""
    seconds: dict[str, Decimal] = defaultdict(Decimal)
    for request in requests:
        if request.kind != "refused":
            seconds[request.resolution] += request.lengths()[-1]
    advice = tier_advice(load_catalog().row("kling-v3"), held, dict(seconds),
                         sum(1 for r in requests if r.kind != "refused"), "the bench's month")
    assert advice is not None
    return advice


def _first_row(request: Request, photos: Path) -> dict:
    # a downgraded clip is regenerated once, as the naive pipeline's check does: both deliver
    # the resolution asked for, or say they did not
    base = {"resolution": request.resolution, "aspect_ratio": request.aspect,
            "downgrade": "regenerate"}
    if request.kind == "storyboard":
        return {**base, "mode": "storyboard", "scenes": [
            {"prompt": text, "duration": request.seconds // len(request.scenes)}
            for text in request.scenes]}
    if request.kind == "product":
        return {**base, "mode": "image", "prompt": request.prompt,
                "image": str(request.photo(photos)), "duration": request.seconds}
    return {**base, "prompt": request.prompt, "duration": request.seconds}


def _run_manifest(path: Path, rows: list[dict]) -> list[tuple[str, bool]]:
    """(archived clip id, delivered) per row, in order. The id is read from the archived
    file's name: for an extension row the batch reports the request's id, which is not the
    id the archive (and a further extension) knows the clip by."""
    from prefect.exceptions import PrefectHTTPStatusError

    from flows.batch import run_batch
    from models.batch import BatchRequest
    from tasks.batch_summary import BatchIncomplete

    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    for attempt in range(API_ATTEMPTS):
        try:
            result = asyncio.run(run_batch(BatchRequest(manifest=str(path),
                                                        absolute_images=True)))
            break
        except BatchIncomplete as err:  # refused prompts at least: the rest is delivered
            result = err.result
            break
        except PrefectHTTPStatusError as err:
            if err.response.status_code < 500 or attempt == API_ATTEMPTS - 1:
                raise
            time.sleep(API_PAUSE_S)  # a rerun of a manifest skips what is done, pays nothing
    items = sorted(result.items, key=lambda item: item.row)
    return [(Path(item.path).name.split(".")[0] if item.path else item.clip_id,
             item.status in ("done", "already_done")) for item in items]


def run_reelflow(requests: list[Request], photos: Path, folder: Path) -> set[str]:
    folder.mkdir(parents=True, exist_ok=True)
    delivered: set[str] = set()
    outcome = _run_manifest(folder / "month.jsonl", [_first_row(r, photos) for r in requests])
    clips = {}
    for request, (clip_id, done) in zip(requests, outcome, strict=True):
        if done:
            delivered.add(request.step_tag(0))
            clips[request.id] = clip_id
    for step in range(1, 1 + max((len(r.edits) for r in requests), default=0)):
        due = [r for r in requests if len(r.edits) >= step and r.id in clips]
        if not due:
            break
        rows = [{"source_clip": clips[r.id], "prompt": r.edits[step - 1],
                 "duration": r.lengths()[step], "resolution": r.resolution,
                 "aspect_ratio": r.aspect} for r in due]
        outcome = _run_manifest(folder / f"edits-{step}.jsonl", rows)
        clips = {}
        for request, (clip_id, done) in zip(due, outcome, strict=True):
            if done:
                delivered.add(request.step_tag(step))
                clips[request.id] = clip_id
    return delivered


def naive_clips(request: Request, photos: Path) -> list[Clip]:
    """The request as the naive pipeline sends it: its clip, then each edit regenerated."""
    first = Clip(tag=request.step_tag(0), prompt=request.prompt, seconds=request.seconds,
                 resolution=request.resolution, aspect=request.aspect, scenes=request.scenes,
                 photo=request.photo(photos) if request.kind == "product" else None)
    story = request.prompt.removeprefix(first.tag).lstrip()
    chain = [first]
    for step, edit in enumerate(request.edits, start=1):
        tag = request.step_tag(step)
        story += ", then " + edit.removeprefix(tag).lstrip()
        chain.append(first.model_copy(update={"tag": tag, "prompt": f"{tag} {story}",
                                              "seconds": request.lengths()[step]}))
    return chain


def run_naive(requests: list[Request], photos: Path, account: Account) -> set[str]:
    results = naive_month(account, [naive_clips(r, photos) for r in requests])
    return {d.tag for d in results if d.accepted}
