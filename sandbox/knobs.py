"""The sandbox's world, as knobs whose defaults are the seed's figures.

Where the seed gives a figure it is the default (latency, flash frames, failure share, URL
lifetimes, concurrency); where it gives none (re-queue rate, downgrade rate, 5xx bursts) the
default is 0 and a test or benchmark turns it up. Every duration the sandbox emits is multiplied
by `time_scale`. Randomness is seeded: job n of seed s always draws the same numbers.

Latency (the rule reelflow's catalog also documents, written here independently): the median
grows linearly with clip length through the seed's 5 s and 30 s medians; the spread is lognormal
with sigma = ln(p95/p50)/1.645 from the 5 s figures; resolution scales by (pixels/1080p pixels)
** 0.5; inside a spike window the 5 s p95 is the spike figure.
"""

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

PRICES_FILE = Path(__file__).with_name("prices.toml")

KLING_ACCESS_KEY = "reelflow-sandbox-access"
KLING_SECRET_KEY = "reelflow-sandbox-secret-0123456789abcdef"


class TierPrice(BaseModel):
    usd_per_second: float
    usd_per_second_4k: float
    concurrency: int
    monthly_minimum_usd: float = 0.0  # billed at the month's end when the metered spend is less


class ProtocolPrices(BaseModel):
    default_tier: str
    failed_share: float
    requeue_billed: bool
    url_lifetime_s: float
    tiers: dict[str, TierPrice]
    models: dict[str, dict[str, float]] = {}  # model prefix -> resolution -> USD per second


def load_prices() -> dict[str, ProtocolPrices]:
    raw = tomllib.loads(PRICES_FILE.read_text(encoding="utf-8"))
    return {name: ProtocolPrices.model_validate(value) for name, value in raw.items()}


class World(BaseModel):
    """One protocol's behaviour."""

    model_config = ConfigDict(extra="forbid")

    p50_5s: float = Field(description="Median latency of a 5 s 1080p clip, seconds.")
    p95_5s: float = Field(description="p95 latency of a 5 s 1080p clip, seconds.")
    p50_30s: float = Field(description="Median latency of a 30 s 1080p clip, seconds.")
    spike_hours: tuple[int, int] | None = Field(default=None, description="UTC [start, end).")
    spike_p95_5s: float | None = None
    queued_share: float = Field(default=0.25, description="Share of latency spent queued.")
    failure_rate: float = 0.0
    requeue_rate: float = 0.0
    flash_frame_rate: float = 0.0
    downgrade_rate: float = Field(default=0.0, description="Chance under load.")
    downgrade_load: float = Field(default=0.5, description="Share of slots in use = load.")
    policy_patterns: list[str] = Field(default_factory=list, description="Regexes refused.")
    downgrade_patterns: list[str] = Field(
        default_factory=list,
        description="Regexes of prompts always silently downgraded, load or not (a test "
        "picks the scene the provider degrades).")
    error_5xx_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    poll_hint_s: float = 2.0
    retry_after_s: float = 10.0


class WebhookKnobs(BaseModel):
    """How the sandbox delivers webhooks (sandbox/webhooks.py), and how it misbehaves doing so.

    The retry figures are fal's (10 tries over about 2 h, 15 s a try); Kling's and AtlasCloud's
    public pages give none, so the same ones serve them. Misbehaviour is off by default and
    seeded like the rest of the world."""

    model_config = ConfigDict(extra="forbid")

    delay_s: float = Field(default=0.0, ge=0, description="Added before a first attempt.")
    max_attempts: int = Field(default=10, ge=1)
    backoff_s: float = Field(default=14.0, ge=0, description="Wait before the first retry; "
                             "doubled each time (14 s .. 2 h in all, fal's span).")
    timeout_s: float = Field(default=15.0, gt=0, description="Real seconds an attempt may "
                             "take (not scaled: a receiver's work does not speed up).")
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    duplicates: int = Field(default=1, ge=1, description="Extra copies of a duplicated one.")
    out_of_order_rate: float = Field(default=0.0, ge=0, le=1, description="Chance a delivery "
                                     "is held back `out_of_order_s` so later ones overtake it.")
    out_of_order_s: float = Field(default=60.0, ge=0)
    drop_rate: float = Field(default=0.0, ge=0, le=1, description="Never sent.")
    wrong_signature_rate: float = Field(default=0.0, ge=0, le=1)


