"""The router's answer: which model and tier, what it bills, what it costs, and why."""

from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from models.terms import USD, EndpointKind, Protocol, Resolution


def account_key(provider: str, tier: str) -> str:
    """The account a charge lands on, as the ledger and handles spell it: kling:standard."""
    return f"{provider}:{tier}"


def concurrency_key(provider: str, tier: str) -> str:
    """The limiter of one account: provider:kling:standard (tasks/limits.py)."""
    return f"provider:{account_key(provider, tier)}"


class GenerationStep(BaseModel):
    """One paid generation: the first clip, or one extension of it."""

    kind: Literal["generate", "extend"] = Field(description="generate or extend.")
    seconds: int = Field(description="Seconds this step bills (as spelled on the wire).")


class MonthlyCost(BaseModel):
    """A tier's cost for a month of clips like this one."""

    volume: int = Field(description="Clips per month.")
    metered_usd: USD = Field(description="Price per second times billed seconds times volume.")
    minimum_usd: USD = Field(description="The tier's monthly minimum.")
    effective_usd: USD = Field(description="What the month costs: the larger of the two.")
    per_clip_usd: USD = Field(description="Effective cost divided by volume.")


class Candidate(BaseModel):
    """A model and tier the router considered, with its numbers and its verdict."""

    model: str = Field(description="Catalog model id.")
    tier: str = Field(description="Tier name.")
    provider: str = Field(description="Provider account family, e.g. kling, sora, fal.")
    cost_usd: USD | None = Field(default=None, description="Metered cost of this clip.")
    monthly: MonthlyCost | None = Field(default=None, description="Cost at the given volume.")
    break_even_volume: int | None = Field(
        default=None,
        description="Clips per month above which this tier costs less than the chosen one.",
    )
    p50_s: float | None = Field(default=None, description="Expected median latency, seconds.")
    reason: str = Field(description="Why it was chosen or not.")


class RoutePlan(BaseModel):
    """The decision for one request, made before anything is paid."""

    clip_id: str = Field(description="The request's idempotency key.")
    model: str = Field(description="Chosen catalog model id.")
    model_name: str = Field(description="Human name of the chosen model.")
    provider: str = Field(description="Provider account family.")
    protocol: Protocol = Field(description="Wire protocol used to reach the model.")
    endpoint: EndpointKind = Field(description="sandbox or real.")
    tier: str = Field(description="Chosen tier.")
    concurrency_key: str = Field(description="Limiter name: provider:<name>:<tier>.")
    resolution: Resolution = Field(description="Resolution asked for.")
    aspect_ratio: str = Field(description="Aspect ratio sent (auto resolved later from the image).")
    seconds_asked: float = Field(description="Seconds the request asked for.")
    audio: bool = Field(default=False, description="A soundtrack was asked for.")
    seconds_billed: int = Field(description="Seconds the wire bills (after snapping).")
    steps: list[GenerationStep] = Field(description="Paid generations, in order.")
    storyboard: Literal["native", "emulated"] | None = Field(
        default=None, description="How a storyboard is made on this model."
    )
    cost_usd: USD = Field(description="Metered cost of this clip.")
    monthly: MonthlyCost | None = Field(default=None, description="Cost at the given volume.")
    p50_s: float = Field(description="Expected median latency, seconds.")
    p95_s: float = Field(description="Expected 95th percentile latency, seconds.")
    price_assumed: bool = Field(description="True when the price is an assumption, not a quote.")
    sunset: date | None = Field(default=None, description="The model's shutdown date, if any.")
    reasons: list[str] = Field(description="Why this model and tier, in order of weight.")
    rejected: list[Candidate] = Field(description="Every other candidate with its reason.")

    @property
    def account(self) -> str:
        return account_key(self.provider, self.tier)
