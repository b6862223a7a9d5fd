"""The model catalog: a TOML data file a person can read and change, validated on load.

A model is a protocol plus a row; nothing here knows a vendor by name. Every figure names its
source and date (`source`, `as_of` per section) and assumptions are listed (`assumed`), so the
router can say when a price is a quote and when it is a guess. A malformed file is refused whole
with an error naming the file, the row and the field.
"""

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models import AspectRatio, Mode, Protocol, Resolution, resolution_rank

# Subscription protocols sell a key one plan; pay-as-you-go gateways price each request.
SUBSCRIPTION_PROTOCOLS: frozenset[Protocol] = frozenset({"kling_native", "openai_videos"})

DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")


class CatalogError(ValueError):
    """The catalog file is unreadable or a row is invalid."""


class Sourced(BaseModel):
    """A section whose figures carry a source and a date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(min_length=1, description="Where the figures come from.")
    as_of: date = Field(description="Date of the figures.")
    assumed: tuple[str, ...] = Field(default=(), description="Figures that are assumptions.")
    notes: str = Field(default="", description="Anything a reader needs to trust the figures.")

    @model_validator(mode="after")
    def _assumed_are_fields(self) -> Self:
        unknown = set(self.assumed) - set(type(self).model_fields)
        if unknown:
            raise ValueError(f"assumed names unknown fields: {', '.join(sorted(unknown))}")
        return self


# whether a model's videos have a soundtrack: never, on request, or always
Audio = Literal["none", "optional", "always"]


class WireSpelling(BaseModel):
    """How one resolution is spelled on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, str] = Field(default_factory=dict, description="Fields merged into submit.")
    sizes: dict[AspectRatio, str] = Field(
        default_factory=dict, description="Exact sizes by aspect ratio, for size-enum wires."
    )


class ImageRules(Sourced):
    """What the model accepts as an input image."""

    min_side: int = Field(gt=0)
    max_side: int = Field(gt=0)
    max_bytes: int = Field(gt=0)
    aspect_ratios: tuple[AspectRatio, ...]
    match_output_size: bool = Field(description="The image must equal the output size exactly.")


class Charges(Sourced):
    """Charges beyond the price per second."""

    failed_fraction: Decimal = Field(ge=0, le=1, description="Share of a clip billed on failure.")
    requeue_fraction: Decimal = Field(ge=0, description="Share billed again per re-queue.")
    url_lifetime_hours: float = Field(gt=0, description="How long the output URL lives.")
    storage_free_days: float = Field(ge=0, description="Free hosting after completion.")
    storage_usd_per_gb_day: Decimal = Field(ge=0, description="Hosting past the free window.")


class LatencyPrior(Sourced):
    """Latency the seed measured, and the parameters of the rule that extrapolates it."""

    p50_5s: float = Field(gt=0, description="Median seconds, 5 s clip at the reference size.")
    p95_5s: float = Field(gt=0, description="p95 seconds, 5 s clip at the reference size.")
    p50_30s: float = Field(gt=0, description="Median seconds, 30 s clip at the reference size.")
    reference_resolution: Resolution
    resolution_exponent: float = Field(ge=0, description="Latency ∝ (pixels ratio) ** this.")
    spike_start_hour: int | None = Field(default=None, ge=0, le=23)
    spike_end_hour: int | None = Field(default=None, ge=1, le=24)
    spike_p95_5s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _spike_complete(self) -> Self:
        spike = (self.spike_start_hour, self.spike_end_hour, self.spike_p95_5s)
        if any(v is not None for v in spike) and any(v is None for v in spike):
            raise ValueError("spike_start_hour, spike_end_hour and spike_p95_5s go together")
        if self.p95_5s < self.p50_5s:
            raise ValueError("p95_5s must not be below p50_5s")
        return self


