from datetime import UTC, datetime
from decimal import Decimal

import pytest

from models import ClipRequest, Scene
from providers.router import NoModelLeft, PlanError, parse_subscriptions, plan

COASTAL = "Aerial shot of a coastal city at golden hour"


def route(catalog, request, endpoints, *, subscriptions=None, volume=None, now=None):
    return plan(
        request,
        catalog,
        now=now or datetime(2026, 11, 25, 12, tzinfo=UTC),
        subscriptions=parse_subscriptions(subscriptions, catalog),
        endpoints=endpoints,
        volume=volume,
    )


def reason_of(decision, model, tier):
    return next(c for c in decision.rejected if (c.model, c.tier) == (model, tier)).reason


def test_cheapest_with_default_subscriptions_is_kling_standard(catalog, sandbox_endpoints):
    decision = route(catalog, ClipRequest(prompt=COASTAL, duration=5), sandbox_endpoints)
    assert (decision.model, decision.tier, decision.cost_usd) == ("kling-v3", "standard",
                                                                   Decimal("0.14"))
    assert decision.concurrency_key == "provider:kling:standard"
    assert "sunset" in reason_of(decision, "sora-2", "api")
    assert reason_of(decision, "kling-v3", "free") == "720p only"
    pro = next(c for c in decision.rejected if c.tier == "pro")
    assert "not subscribed" in pro.reason and pro.break_even_volume == 3572
    assert pro.monthly.effective_usd == Decimal(500)
    master = next(c for c in decision.rejected if c.tier == "master")
    assert "not subscribed" in master.reason and master.break_even_volume is None
    assert "never cheaper" in master.reason


def test_a_plan_on_a_default_subscription_says_its_tier_is_assumed(catalog, sandbox_endpoints,
                                                                   monkeypatch):
    """The sandbox, like the provider, bills the key at the plan it holds: when no one said
    which plan that is, the plan must not pass the default off as known."""
    from settings import Settings, subscriptions_assumed
    monkeypatch.delenv("REELFLOW_SUBSCRIPTIONS", raising=False)
    assert subscriptions_assumed(Settings(_env_file=None))
    monkeypatch.setenv("REELFLOW_SUBSCRIPTIONS", "kling:standard")
    assert not subscriptions_assumed(Settings(_env_file=None))
    request = ClipRequest(prompt=COASTAL, duration=5)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assumed = plan(request, catalog, now=now, endpoints=sandbox_endpoints, plans_assumed=True,
                   subscriptions=parse_subscriptions(None, catalog))
    assert any(r.startswith("tier assumed: REELFLOW_SUBSCRIPTIONS is not set, so the kling key "
                            "is taken to be on standard") for r in assumed.reasons)
    gateway = plan(request.model_copy(update={"policy": "kling-v3-fal"}), catalog, now=now,
                   endpoints=sandbox_endpoints, plans_assumed=True,
                   subscriptions=parse_subscriptions(None, catalog))
    assert not any("tier assumed" in r for r in gateway.reasons)  # fal prices each request
    said = route(catalog, request, sandbox_endpoints, subscriptions="kling:standard")
    assert not any("tier assumed" in r for r in said.reasons)


def test_a_tie_prefers_a_quoted_price_over_an_assumed_one(catalog, sandbox_endpoints):
    """fal at Kling's own price, that price marked assumed: the quoted one wins the tie."""
    fal = catalog.row("kling-v3-fal")
    kling = catalog.row("kling-v3").tier_named("standard")
    tied = fal.model_copy(update={"tier": (fal.tier[0].model_copy(update={
        "price_per_second": kling.price_per_second, "resolution_prices": {},
        "assumed": ("price_per_second",)}),)})
    tied_catalog = catalog.model_copy(update={"models": tuple(
        tied if row.id == fal.id else row for row in catalog.models)})
    decision = route(tied_catalog, ClipRequest(prompt=COASTAL, duration=5), sandbox_endpoints)
    assert decision.model == "kling-v3"
    assert "assumed" in reason_of(decision, "kling-v3-fal", "standard")


def test_pro_at_ten_thousand_clips_costs_1100_a_month(catalog, sandbox_endpoints):
    decision = route(catalog, ClipRequest(prompt=COASTAL, duration=5), sandbox_endpoints,
                     subscriptions="kling:pro", volume=10000)
    assert (decision.model, decision.tier) == ("kling-v3", "pro")
    assert decision.monthly.effective_usd == Decimal("1100.00")
    assert "cheaper than the choice below 3,572" in reason_of(decision, "kling-v3", "standard")


def test_a_key_holds_one_plan(catalog, sandbox_endpoints):
    """Kling and OpenAI sell a key one plan: the provider bills it at that plan, so two tiers
    of one provider are refused, and the other tiers are shown with their break-even."""
    with pytest.raises(PlanError) as err:
        parse_subscriptions("kling:standard,kling:pro", catalog)
    assert err.value.field == "subscriptions"
    assert err.value.allowed == ["kling:free", "kling:standard", "kling:pro", "kling:master"]
    low = route(catalog, ClipRequest(prompt=COASTAL, duration=5), sandbox_endpoints,
                subscriptions="kling:standard", volume=5000)
    assert low.tier == "standard"
    assert "pays off above 3,571" in reason_of(low, "kling-v3", "pro")


