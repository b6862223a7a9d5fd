"""The router: a pure function from a request and the catalog to a plan, before any money moves.

It filters every (model, tier) by endpoint, sunset, capability, duration, subscription and budget,
ranks what is left by the request's policy, and returns the choice with its reasons and every
rejected candidate with its own. A sunset model gets no new work on a real endpoint; on the
sandbox it is used only when named. A request nothing can make is a PlanError naming the field
and the values that would work.
"""

import difflib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from models import (
    DEFAULT_SUBSCRIPTIONS,
    POLICIES,
    Candidate,
    ClipRequest,
    Endpoint,
    GenerationStep,
    Protocol,
    RoutePlan,
    concurrency_key,
    resolution_rank,
    usd_text,
)
from providers import latency
from providers.catalog import SUBSCRIPTION_PROTOCOLS, Catalog, ModelRow, Tier
from providers.durations import Unplannable, plan_steps, storyboard_steps
from providers.pricebook import break_even_volume, clip_cost, monthly

REFERENCE_VOLUME = 1_000

# Checks in the order they run; a rejection's stage says how close the candidate came.
_STAGES = (
    "endpoint",
    "sunset",
    "content_policy",
    "mode",
    "audio",
    "aspect_ratio",
    "resolution",
    "duration",
    "tier_resolution",
    "quota",
    "subscriptions",
    "budget_usd",
    "given_up",  # last: a model given up on would otherwise have been eligible
)


class NoModelLeft(Exception):
    """Every model that could make the clip was given up on this run — its account stopped, its
    key refused, it failed twice: a provider failure with what to do, not the user's input."""


class PlanError(ValueError):
    """A request or setting the router cannot serve: names the field and what is allowed."""

    def __init__(self, field: str, message: str, allowed: list[str] | None = None):
        self.field = field
        self.message = message
        self.allowed = allowed or []
        suffix = f" (allowed: {', '.join(self.allowed)})" if self.allowed else ""
        super().__init__(f"{field}: {message}{suffix}")


def subscription_choices(catalog: Catalog) -> list[str]:
    return [f"{p}:{t}" for p, tiers in catalog.providers().items() for t in tiers]




def _gateway_tiers(catalog: Catalog) -> set[tuple[str, str]]:
    """Every tier of a pay-as-you-go gateway: the request's model and resolution pick it."""
    return {(row.provider, tier.name) for row in catalog.models
            if row.protocol not in SUBSCRIPTION_PROTOCOLS for tier in row.tier}


def parse_subscriptions(text: str | None, catalog: Catalog) -> frozenset[tuple[str, str]]:
    """'kling:standard,sora:api' -> the (provider, tier) pairs the router may plan on.

    A key on a subscription protocol holds exactly one plan (the provider bills it at that
    plan whatever reelflow thinks), so naming two tiers of one such provider is an error; the
    default is DEFAULT_SUBSCRIPTIONS. Gateway tiers are always plannable: they are prices, not
    plans."""
    allowed = subscription_choices(catalog)
    subscription_providers = {row.provider for row in catalog.models
                              if row.protocol in SUBSCRIPTION_PROTOCOLS}
    held: dict[str, str] = {}
    source = text if text is not None and text.strip() else DEFAULT_SUBSCRIPTIONS
    for item in (part.strip() for part in source.split(",") if part.strip()):
        if item not in allowed:
            raise PlanError("subscriptions", f"unknown provider:tier {item!r}", allowed)
        provider, tier = item.split(":")
        if provider in subscription_providers and held.get(provider, tier) != tier:
            raise PlanError("subscriptions", f"a {provider} key holds one plan, not "
                            f"{held[provider]} and {tier}: name one tier per provider",
                            [a for a in allowed if a.startswith(provider + ":")])
        held[provider] = tier
    return frozenset({*((p, t) for p, t in held.items() if p in subscription_providers),
                      *_gateway_tiers(catalog)})


@dataclass
class _Option:
    row: ModelRow
    tier: Tier
    stage: str = ""
    reason: str = ""
    steps: list[GenerationStep] = field(default_factory=list)
    storyboard: str | None = None
    cost: Decimal | None = None
    estimate: latency.LatencyEstimate | None = None

    @property
    def billed(self) -> int:
        return sum(step.seconds for step in self.steps)

    def reject(self, stage: str, reason: str) -> None:
        self.stage, self.reason = stage, reason


