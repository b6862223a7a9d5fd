"""plan_route: the router with this run's catalog, subscriptions, endpoints and exclusions
(models ruled out by the prompt's content policy, or given up on by a fallback)."""

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from models import ClipRequest, RoutePlan
from providers.router import parse_subscriptions, plan
from tasks.prompts import policy_exclusions
from tasks.runtime import Runtime


def route(request: ClipRequest, rt: Runtime, excluded: dict[str, str] | None = None
          ) -> RoutePlan:
    """Pure: the same request, runtime and exclusions give the same plan."""
    words = " ".join([request.prompt, request.camera or "", *(s.prompt for s in request.scenes)])
    return plan(request, rt.catalog, now=datetime.now(UTC),
                subscriptions=parse_subscriptions(rt.settings.subscriptions, rt.catalog),
                endpoints=rt.endpoints,
                exclude=policy_exclusions(words, rt.catalog), given_up=excluded)


@task(name="plan route", retries=0, cache_policy=NO_CACHE)
async def plan_route(request: ClipRequest, rt: Runtime, excluded: dict[str, str]) -> RoutePlan:
    return route(request, rt, excluded)
