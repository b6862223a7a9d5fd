"""What a clip does after its model fails it — decided by the exception's type and fields,
never by its message: wait out a rate limit within the request's wait budget, retry a failed
job once, fall back to the next-best plan without the model (or the whole account) and say
why, or stop when a provider's content policy refused the prompt. The journal keeps every
attempt.

A policy refusal is a verdict on the prompt, not a failure of the model: sending the same words
to every other vendor in turn is what a user would not do by hand (each refusal can be charged
somewhere, and repeated violations put an account at risk), so the clip stops and says which
policy refused it. The refusal is remembered (storage/prompt_refusals.py): the next request with
that prompt is routed around that provider before anything is paid — trying another vendor is
the user's decision, made by asking again."""

from typing import NamedTuple

from models import RoutePlan
from providers.catalog import Catalog
from providers.errors import (
    AccountError,
    CapabilityRefused,
    CredentialsRefused,
    JobFailed,
    RateLimited,
    Rejected,
)
from providers.router import PlanError

MAX_FAILURES_PER_MODEL = 2
# what a fallback decides on; anything else fails the clip
FALLBACK_ERRORS = (RateLimited, Rejected, AccountError, JobFailed, CapabilityRefused)


class PromptRefused(PlanError):
    """A provider's content policy refused the prompt: reword it, or ask again to have it
    routed around that provider."""

    def __init__(self, message: str, allowed: list[str] | None = None):
        super().__init__("prompt", message, allowed)


class Wait(NamedTuple):
    """Out of capacity: wait, then try the same plan again."""

    seconds: float


class Retry(NamedTuple):
    """A failed job: send it again on the same model (a new job, a new key)."""

    why: str


class Stop(NamedTuple):
    """The provider's content policy refused the prompt: the clip goes no further."""

    why: str


class FallBack(NamedTuple):
    """Give up on the model — on every model of its account when the account stopped."""

    why: str
    whole_account: bool


class Fallbacks:
    """One clip's exclusions, failures and waits across its attempts."""

    def __init__(self, wait_budget_s: float):
        self.wait_budget_s = wait_budget_s
        self.excluded: dict[str, str] = {}  # model id -> why it is out
        self.failures: dict[str, int] = {}
        self.waited: dict[str, float] = {}

    def after(self, err: Exception, plan: RoutePlan, time_scale: float
              ) -> Wait | Retry | FallBack | Stop:
        model = plan.model
        if isinstance(err, RateLimited):
            waited = self.waited.get(model, 0.0)
            pause = err.retry_after_s or time_scale * min(30.0, 1.0 + waited)
            if waited + pause <= self.wait_budget_s:
                self.waited[model] = waited + pause
                return Wait(pause)
            return FallBack("out of capacity past the request's wait budget", False)
        if isinstance(err, Rejected) or (isinstance(err, JobFailed) and err.policy):
            return Stop(f"refused on content policy ({err})")
        if isinstance(err, CapabilityRefused):
            return FallBack(f"the endpoint refused {err.capability} ({err})", False)
        if isinstance(err, CredentialsRefused):
            return FallBack(f"the {plan.provider} key was refused ({err}): fix the key", True)
        if isinstance(err, AccountError):
            return FallBack(f"account {plan.provider}:{plan.tier} stopped ({err})", True)
        self.failures[model] = self.failures.get(model, 0) + 1
        if self.failures[model] >= MAX_FAILURES_PER_MODEL:
            return FallBack(f"failed {self.failures[model]} times ({err})", False)
        return Retry("failed, retrying")

    def exclude(self, plan: RoutePlan, decision: FallBack, catalog: Catalog) -> None:
        """Leave the model (or its whole account) out of every later plan of this clip."""
        for row in catalog.models:
            if row.id == plan.model or (decision.whole_account and row.provider == plan.provider):
                self.excluded[row.id] = decision.why