def _evaluate(
    option: _Option,
    request: ClipRequest,
    *,
    now: datetime,
    named: str | None,
    subscriptions: frozenset[tuple[str, str]],
    endpoints: dict[Protocol, Endpoint],
    volume: int | None,
    exclude: dict[str, str],
    given_up: dict[str, str],
    refused: dict[tuple[str, str], str],
) -> None:
    row, tier = option.row, option.tier
    endpoint = endpoints.get(row.protocol)
    if endpoint is None:
        option.reject(
            "endpoint",
            f"no endpoint for {row.protocol}: REELFLOW_SANDBOX is off and neither its base URL "
            "nor its key is set",
        )
        return
    if row.is_sunset(now.date()):
        if endpoint.kind == "real":
            option.reject("sunset", f"sunset on {row.sunset}: no new work on a real endpoint")
            return
        if named != row.id:
            option.reject(
                "sunset",
                f"sunset on {row.sunset}; the sandbox still serves it when named (policy {row.id})",
            )
            return
    if row.id in exclude:
        option.reject("content_policy", exclude[row.id])
        return
    if f"{row.provider}:{tier.name}" in exclude:
        option.reject("quota", exclude[f"{row.provider}:{tier.name}"])
        return
    if request.mode not in row.modes:
        option.reject("mode", f"no {request.mode} mode (has {', '.join(row.modes)})")
        return
    if (row.id, request.mode) in refused:
        option.reject("mode", refused[(row.id, request.mode)])
        return
    if request.audio and row.audio == "none":
        option.reject("audio", "makes no soundtrack")
        return
    if request.aspect_ratio != "auto" and request.aspect_ratio not in row.aspect_ratios:
        option.reject(
            "aspect_ratio",
            f"no {request.aspect_ratio} output (has {', '.join(row.aspect_ratios)})",
        )
        return
    if request.resolution not in row.wire:
        option.reject("resolution", f"no {request.resolution} (has {', '.join(row.wire)})")
        return
    if (row.id, request.resolution) in refused:
        option.reject("resolution", refused[(row.id, request.resolution)])
        return
    try:
        if request.mode == "storyboard":
            option.storyboard, option.steps = storyboard_steps(row, request.scenes)
        else:
            option.steps = plan_steps(row, request.mode, request.seconds)
    except Unplannable as err:
        option.reject("duration", str(err))
        return
    if resolution_rank(request.resolution) > resolution_rank(tier.max_resolution):
        option.reject("tier_resolution", f"{tier.max_resolution} only")
        return
    cap = tier.monthly_seconds_cap
    if cap is not None and option.billed * (volume or 1) > cap:
        option.reject(
            "quota", f"its {tier.monthly_credits} credits a month cover {cap:g} s; "
            f"this needs {option.billed * (volume or 1)} s"
        )
        return
    option.cost = clip_cost(tier, request.resolution, option.billed,
                            row.sound_priced(request.audio))
    estimates = [latency.estimate(row.latency, s.seconds, request.resolution, now)
                 for s in option.steps]
    transitions = len(request.scenes) - 1 if option.storyboard == "emulated" else 0
    overhead = transitions * sum(row.transition_overhead_s) / 2
    option.estimate = latency.chain(estimates, overhead)
    if (row.provider, tier.name) not in subscriptions:
        held = sorted(t for p, t in subscriptions if p == row.provider)
        option.reject("subscriptions", "not subscribed" + (
            f": the {row.provider} key is on {held[0]}" if held else ""))
        return
    if request.budget_usd is not None and option.cost > Decimal(str(request.budget_usd)):
        budget = usd_text(Decimal(str(request.budget_usd)))
        option.reject("budget_usd", f"over budget: {usd_text(option.cost)} > {budget}")
        return
    if row.id in given_up:
        option.reject("given_up", given_up[row.id])


def _rank_key(policy: str, option: _Option, volume: int | None) -> tuple[tuple[str, Any], ...]:
    """(measure, value) pairs, compared in order; the first that differs decides."""
    assert option.cost is not None and option.estimate is not None
    cost = monthly(option.tier, option.cost, volume).effective_usd if volume else option.cost
    measures = {
        "cost": ("cost", cost),
        "assumed": ("assumed", "price_per_second" in option.tier.assumed),
        "speed": ("p50", round(option.estimate.p50_s, 1)),
        "quality": ("quality", -option.row.quality.vbench_overall),
    }
    order = {
        "fastest": ("speed", "cost", "assumed"),
        "best_quality": ("quality", "cost", "assumed", "speed"),
    }.get(policy, ("cost", "assumed", "speed"))
    return (*(measures[name] for name in order), ("id", option.row.id))


