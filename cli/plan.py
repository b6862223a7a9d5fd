"""plan: choose a model and tier for a request and explain why, before anything is paid."""

import argparse
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from cli.context import Context, count, labels, load_context, require
from cli.errors import UserError
from models import ASPECT_RATIOS, RESOLUTIONS, ClipRequest, RoutePlan, usd_text
from providers.pricebook import TierAdvice
from providers.router import parse_subscriptions, plan
from settings import subscriptions_assumed
from storage.capabilities import KIND as CAPABILITIES
from storage.capabilities import Capabilities
from storage.prompt_refusals import KIND as PROMPTS
from storage.prompt_refusals import RefusedPrompts
from tasks.image_files import ImageError, with_image_digest
from tasks.input_files import MAX_REQUEST_BYTES, parse_json, read_text
from tasks.prompt_text import policy_exclusions, prompt_words, refused_exclusions

HELP_EXAMPLES = """\
  reelflow plan --prompt "Waves on a shingle" --duration 5 --policy kling-v3-fal --audio
  reelflow plan examples/long-take.json --subscriptions kling:pro --volume 10000 --json
"""

# flag -> request field; values stay strings so the request model validates them all alike.
_FLAGS = {
    "mode": "mode",
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "duration": "duration",
    "resolution": "resolution",
    "aspect": "aspect_ratio",
    "audio": "audio",
    "image": "image",
    "source_clip": "source_clip",
    "camera": "camera",
    "policy": "policy",
    "budget": "budget_usd",
    "take": "take",
}


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that build a ClipRequest (shared by every command that takes one)."""
    parser.add_argument("request", nargs="?", help="a JSON file holding the request")
    parser.add_argument("--mode", help="text | image | extend | storyboard")
    parser.add_argument("--prompt", help="what the clip shows")
    parser.add_argument("--negative-prompt", help="what it must not show")
    parser.add_argument("--duration", help="seconds of output")
    parser.add_argument("--resolution", help=" | ".join(RESOLUTIONS))
    parser.add_argument("--aspect", help=" | ".join(ASPECT_RATIOS))
    parser.add_argument("--audio", action="store_true", default=None,
                        help="a soundtrack with the video (priced where the vendor prices it)")
    parser.add_argument("--image", help="input image file or its object-store URL (image mode): "
                        "JPEG, PNG, WebP or HEIC")
    parser.add_argument("--focus", help="X,Y fractions to keep inside the crop")
    parser.add_argument("--source-clip", help="clip id to extend (extend mode)")
    parser.add_argument("--camera", help="camera move in words, e.g. 'slow push in'")
    parser.add_argument("--policy", help="cheapest | fastest | best_quality | a model id")
    parser.add_argument("--budget", help="refuse plans above this many USD")
    parser.add_argument("--take", help="0 for the first take, 1 for a second, ...")
    parser.add_argument("--label", action="append", metavar="KEY=VALUE",
                        help="an accounting label, e.g. customer=acme (repeatable; not part "
                        "of the clip id; reelflow report --by KEY groups spend by it)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_request_arguments(parser)
    parser.add_argument("--subscriptions", help="tiers held, e.g. kling:standard,sora:api")
    parser.add_argument("--volume", help="clips a month like this one, for effective cost")
    parser.add_argument("--at", help="plan as of this UTC time (ISO 8601); default now")


def request_from_args(args: argparse.Namespace) -> ClipRequest:
    """The request from a JSON file, with flags overriding its fields (a --label its label of
    that key, the file's other labels kept)."""
    data: dict[str, Any] = {}
    if args.request:
        path = Path(args.request)
        data = parse_json(read_text(path, "request", MAX_REQUEST_BYTES), "request")
        require(isinstance(data, dict), "request", f"{path} must hold one JSON object")
    for flag, field in _FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            data[field] = value
    if args.focus is not None:
        parts = args.focus.split(",")
        require(len(parts) == 2, "focus", f"{args.focus!r} is not X,Y", ["0..1,0..1"])
        data["focus"] = parts
    if args.label:
        data["labels"] = {**labels(data.get("labels")), **labels(args.label)}
    try:
        return with_image_digest(ClipRequest.model_validate(data),
                                 load_context().settings.inputs_options)
    except ImageError as err:
        raise UserError("image", str(err)) from None


def _volume(text: str | None) -> int | None:
    if text is None:
        return None
    return count(text, "volume", "clips a month")


def _when(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UserError("at", f"{text!r} is not an ISO 8601 time",
                        ["e.g. 2026-11-25T03:00:00Z"]) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def make_plan(context: Context, request: ClipRequest, subscriptions: str | None,
              volume: int | None, now: datetime) -> RoutePlan:
    text = subscriptions if subscriptions is not None else context.settings.subscriptions
    endpoints = context.settings.endpoints()
    journal = context.journal()  # what every worker learned is kept with the journal
    try:
        prompts = RefusedPrompts(journal.learned(PROMPTS))
        refused = Capabilities(journal.learned(CAPABILITIES)).refused_here(endpoints)
        excluded = refused_exclusions(request, prompts, context.catalog, endpoints)
    finally:
        journal.close()
    return plan(
        request,
        context.catalog,
        now=now,
        subscriptions=parse_subscriptions(text, context.catalog),
        endpoints=endpoints,
        volume=volume,
        exclude={**policy_exclusions(prompt_words(request), context.catalog), **excluded},
        refused=refused,
        plans_assumed=subscriptions is None and subscriptions_assumed(context.settings),
    )


def render(request: ClipRequest, decision: RoutePlan) -> str:
    """A decision a person can read in a terminal."""
    lines = [
        f"clip {decision.clip_id[:12]}  {request.mode} {request.seconds:g} s "
        f"{request.resolution} {request.aspect_ratio}  policy {request.policy}",
        f"  → {decision.model_name} · {decision.tier}  ({decision.protocol}, "
        f"{decision.endpoint})  {usd_text(decision.cost_usd)} for {decision.seconds_billed} s "
        f"billed  p50 {decision.p50_s:.0f} s / p95 {decision.p95_s:.0f} s",
    ]
    if decision.monthly:
        m = decision.monthly
        lines.append(f"    {m.volume:,} clips/month: {usd_text(m.effective_usd)} "
                     f"(metered {usd_text(m.metered_usd)}, minimum {usd_text(m.minimum_usd)})")
    if request.labels:
        lines.append("    labels: " + ", ".join(f"{k}={v}" for k, v in request.labels.items()))
    lines += [f"    why: {reason}" for reason in decision.reasons]
    lines.append("    other candidates:")
    for c in decision.rejected:
        lines.append(f"      {c.model:<13} {c.tier:<11} {usd_text(c.cost_usd):>8}  {c.reason}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    context = load_context()
    request = request_from_args(args)
    volume, now = _volume(args.volume), _when(args.at)
    decision = make_plan(context, request, args.subscriptions, volume, now)
    advice = tier_of(context, decision, args.subscriptions, volume, now)
    if args.json:
        payload = decision.model_dump(mode="json")
        payload["tier_advice"] = (None if advice is None else
                                  {**advice.model_dump(mode="json"), "says": advice.says()})
        print(json.dumps(payload, indent=2))
    else:
        print(render(request, decision))
        if advice is not None:
            print(f"    {advice.says()}")
    return 0


def tier_of(context: Context, decision: RoutePlan, subscriptions: str | None,
            volume: int | None, now: datetime) -> TierAdvice | None:
    """Which tier of the chosen account pays at the month's volume: `--volume` clips like this
    one, or else the seconds this calendar month's ledger billed on the account. None on a
    pay-as-you-go gateway (it prices each request) or with no volume yet."""
    # the ledger's reader (DuckDB) is imported only when a plan is printed, not at CLI start
    from analytics.month_volume import AccountMonth, advice_for, held_tiers, read_month

    text = subscriptions if subscriptions is not None else context.settings.subscriptions
    held = held_tiers(parse_subscriptions(text, context.catalog), context.catalog)
    if decision.provider not in held:
        return None
    if volume is not None:
        month = {decision.account: AccountMonth(
            provider=decision.provider, tier=decision.tier, clips=volume,
            seconds={decision.resolution: Decimal(decision.seconds_billed) * volume})}
        basis = "--volume clips like this one"
    else:
        month = read_month(context.settings.ledger_place, context.settings.ledger_options, now)
        basis = f"{now:%B %Y} so far, from the ledger"
    found = advice_for(context.catalog, {decision.provider: decision.tier}, month, basis)
    return found[0] if found else None