def test_fastest_picks_the_lowest_median(catalog, sandbox_endpoints):
    request = ClipRequest(prompt="x", duration=8, policy="fastest")
    decision = route(catalog, request, sandbox_endpoints, subscriptions="kling:standard,sora:api",
                     now=datetime(2026, 9, 1, 12, tzinfo=UTC))
    assert decision.model.startswith("kling")


def test_best_quality_picks_sora_before_its_sunset(catalog, real_endpoints):
    request = ClipRequest(prompt="x", duration=8, policy="best_quality")
    decision = route(catalog, request, real_endpoints,
                     now=datetime(2026, 9, 1, 12, tzinfo=UTC))
    assert (decision.model, decision.tier) == ("sora-2", "api")


def test_after_sunset_best_quality_picks_an_atlascloud_model_and_says_why(
    catalog, real_endpoints
):
    request = ClipRequest(prompt="x", duration=5, policy="best_quality")
    decision = route(catalog, request, real_endpoints)
    assert (decision.model, decision.protocol, decision.endpoint) == ("wan-2.6", "atlascloud",
                                                                      "real")
    assert decision.reasons[0].startswith("Sora 2 (VBench++ 87.4) is sunset since 2026-09-24")
    assert "no new work on a real endpoint" in reason_of(decision, "sora-2", "api")


def test_naming_a_sunset_model_on_a_real_endpoint_names_the_fallback(catalog, real_endpoints):
    decision = route(catalog, ClipRequest(prompt="x", duration=5, policy="sora-2"),
                     real_endpoints)
    assert decision.model == "wan-2.6"
    assert decision.reasons[0].startswith("sora-2 is sunset since 2026-09-24")


def test_the_sandbox_serves_a_sunset_model_only_when_named(catalog, sandbox_endpoints):
    named = route(catalog, ClipRequest(prompt="x", duration=5, policy="sora-2"),
                  sandbox_endpoints)
    assert (named.model, named.endpoint, named.sunset.isoformat()) == ("sora-2", "sandbox",
                                                                       "2026-09-24")
    assert named.seconds_billed == 8 and named.cost_usd == Decimal("0.568")
    assert any("snapped to 8 s" in r for r in named.reasons)
    assert reason_of(named, "kling-v3", "standard") == "not the named model (sora-2)"


def test_mode_filter(catalog, sandbox_endpoints):
    request = ClipRequest(mode="extend", source_clip="abc", prompt="more", duration=5)
    decision = route(catalog, request, sandbox_endpoints)
    assert decision.model == "kling-v3"
    assert reason_of(decision, "kling-v3-fal", "standard").startswith("no extend mode")


def test_aspect_filter_and_error(catalog, sandbox_endpoints):
    with pytest.raises(PlanError) as err:
        route(catalog, ClipRequest(prompt="x", duration=5, aspect_ratio="1:1",
                                   policy="sora-2"), sandbox_endpoints)
    assert err.value.field == "aspect_ratio"
    assert err.value.allowed == ["16:9", "9:16", "auto"]


def test_resolution_beyond_every_subscribed_tier_says_which_tier_would(catalog,
                                                                         sandbox_endpoints):
    with pytest.raises(PlanError) as err:
        route(catalog, ClipRequest(prompt="x", duration=5, resolution="4k"), sandbox_endpoints)
    assert err.value.field == "subscriptions"
    assert "kling-v3 master: not subscribed" in str(err.value)
    decision = route(catalog, ClipRequest(prompt="x", duration=5, resolution="4k"),
                     sandbox_endpoints, subscriptions="kling:master")
    assert decision.cost_usd == Decimal("0.1705")


def test_free_tier_quota_limits_long_or_many_clips(catalog, sandbox_endpoints):
    request = ClipRequest(prompt="x", duration=5, resolution="720p")
    assert route(catalog, request, sandbox_endpoints, subscriptions="kling:free").tier == "free"
    decision = route(catalog, request, sandbox_endpoints, subscriptions="kling:free",
                     volume=100)
    assert decision.tier != "free"
    assert "66 credits" in reason_of(decision, "kling-v3", "free")


def test_budget_filter_and_error_names_the_cheapest_option(catalog, sandbox_endpoints):
    decision = route(catalog, ClipRequest(prompt="x", duration=30, budget_usd=1),
                     sandbox_endpoints)
    assert decision.cost_usd == Decimal("0.84")
    with pytest.raises(PlanError, match=r"\$0.10 is below the cheapest option: \$0.14 on "
                                        "kling-v3 standard") as err:
        route(catalog, ClipRequest(prompt="x", duration=5, budget_usd=0.1), sandbox_endpoints)
    assert err.value.field == "budget_usd"