class KlingKey(BaseModel):
    secret: str
    tier: str = "standard"


class Knobs(BaseModel):
    """Everything adjustable, at start (CLI) or per test (POST /_admin/knobs)."""

    model_config = ConfigDict(extra="forbid")

    time_scale: float = Field(default=1.0, gt=0)
    seed: int = 0
    shared_render: bool = Field(default=False, description="One encode per (s, size, flash).")
    sora_long_seconds: bool = Field(default=False, description="Accept seconds 16 and 20.")
    kling_extend_v1_only: bool = Field(
        default=False, description="Kling video-extend refuses (400, 1201) videos not made by "
        "kling-v1, -v1-5 or -v1-6, as the public references say; off, it extends v3 as the "
        "seed says.")
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Bearer/Key credential -> tier. Empty: any non-empty key, default tier.",
    )
    kling_keys: dict[str, KlingKey] = Field(
        default_factory=lambda: {KLING_ACCESS_KEY: KlingKey(secret=KLING_SECRET_KEY)}
    )
    account_status: dict[str, str] = Field(
        default_factory=dict,
        description="account -> ok | suspended | arrears | exhausted | forbidden | ip_blocked",
    )
    openai: World = Field(default_factory=lambda: World(
        p50_5s=71, p95_5s=187, p50_30s=284, spike_hours=(2, 4), spike_p95_5s=340,
        failure_rate=0.0011,
        policy_patterns=[r"\b(gore|blood|violent|violence|shoot(ing|s)?|stab)\b",
                         r"\b(nike|adidas|coca[- ]?cola|disney|marvel|logo)\b",
                         r"\b(lincoln|napoleon|churchill|gandhi|einstein|hitler)\b"],
    ))
    fal: World = Field(default_factory=lambda: World(
        p50_5s=38, p95_5s=94, p50_30s=143, failure_rate=0.0039, flash_frame_rate=0.03,
        policy_patterns=[r"\b(gore|beheading)\b"],
    ))
    kling: World = Field(default_factory=lambda: World(
        p50_5s=38, p95_5s=94, p50_30s=143, failure_rate=0.0039, flash_frame_rate=0.03,
        policy_patterns=[r"\b(gore|beheading)\b"],
    ))
    atlascloud: World = Field(default_factory=lambda: World(
        p50_5s=60, p95_5s=120, p50_30s=240, failure_rate=0.005,
        policy_patterns=[r"\b(gore|beheading)\b"],
    ))
    kling_deduction: bool = Field(
        default=True, description="Kling tasks carry final_unit_deduction (the legacy task "
        "shape kling-v3 is served in); off: as on Kling's newer APIs that drop it, so a client "
        "learns of a re-queue only from the deduction detail (reconciliation).")
    webhooks: WebhookKnobs = Field(default_factory=WebhookKnobs)
    atlascloud_response: str = Field(
        default="alternate", pattern="^(data|top|alternate)$",
        description="Submit answers {data: {id}} or a top-level {id}; AtlasCloud's own pages "
        "show both, so clients must accept both.")

    def calm(self) -> "Knobs":
        """The same world with every random misbehaviour off (tests turn on what they test)."""
        update = {"failure_rate": 0.0, "requeue_rate": 0.0, "flash_frame_rate": 0.0,
                  "downgrade_rate": 0.0, "error_5xx_rate": 0.0, "reset_rate": 0.0,
                  "truncate_rate": 0.0}
        quiet = {"duplicate_rate": 0.0, "out_of_order_rate": 0.0, "drop_rate": 0.0,
                 "wrong_signature_rate": 0.0}
        return self.model_copy(update={
            **{name: getattr(self, name).model_copy(update=update)
               for name in ("openai", "fal", "kling", "atlascloud")},
            "webhooks": self.webhooks.model_copy(update=quiet),
        })
