"""plan_route: the router with this run's catalog, subscriptions, endpoints and exclusions
(models ruled out by the prompt's content policy — the pre-flight rules, and the providers whose
policy refused this very prompt before — or given up on by a fallback) and the capabilities its
endpoints were found to refuse."""

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from models import ClipRequest, RoutePlan
from providers.errors import CapabilityRefused, ProviderError
from providers.router import parse_subscriptions, plan
from settings import subscriptions_assumed
from storage.capabilities import Refusal
from storage.prompt_refusals import KIND, PromptRefusal, RefusedPrompts, prompt_digest
from tasks import run_names
from tasks.prompt_text import policy_exclusions, prompt_words, refused_exclusions
from tasks.runtime import Runtime


def refused_prompts(rt: Runtime) -> RefusedPrompts:
    """The refused prompts every worker of this journal has learned."""
    return RefusedPrompts(rt.journal.learned(KIND))


def route(request: ClipRequest, rt: Runtime, excluded: dict[str, str] | None = None, *,
          full: dict[str, str] | None = None) -> RoutePlan:
    """Pure: the same request, runtime and exclusions give the same plan. `excluded`: models
    this clip's fallbacks gave up on; `full`: accounts (provider:tier) that can take no more."""
    return plan(request, rt.catalog, now=datetime.now(UTC),
                subscriptions=parse_subscriptions(rt.settings.subscriptions, rt.catalog),
                endpoints=rt.endpoints,
                exclude={**policy_exclusions(prompt_words(request), rt.catalog),
                         **refused_exclusions(request, refused_prompts(rt), rt.catalog,
                                              rt.endpoints),
                         **(full or {})},
                given_up=excluded, refused=rt.capabilities.refused_here(rt.endpoints),
                plans_assumed=subscriptions_assumed(rt.settings))


def remember_refusal(rt: Runtime, plan: RoutePlan, err: CapabilityRefused) -> Refusal:
    """Keep what the endpoint refused, so no later plan on this home offers it there."""
    endpoint = rt.endpoints[rt.catalog.row(plan.model).protocol]
    refusal = Refusal(protocol=endpoint.protocol, kind=endpoint.kind,
                      base_url=endpoint.base_url or "", model=plan.model,
                      capability=err.capability, message=str(err))
    rt.capabilities.learn(refusal)
    return refusal


def remember_prompt_refusal(rt: Runtime, request: ClipRequest, plan: RoutePlan,
                            err: ProviderError) -> PromptRefusal:
    """Keep that this provider's policy refused this prompt, so the next request with it is
    routed around the provider before anything is paid."""
    endpoint = rt.endpoints[rt.catalog.row(plan.model).protocol]
    words = prompt_words(request)
    refusal = PromptRefusal(protocol=endpoint.protocol, kind=endpoint.kind,
                            base_url=endpoint.base_url or "", provider=plan.provider,
                            model=plan.model, prompt=prompt_digest(words, request.image_sha256),
                            excerpt=" ".join(words.split()[:12]), message=str(err))
    refused_prompts(rt).learn(refusal)
    return refusal


@task(name="plan route", task_run_name=run_names.labelled("plan route"), retries=0,
      cache_policy=NO_CACHE)
async def plan_route(request: ClipRequest, rt: Runtime, excluded: dict[str, str]) -> RoutePlan:
    return route(request, rt, excluded)