def test_clips_longer_than_one_generation_plan_an_extension_chain(catalog, sandbox_endpoints):
    decision = route(catalog, ClipRequest(prompt="x", duration=60), sandbox_endpoints)
    assert decision.seconds_billed == 60 and len(decision.steps) == 10
    assert decision.p50_s > 4 * 38
    assert "15 s maximum clip" in reason_of(decision, "kling-v3-fal", "standard")


def test_too_long_for_every_model_names_the_longest_possible(catalog, sandbox_endpoints):
    with pytest.raises(PlanError) as err:
        route(catalog, ClipRequest(prompt="x", duration=500), sandbox_endpoints)
    assert err.value.field == "duration" and err.value.allowed == ["from 3 s up to 180 s"]


def test_storyboard_plans_native_on_kling_and_emulated_on_sora(catalog, sandbox_endpoints):
    scenes = [Scene(prompt=p, duration=4) for p in ("a", "b", "c")]
    native = route(catalog, ClipRequest(mode="storyboard", scenes=scenes), sandbox_endpoints)
    assert (native.storyboard, native.seconds_billed) == ("native", 12)
    sora = route(catalog, ClipRequest(mode="storyboard", scenes=scenes, policy="sora-2"),
                 sandbox_endpoints)
    assert (sora.storyboard, sora.seconds_billed) == ("emulated", 12)
    one_scene = route(catalog, ClipRequest(mode="storyboard", scenes=scenes[:1], policy="sora-2"),
                      sandbox_endpoints)
    assert sora.p50_s - 3 * one_scene.p50_s == pytest.approx(2 * 18.5, abs=0.2)
    assert any("2 transition(s) add 30–44 s" in r for r in sora.reasons)
    assert any("one multi-shot generation" in r for r in native.reasons)


def test_unknown_policy_lists_policies_and_models(catalog, sandbox_endpoints):
    with pytest.raises(PlanError) as err:
        route(catalog, ClipRequest(prompt="x", duration=5, policy="veo-3"), sandbox_endpoints)
    assert err.value.field == "policy"
    assert err.value.allowed == ["cheapest", "fastest", "best_quality", *catalog.ids]


def test_unknown_subscription_lists_the_known_ones(catalog):
    with pytest.raises(PlanError) as err:
        parse_subscriptions("kling:gold", catalog)
    assert err.value.field == "subscriptions" and "kling:master" in err.value.allowed


def test_default_subscriptions_are_one_plan_per_key_and_every_gateway_price(catalog):
    """kling:standard,sora:api by default; fal and AtlasCloud price each request (their tiers
    are always plannable, whatever is named)."""
    expected = {("kling", "standard"), ("sora", "api"), ("fal", "standard"),
                ("atlascloud", "payg")}
    assert parse_subscriptions(None, catalog) == expected
    assert parse_subscriptions("kling:pro", catalog) == {("kling", "pro"), ("fal", "standard"),
                                                         ("atlascloud", "payg")}


def test_a_protocol_without_endpoint_is_rejected_with_the_reason(catalog, monkeypatch):
    from settings import load_settings

    monkeypatch.setenv("REELFLOW_SANDBOX", "off")
    monkeypatch.setenv("FAL_KEY", "fk")
    decision = route(catalog, ClipRequest(prompt="x", duration=5), load_settings().endpoints())
    assert decision.model == "kling-v3-fal"
    assert "no endpoint for kling_native" in reason_of(decision, "kling-v3", "standard")


def test_every_candidate_is_accounted_for(catalog, sandbox_endpoints):
    decision = route(catalog, ClipRequest(prompt="x", duration=5), sandbox_endpoints)
    tiers = sum(len(row.tier) for row in catalog.models)
    assert len(decision.rejected) == tiers - 1
    assert all(c.reason for c in decision.rejected)


def test_non_positive_volume_is_refused(catalog, sandbox_endpoints):
    with pytest.raises(PlanError, match="volume"):
        route(catalog, ClipRequest(prompt="x", duration=5), sandbox_endpoints, volume=0)


def test_a_model_given_up_on_is_named_with_its_reason_never_as_a_prompt_error(
        catalog, sandbox_endpoints):
    """A fallback's exclusion (a refused key here) is not the prompt's fault: a named model
    given up on says why, and with every model given up on the error is a provider failure
    (NoModelLeft, exit 1), not a PlanError on `prompt` (exit 2)."""
    refused = "the kling key was refused (Kling 401 code 1002): fix the key"
    request = ClipRequest(prompt=COASTAL, duration=5, policy="kling-v3")
    decision = plan(request, catalog, now=datetime(2026, 11, 25, 12, tzinfo=UTC),
                    subscriptions=parse_subscriptions(None, catalog),
                    endpoints=sandbox_endpoints, given_up={"kling-v3": refused})
    assert decision.model != "kling-v3"
    assert f"kling-v3 is out ({refused})" in decision.reasons[0]
    everything = {row.id: refused for row in catalog.models}
    with pytest.raises(NoModelLeft, match="fix the key"):
        plan(request, catalog, now=datetime(2026, 11, 25, 12, tzinfo=UTC),
             subscriptions=parse_subscriptions(None, catalog), endpoints=sandbox_endpoints,
             given_up=everything)