class Quality(Sourced):
    """Quality scores and availability."""

    vbench_overall: float = Field(ge=0, le=100)
    vbench_temporal: float = Field(ge=0, le=100)
    vbench_subject: float = Field(ge=0, le=100)
    vbench_motion: float = Field(ge=0, le=100)
    uptime_30d: float = Field(ge=0, le=100)


# H.264 High profile MaxBR (bit/s) of the level each size needs at up to 60 fps: 720p level 3.2
# (20 Mbit/s x 1.25), 1080p level 4.2 (50 x 1.25), 4k level 5.2 (240 x 1.25)
MAX_BITRATE: dict[str, float] = {"720p": 25e6, "1080p": 62.5e6, "4k": 300e6}
OUTPUT_MARGIN = 1.5
CONTAINER_SLACK = 4 << 20  # moov and other boxes, whatever the stream


class Tier(Sourced):
    """A price tier of a model: what a second costs and how many jobs run at once."""

    name: str = Field(min_length=1)
    price_per_second: Decimal = Field(ge=0)
    resolution_prices: dict[Resolution, Decimal] = Field(
        default_factory=dict, description="Per-second price where a resolution costs more."
    )
    max_resolution: Resolution
    concurrency: int = Field(gt=0, description="Jobs in flight at once; beyond it, 429.")
    monthly_minimum_usd: Decimal = Field(ge=0)
    monthly_credits: int | None = Field(default=None, ge=0)
    credits_per_second: float | None = Field(default=None, gt=0)

    audio_prices: dict[Resolution, Decimal] = Field(
        default_factory=dict, description="Per-second price with a soundtrack, where the "
        "vendor prices sound apart (fal's Kling apps).")

    def price(self, resolution: Resolution, audio: bool = False) -> Decimal:
        if audio and resolution in self.audio_prices:
            return self.audio_prices[resolution]
        return self.resolution_prices.get(resolution, self.price_per_second)

    @property
    def monthly_seconds_cap(self) -> float | None:
        """Output-seconds a month the tier's credits cover, when it is credit-limited."""
        if self.monthly_credits is None or self.credits_per_second is None:
            return None
        return self.monthly_credits / self.credits_per_second