def _no_plan(
    request: ClipRequest, options: list[_Option], catalog: Catalog, subject: str = "no model can"
) -> PlanError | NoModelLeft:
    furthest = max(_STAGES.index(o.stage) for o in options)
    stage = _STAGES[furthest]
    closest = [o for o in options if o.stage == stage]
    by_model: dict[str, str] = {}
    for o in closest:
        label = o.row.id if stage != "subscriptions" else f"{o.row.id} {o.tier.name}"
        by_model.setdefault(label, o.reason)
    detail = "; ".join(f"{label}: {reason}" for label, reason in by_model.items())
    live = [o.row for o in options if o.stage not in ("endpoint", "sunset")] or list(catalog.models)
    if stage == "budget_usd":
        cheapest = min(closest, key=lambda o: o.cost or Decimal(0))
        return PlanError(
            "budget_usd",
            f"{usd_text(Decimal(str(request.budget_usd)))} is below the cheapest option: "
            f"{usd_text(cheapest.cost or Decimal(0))} on {cheapest.row.id} {cheapest.tier.name}",
        )
    if stage == "aspect_ratio":
        allowed = sorted({a for row in live for a in row.aspect_ratios} | {"auto"})
        return PlanError("aspect_ratio", f"{subject} make {request.aspect_ratio}", allowed)
    if stage in ("resolution", "tier_resolution"):
        allowed = sorted({r for row in live for r in row.wire}, key=resolution_rank)
        return PlanError("resolution", f"{subject} make {request.resolution}: "
                         f"{detail}", allowed)
    if stage == "duration":
        longest = max(row.max_clip_seconds for row in live)
        shortest = min(min(row.wire_durations) for row in live)
        return PlanError("duration", f"{subject} make {request.seconds:g} s: {detail}",
                         [f"from {shortest} s up to {longest} s"])
    if stage == "mode":
        allowed = sorted({m for row in live for m in row.modes})
        return PlanError("mode", f"{subject} make mode {request.mode}", allowed)
    if stage == "content_policy":
        return PlanError("prompt", f"{subject} take this prompt: {detail}")
    if stage == "audio":
        makers = sorted(row.id for row in live if row.audio != "none")
        return PlanError("audio", f"{subject} make a soundtrack: {detail}; the models that "
                         f"do: {', '.join(makers)}", ["false"])
    if stage == "given_up":
        return NoModelLeft(f"{subject} make this clip any more: {detail}; fix the account or key "
                           "named, then run the same command again (nothing paid is lost)")
    if stage in ("subscriptions", "quota"):
        return PlanError("subscriptions", f"no subscribed tier can make this: {detail}",
                         subscription_choices(catalog))
    return PlanError("policy", f"{subject} take this request: {detail}")


