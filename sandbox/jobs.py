"""A job's life, decided at submit from the seeded world and read off the clock afterwards.

At submit the sandbox draws the job's latency, whether it is re-queued, whether it fails,
whether its last frame flashes and whether it is silently downgraded; the job then moves through
queued -> running (-> queued again on a re-queue -> running) -> succeeded | failed as the clock
passes those instants. Nothing depends on how often a client polls.

Billing: each charge event is written to the usage log once, when the clock first passes it
(a re-queue bills the generation again where the protocol's provider does so; a failure bills
`failed_share`; success bills the seconds generated — for an extension, the seconds it adds).
"""

import math
import random
from typing import Literal

from pydantic import BaseModel

from sandbox.knobs import ProtocolPrices, World
from sandbox.moves import Move

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Z95 = 1.6448536269514722
PIXELS_1080P = 1920 * 1080


class Shot(BaseModel):
    text: str
    seconds: int


class Job(BaseModel):
    id: str
    protocol: str
    family: str
    account: str
    tier: str
    model: str
    kind: str                      # generate | extend | remix
    prompt: str
    shots: list[Shot]
    seconds: int                   # seconds this job generates (and bills)
    total_seconds: int             # seconds of the delivered clip
    width: int
    height: int
    actual_width: int
    actual_height: int
    resolution: str                # 720p | 1080p | 4k, for pricing
    parent_id: str | None = None
    external_id: str | None = None
    created_at: float
    started_at: float
    requeued_at: float | None = None
    restarted_at: float | None = None
    completes_at: float
    outcome: Literal["succeeded", "failed"]
    failure_code: str | None = None
    failure_message: str | None = None
    flash: bool = False
    audio: bool = False            # the clip has a soundtrack (asked for, or always made)
    image: str | None = None       # the input image's file in the media folder (image-to-video)
    camera: Move | None = None     # the camera move asked by a control (else the prompt's words)
    expires_at: float
    cancelled_at: float | None = None
    deleted: bool = False
    billed: list[str] = []
    extra: dict = {}

    @property
    def final(self) -> bool:
        """Nothing will change any more: no charge is left to bill."""
        return self.deleted or self.cancelled_at is not None or "done" in self.billed

    def state(self, now: float) -> State:
        if self.cancelled_at is not None and self.cancelled_at <= now:
            return "cancelled"
        if now >= self.completes_at:
            return self.outcome
        if now < self.started_at:
            return "queued"
        if self.requeued_at is not None and self.restarted_at is not None and (
                self.requeued_at <= now < self.restarted_at):
            return "queued"
        return "running"

    def transitions(self) -> list[tuple[float, State]]:
        """Every state the job enters and when, as `state(now)` reads them (a state entered
        and left in the same instant is left out): what a provider's status callbacks report."""
        steps: list[tuple[float, State]] = [(self.created_at, "queued"),
                                            (self.started_at, "running")]
        if self.requeued_at is not None and self.restarted_at is not None:
            steps += [(self.requeued_at, "queued"), (self.restarted_at, "running")]
        steps.append((self.completes_at, self.outcome))
        if self.cancelled_at is not None:
            steps = [s for s in steps if s[0] < self.cancelled_at]
            steps.append((self.cancelled_at, "cancelled"))
        return [s for s, after in zip(steps, [*steps[1:], None], strict=True)
                if after is None or after[0] > s[0]]

    def progress(self, now: float) -> int:
        state = self.state(now)
        if state in ("succeeded", "failed"):
            return 100
        if state != "running":
            return 0
        begin = self.restarted_at if self.restarted_at and now >= self.restarted_at else (
            self.started_at)
        span = max(self.completes_at - begin, 1e-9)
        return max(1, min(99, int(100 * (now - begin) / span)))

    def queue_position(self, now: float) -> int:
        """Always 0: jobs here never wait behind others (past the tier's slots they get 429)."""
        return 0


def latency_s(world: World, seconds: float, pixels: int, hour: int, rng: random.Random) -> float:
    """Generation latency in the seed's seconds (before time_scale)."""
    slope = (world.p50_30s - world.p50_5s) / 25.0
    median = max(world.p50_5s + (seconds - 5) * slope, world.p50_5s / 10)
    median *= (pixels / PIXELS_1080P) ** 0.5
    p95 = world.p95_5s
    if world.spike_hours and world.spike_p95_5s and world.spike_hours[0] <= hour < (
            world.spike_hours[1]):
        p95 = world.spike_p95_5s
    sigma = math.log(p95 / world.p50_5s) / Z95
    return median * math.exp(sigma * rng.gauss(0.0, 1.0))


def usd(prices: ProtocolPrices, tier: str, resolution: str, seconds: float,
        model: str = "", audio: bool = False) -> float:
    """What `seconds` cost: the model's own price (with sound, `<resolution>_audio`, where
    the vendor prices sound apart), else the tier's."""
    for prefix, by_resolution in prices.models.items():
        if model.startswith(prefix) and resolution in by_resolution:
            return by_resolution.get(f"{resolution}_audio" if audio else resolution,
                                     by_resolution[resolution]) * seconds
    price = prices.tiers[tier]
    per_second = price.usd_per_second_4k if resolution == "4k" else price.usd_per_second
    return per_second * seconds


def charges_due(job: Job, now: float, prices: ProtocolPrices) -> list[dict]:
    """Usage rows for the charge events the clock has passed and the log does not hold."""
    rows = []

    def row(kind: str, at: float, share: float) -> dict:
        amount = usd(prices, job.tier, job.resolution, job.seconds, job.model,
                     job.audio) * share
        return {"at": at, "account": job.account, "protocol": job.protocol, "tier": job.tier,
                "job_id": job.id, "model": job.model, "kind": kind, "seconds": job.seconds,
                "resolution": job.resolution, "usd": f"{amount:.6f}"}

    cancelled = job.cancelled_at is not None
    if (prices.requeue_billed and job.requeued_at is not None and now >= job.requeued_at
            and "requeue" not in job.billed
            and not (cancelled and job.cancelled_at <= job.requeued_at)):
        rows.append(row("requeue", job.requeued_at, 1.0))
    if now >= job.completes_at and not cancelled:
        if job.outcome == "succeeded" and "complete" not in job.billed:
            rows.append(row("complete", job.completes_at, 1.0))
        elif job.outcome == "failed" and "fail" not in job.billed and (
                job.failure_code != "policy"):
            rows.append(row("fail", job.completes_at, prices.failed_share))
    return rows
