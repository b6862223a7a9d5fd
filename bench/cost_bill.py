"""The cost benchmark's reading of the sandbox's bill: every usage row traced to one pipeline
(by account), one step of one request (by the tag its job's prompt starts with) and one source
of spend, so that the savings by source add up to the difference, to the cent.

A row's source, on either side:
- `avoided rejections`: any charge on a request the content policy refuses;
- `failure charges`: a failed generation's share (`fail` rows);
- `re-queues`: a job the provider put back in its queue, billed again (`requeue` rows);
- `submits not repeated`: a `complete` beyond the first for one generation (a retry that sent
  again, a regeneration after a failed check) — each such generation is a double charge;
- `extension instead of regeneration`: the first `complete` of an edit after the first clip;
- `pre-crop`: the first `complete` of a product video;
- the first `complete` of every other clip (UGC, storyboard, an edit's first clip), split into
  `wire snapping` (billed seconds differing, at the naive pipeline's price a second) and
  `tier and volume` (the rest: the price a second);
- `monthly minimums`: what a subscription account's month is billed beyond its metered usage,
  up to its tier's minimum (the sandbox's price table, sandbox/prices.toml) — counted for every
  account of either pipeline, whether or not it ran a job.
One generation is one tag: `r00042s1` (request, step), plus `p2` for the naive pipeline's second
part of an edit past the wire's 15 s. A job whose prompt carries no tag is `untraced`.
"""

from collections import defaultdict
from decimal import Decimal

from pydantic import BaseModel

from bench.workload import TAG, Request

SOURCES = ("extension instead of regeneration", "tier and volume", "monthly minimums",
           "avoided rejections", "failure charges", "re-queues", "submits not repeated",
           "wire snapping", "pre-crop", "untraced")
CENT = Decimal("0.01")


class Side(BaseModel):
    """One pipeline's bill, as the sandbox keeps it."""

    usd: Decimal = Decimal(0)
    rows: int = 0
    by_source: dict[str, Decimal] = {}
    billed_s: Decimal = Decimal(0)
    double_charges: int = 0
    like_for_like_s: Decimal = Decimal(0)


def _source(kind: str, request: Request | None, step: int, first: bool) -> str:
    if request is None:
        return "untraced"
    if request.kind == "refused":
        return "avoided rejections"
    if kind == "fail":
        return "failure charges"
    if kind == "requeue":
        return "re-queues"
    if not first:
        return "submits not repeated"
    if request.kind == "edit" and step > 0:
        return "extension instead of regeneration"
    if request.kind == "product":
        return "pre-crop"
    return "like for like"


def side(rows: list[dict], prompts: dict[str, str], requests: dict[str, Request]) -> Side:
    """`rows`: one pipeline's usage rows; `prompts`: job id -> prompt, from the sandbox."""
    out = Side()
    by_source: dict[str, Decimal] = defaultdict(Decimal)
    completes: dict[str, int] = defaultdict(int)
    for row in sorted(rows, key=lambda r: (float(r["at"]), r["seq"])):
        match = TAG.search(prompts.get(row["job_id"], ""))
        request = requests.get(match.group(1)) if match else None
        step = int(match.group(2)) if match else 0
        unit = match.group(0) if match else row["job_id"]
        if row["kind"] == "complete":
            completes[unit] += 1
        source = _source(row["kind"], request, step, completes[unit] <= 1)
        usd = Decimal(row["usd"])
        if source == "like for like":
            out.like_for_like_s += Decimal(str(row["seconds"]))
        by_source[source] += usd
        out.usd += usd
        out.billed_s += Decimal(str(row["seconds"])) if row["kind"] == "complete" else 0
        out.rows += 1
    out.double_charges = sum(1 for n in completes.values() if n > 1)
    out.by_source = dict(by_source)
    return out


def with_minimum(out: Side, rows: list[dict], minimum_usd: Decimal) -> Decimal:
    """Bill `out`'s account its tier's monthly minimum where its metered usage (`rows`, the
    account's) falls short; returns the amount added."""
    metered = sum((Decimal(r["usd"]) for r in rows), Decimal(0))
    short = max(Decimal(0), minimum_usd - metered)
    if short:
        out.usd += short
        out.by_source["monthly minimums"] = out.by_source.get("monthly minimums",
                                                               Decimal(0)) + short
    return short


def savings(reelflow: Side, naive: Side) -> dict[str, Decimal]:
    """Naive minus reelflow by source; the like-for-like clips split into wire snapping and
    tier. The values add up to naive.usd - reelflow.usd exactly."""
    out = {source: naive.by_source.get(source, Decimal(0)) - reelflow.by_source.get(
        source, Decimal(0)) for source in SOURCES if source not in ("tier and volume",
                                                                     "wire snapping")}
    naive_like = naive.by_source.get("like for like", Decimal(0))
    rate = naive_like / naive.like_for_like_s if naive.like_for_like_s else Decimal(0)
    out["wire snapping"] = (naive.like_for_like_s - reelflow.like_for_like_s) * rate
    out["tier and volume"] = (reelflow.like_for_like_s * rate
                              - reelflow.by_source.get("like for like", Decimal(0)))
    return {source: out[source] for source in SOURCES}


def cents(value: Decimal) -> float:
    return float(value.quantize(CENT))