def plan(
    request: ClipRequest,
    catalog: Catalog,
    *,
    now: datetime,
    subscriptions: frozenset[tuple[str, str]],
    endpoints: dict[Protocol, Endpoint],
    volume: int | None = None,
    exclude: dict[str, str] | None = None,
    given_up: dict[str, str] | None = None,
    refused: dict[tuple[str, str], str] | None = None,
    plans_assumed: bool = False,
) -> RoutePlan:
    """Choose a model and tier for `request`, with costs, latency and every reason.

    `exclude` maps model ids to a reason they must not be used (the pre-flight content-policy
    check: a model whose provider would refuse the prompt is routed around, not paid for), and
    accounts (`provider:tier`) to why they cannot take more (a batch has used their credits);
    `given_up` maps model ids to why this clip's fallbacks gave up on them; `refused` maps
    (model id, capability — a mode or a resolution) to why the endpoint is known to refuse it
    (storage/capabilities.py). `plans_assumed`: the subscriptions are the default, not the
    user's word, so a plan on a subscription key says its tier is assumed."""
    if volume is not None and volume <= 0:
        raise PlanError("volume", f"{volume} is not a number of clips a month", ["1 or more"])
    policy = request.policy
    named = None
    if policy not in POLICIES:
        if policy not in catalog.ids:
            known = [*POLICIES, *catalog.ids]
            close = difflib.get_close_matches(policy, known, n=1)
            raise PlanError("policy", f"unknown policy or model {policy!r}"
                            + (f" (did you mean {close[0]}?)" if close else ""), known)
        named = policy
    options = [_Option(row, tier) for row in catalog.models for tier in row.tier]
    for option in options:
        _evaluate(option, request, now=now, named=named, subscriptions=subscriptions,
                  endpoints=endpoints, volume=volume, exclude=exclude or {},
                  given_up=given_up or {}, refused=refused or {})
    eligible = [o for o in options if not o.stage]
    reasons: list[str] = []
    ranking = "cheapest" if named else policy
    if named:
        chosen_model = [o for o in eligible if o.row.id == named]
        sunset_real = [o for o in options if o.row.id == named and o.stage == "sunset"
                       and endpoints.get(o.row.protocol) is not None
                       and endpoints[o.row.protocol].kind == "real"]
        if chosen_model:
            for o in options:
                if o.row.id != named and o.stage in ("", "subscriptions", "budget_usd"):
                    o.reject("policy", f"not the named model ({named})")
            eligible = chosen_model
            reasons.append(f"named by policy: {named}")
        elif eligible and (out := next((o for o in options if o.row.id == named and o.stage
                                        in ("content_policy", "given_up")), None)):
            ranking = "best_quality"
            reasons.append(f"{named} is out ({out.reason}): fell back to the best-quality "
                           "model left")
        elif sunset_real and eligible:
            ranking = "best_quality"
            row = sunset_real[0].row
            reasons.append(f"{named} is sunset since {row.sunset} on the real endpoint: fell back "
                           "to the best-quality live model")
        else:
            named_options = [o for o in options if o.row.id == named]
            if any(o.stage == "given_up" for o in options):
                raise _no_plan(request, options, catalog)
            raise _no_plan(request, named_options, catalog, subject=f"{named} (named) cannot")
    if not eligible:
        raise _no_plan(request, options, catalog, subject="no model can")
    eligible.sort(key=lambda o: _rank_key(ranking, o, volume))
    chosen = eligible[0]
    if ranking == "best_quality":
        better = [o.row for o in options if o.stage == "sunset"
                  and o.row.quality.vbench_overall > chosen.row.quality.vbench_overall]
        for row in {r.id: r for r in better}.values():
            reasons.append(f"{row.name} (VBench++ {row.quality.vbench_overall}) is sunset since "
                           f"{row.sunset}: {chosen.row.name} is the best-quality live model in "
                           "its place")
    for other in eligible[1:]:
        other.reject("rank", _beaten_by(ranking, other, chosen, volume))
    if plans_assumed and chosen.row.protocol in SUBSCRIPTION_PROTOCOLS:
        reasons.append(f"tier assumed: REELFLOW_SUBSCRIPTIONS is not set, so the "
                       f"{chosen.row.provider} key is taken to be on {chosen.tier.name}; set it "
                       "to the plan the key holds")
    return _to_plan(request, chosen, options, reasons, ranking, endpoints, volume)


def _beaten_by(policy: str, other: _Option, chosen: _Option, volume: int | None) -> str:
    """Word the first measure on which `other` lost to the choice."""
    mine, theirs = _rank_key(policy, other, volume), _rank_key(policy, chosen, volume)
    (measure, value), (_, best) = next(
        (a, b) for a, b in zip(mine, theirs, strict=True) if a[1] != b[1]
    )
    if measure == "cost":
        label = f"a month at {volume:,} clips" if volume else "per clip"
        return f"dearer {label}: {usd_text(value)} vs {usd_text(best)}"
    if measure == "assumed":
        return "same cost, but its price is assumed, not quoted"
    if measure == "p50":
        return f"slower: p50 {value:.0f} s vs {best:.0f} s"
    if measure == "quality":
        return f"lower quality: VBench++ {-value} vs {-best}"
    return "equal on every measure; ordered by model id"