class ModelRow(Sourced):
    """One model reached through one protocol."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str = Field(min_length=1)
    provider: str = Field(pattern=r"^[a-z0-9]+$", description="Account family, e.g. kling.")
    protocol: Protocol
    endpoint: str = Field(min_length=1, description="Wire model name or app id.")
    modes: tuple[Mode, ...] = Field(min_length=1)
    storyboard: Literal["native", "emulated"]
    max_storyboard_shots: int = Field(ge=0)
    aspect_ratios: tuple[AspectRatio, ...] = Field(min_length=1)
    wire_durations: tuple[int, ...] = Field(min_length=1)
    extension_seconds: tuple[int, ...] = ()
    max_clip_seconds: int = Field(gt=0)
    transition_overhead_s: tuple[float, float]
    prompt_token_budget: int = Field(ge=0, description="0: no budget.")
    camera_control: bool
    flash_frame_rate: float = Field(ge=0, le=1)
    sunset: date | None = None
    wire: dict[Resolution, WireSpelling] = Field(min_length=1)
    audio: Audio = Field(
        description="none: silent video only; optional: a soundtrack on request (sent on the "
        "wire, priced apart where the vendor does); always: every video has one.")
    image: ImageRules
    charges: Charges
    latency: LatencyPrior
    quality: Quality
    tier: tuple[Tier, ...] = Field(min_length=1)

    def sound_priced(self, asked: bool) -> bool:
        """Whether a request's soundtrack is priced as one: asked for, on a model that makes
        it on request (one that always makes it has it in its price)."""
        return asked and self.audio == "optional"

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if ("extend" in self.modes) != bool(self.extension_seconds):
            raise ValueError("mode 'extend' and extension_seconds go together")
        if self.max_clip_seconds < max(self.wire_durations):
            raise ValueError("max_clip_seconds is below the longest wire duration")
        names = [t.name for t in self.tier]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names repeat: {names}")
        for tier in self.tier:
            if tier.max_resolution not in self.wire:
                raise ValueError(f"tier {tier.name}: max_resolution has no wire spelling")
            if not set(tier.resolution_prices) <= set(self.wire):
                raise ValueError(f"tier {tier.name}: resolution_prices names an unknown size")
            if tier.audio_prices and self.audio != "optional":
                raise ValueError(f"tier {tier.name}: audio_prices on a model whose audio is "
                                 f"{self.audio}")
        sized = [bool(w.sizes) for w in self.wire.values()]
        if any(sized) and not all(sized):
            raise ValueError("wire sizes must be given for every resolution or for none")
        for res, spelling in self.wire.items():
            if spelling.sizes and set(spelling.sizes) != set(self.aspect_ratios):
                raise ValueError(f"wire.{res}.sizes must cover exactly {self.aspect_ratios}")
        return self

    def tier_named(self, name: str) -> Tier:
        return next(t for t in self.tier if t.name == name)

    def max_resolution(self) -> Resolution:
        return max(self.wire, key=resolution_rank)

    def is_sunset(self, today: date) -> bool:
        return self.sunset is not None and today >= self.sunset

    @property
    def max_output_bytes(self) -> int:
        """The largest file the model's longest clip at its largest size can be, with a
        margin: the H.264 High-profile bit-rate ceiling of the level that frame size needs
        (ITU-T H.264 Table A-1 MaxBR x 1.25) over max_clip_seconds. A download that declares
        or streams more is refused (a runaway body would otherwise fill the disk)."""
        bits_per_s = MAX_BITRATE[self.max_resolution()]
        return int(self.max_clip_seconds * bits_per_s / 8 * OUTPUT_MARGIN) + CONTAINER_SLACK


class Catalog(BaseModel):
    """Every model row, by id."""

    model_config = ConfigDict(frozen=True)

    models: tuple[ModelRow, ...]
    path: str

    def row(self, model_id: str) -> ModelRow:
        for row in self.models:
            if row.id == model_id:
                return row
        raise KeyError(model_id)

    @property
    def ids(self) -> list[str]:
        return [row.id for row in self.models]

    def providers(self) -> dict[str, list[str]]:
        """Tier names by provider account family."""
        tiers: dict[str, list[str]] = {}
        for row in self.models:
            for tier in row.tier:
                names = tiers.setdefault(row.provider, [])
                if tier.name not in names:
                    names.append(tier.name)
        return tiers


def _describe(error: dict[str, Any], raw_rows: list[Any]) -> str:
    loc = list(error["loc"])
    row_label = ""
    if len(loc) >= 2 and loc[0] == "model" and isinstance(loc[1], int):
        index = loc[1]
        raw = raw_rows[index] if index < len(raw_rows) else {}
        row_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
        row_label = f"row {index + 1} (id {row_id!r})"
        loc = loc[2:]
    field = ".".join(str(part) for part in loc) or "(row)"
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "missing"
    else:
        message = error["msg"]
    return f"{row_label}, field {field}: {message}" if row_label else f"{field}: {message}"


class _CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: list[ModelRow] = Field(min_length=1)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """Read and validate a catalog file; raise CatalogError naming file, row and field."""
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CatalogError(f"{path}: catalog file not found") from err
    except tomllib.TOMLDecodeError as err:
        raise CatalogError(f"{path}: not valid TOML: {err}") from err
    try:
        parsed = _CatalogFile.model_validate(raw)
    except ValidationError as err:
        rows = raw.get("model", []) if isinstance(raw.get("model"), list) else []
        lines = [_describe(e, rows) for e in err.errors()]
        raise CatalogError(f"{path}: " + "; ".join(lines)) from None
    ids = [row.id for row in parsed.model]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogError(f"{path}: model ids repeat: {', '.join(duplicates)}")
    return Catalog(models=tuple(parsed.model), path=str(path))