def _to_plan(
    request: ClipRequest,
    chosen: _Option,
    options: list[_Option],
    reasons: list[str],
    policy: str,
    endpoints: dict[Protocol, Endpoint],
    volume: int | None,
) -> RoutePlan:
    assert chosen.cost is not None and chosen.estimate is not None
    row, tier = chosen.row, chosen.tier
    reasons.append(f"{policy}: {row.name} {tier.name} at {usd_text(chosen.cost)} for "
                   f"{chosen.billed} billed s, p50 {chosen.estimate.p50_s:.0f} s")
    if chosen.billed > request.seconds + 1e-9:
        spelled = " + ".join(str(s.seconds) for s in chosen.steps)
        reasons.append(f"{request.seconds:g} s snapped to {chosen.billed} s ({spelled} on the "
                       f"wire); the output is trimmed to {request.seconds:g} s")
    if len(chosen.steps) > 1 and chosen.storyboard is None:
        reasons.append(f"longer than one generation: {len(chosen.steps) - 1} extension(s)")
    if chosen.storyboard == "native":
        reasons.append(f"storyboard native on {row.name}: one multi-shot generation")
    elif chosen.storyboard:
        transitions = len(request.scenes) - 1
        low, high = row.transition_overhead_s
        reasons.append(f"storyboard emulated on {row.name}: {len(request.scenes)} scenes "
                       "generated one by one (each from the last frame of the one before), "
                       f"then stitched; {transitions} transition(s) add {low * transitions:g}–"
                       f"{high * transitions:g} s")
    if row.sunset is not None:
        reasons.append(f"sunset on {row.sunset}; used because named, on the sandbox")
    if row.sound_priced(request.audio) and request.resolution in tier.audio_prices:
        reasons.append(f"with a soundtrack at ${tier.price(request.resolution, True)}/s "
                       f"(${tier.price(request.resolution)}/s without)")
    elif row.audio == "always" and not request.audio:
        reasons.append(f"{row.name} always makes a soundtrack: it is removed from the "
                       "published copy (the archived original keeps it)")
    if "price_per_second" in tier.assumed:
        reasons.append(f"price assumed: {tier.source}")
    chosen_monthly = monthly(tier, chosen.cost, volume) if volume else None
    rejected = [_candidate(o, chosen, volume) for o in options if o is not chosen]
    return RoutePlan(
        clip_id=request.clip_id,
        model=row.id,
        model_name=row.name,
        provider=row.provider,
        protocol=row.protocol,
        endpoint=endpoints[row.protocol].kind,
        tier=tier.name,
        concurrency_key=concurrency_key(row.provider, tier.name),
        resolution=request.resolution,
        aspect_ratio=request.aspect_ratio,
        seconds_asked=request.seconds,
        audio=request.audio,
        seconds_billed=chosen.billed,
        steps=chosen.steps,
        storyboard=chosen.storyboard,  # type: ignore[arg-type]
        cost_usd=chosen.cost,
        monthly=chosen_monthly,
        p50_s=round(chosen.estimate.p50_s, 1),
        p95_s=round(chosen.estimate.p95_s, 1),
        price_assumed="price_per_second" in tier.assumed,
        sunset=row.sunset,
        reasons=reasons,
        rejected=rejected,
    )


def _candidate(option: _Option, chosen: _Option, volume: int | None) -> Candidate:
    assert chosen.cost is not None
    reason = option.reason
    month = None
    break_even = None
    if option.cost is not None:
        month = monthly(option.tier, option.cost, volume or REFERENCE_VOLUME)
        if option.stage == "subscriptions":
            break_even = break_even_volume(
                option.cost, option.tier.monthly_minimum_usd,
                chosen.cost, chosen.tier.monthly_minimum_usd,
            )
            at = f"{month.volume:,} clips/month" + ("" if volume else " (no volume given)")
            reason += f"; {usd_text(month.effective_usd)} a month at {at}; "
            reason += _pays_off(option, chosen, break_even)
    return Candidate(
        model=option.row.id,
        tier=option.tier.name,
        provider=option.row.provider,
        cost_usd=option.cost,
        monthly=month,
        break_even_volume=break_even,
        p50_s=round(option.estimate.p50_s, 1) if option.estimate else None,
        reason=reason,
    )


def _pays_off(option: _Option, chosen: _Option, break_even: int | None) -> str:
    """Say at which monthly volumes a tier the account lacks would beat the choice."""
    assert option.cost is not None and chosen.cost is not None
    if break_even is None:
        return "never cheaper than the choice at these prices"
    if break_even > 1:
        return f"pays off above {break_even - 1:,} clips/month"
    chosen_wins_from = break_even_volume(
        chosen.cost, chosen.tier.monthly_minimum_usd,
        option.cost, option.tier.monthly_minimum_usd,
    )
    if chosen_wins_from is None:
        return "cheaper than the choice at any volume"
    return f"cheaper than the choice below {chosen_wins_from:,} clips/month"
