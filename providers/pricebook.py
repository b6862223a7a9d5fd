"""The price book: what a clip, a failure, a re-queue, storage and a month of clips cost.

All money is Decimal, from the catalog's literal figures, so the seed's cost-at-scale table comes
out cent for cent ($140.00 per 1,000 five-second 1080p clips on Kling Standard, $355.00 on Sora 2
API). A monthly minimum is never hidden: the effective cost is the larger of metered spend and
the minimum, and the per-clip figure is that divided by the volume.
"""

import math
from decimal import Decimal

from pydantic import BaseModel

from models import USD, MonthlyCost, Resolution, resolution_rank, usd_text
from providers.catalog import Catalog, ModelRow, Tier
from providers.durations import Unplannable, plan_steps

SEED_VOLUMES = (100, 1_000, 10_000, 100_000)


def _dec(value: float | int | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def clip_cost(tier: Tier, resolution: Resolution, billed_seconds: float,
              audio: bool = False) -> Decimal:
    """A finished clip (or an extension: bill only the seconds it adds); `audio`: with the
    soundtrack a model makes on request."""
    return tier.price(resolution, audio) * _dec(billed_seconds)


def failed_charge(row: ModelRow, tier: Tier, resolution: Resolution, seconds: float,
                  audio: bool = False) -> Decimal:
    """A failed generation: Kling bills 20% of the full clip, Sora nothing."""
    return row.charges.failed_fraction * clip_cost(tier, resolution, seconds, audio)


def requeue_charge(row: ModelRow, tier: Tier, resolution: Resolution, seconds: float,
                   audio: bool = False) -> Decimal:
    """A job the provider put back in its queue on timeout: billed again."""
    return row.charges.requeue_fraction * clip_cost(tier, resolution, seconds, audio)


def storage_charge(row: ModelRow, gigabytes: float, hosted_days: float) -> Decimal:
    """Hosting an output past the free window."""
    billable = max(Decimal(0), _dec(hosted_days) - _dec(row.charges.storage_free_days))
    return billable * _dec(gigabytes) * row.charges.storage_usd_per_gb_day


def monthly(tier: Tier, per_clip: Decimal, volume: int) -> MonthlyCost:
    """A month of `volume` clips like this one, with the tier's minimum applied."""
    metered = per_clip * volume
    effective = max(metered, tier.monthly_minimum_usd)
    return MonthlyCost(
        volume=volume,
        metered_usd=metered,
        minimum_usd=tier.monthly_minimum_usd,
        effective_usd=effective,
        per_clip_usd=effective / volume if volume else Decimal(0),
    )


def break_even_volume(
    per_clip: Decimal, minimum: Decimal, rival_per_clip: Decimal, rival_minimum: Decimal
) -> int | None:
    """Fewest clips a month at which (per_clip, minimum) costs less than the rival; None: never.

    Both monthly costs are max(minimum, per_clip * V): piecewise linear in V, so the difference is
    linear between the two breakpoints and each piece is solved exactly.
    """

    def gap(v: Decimal) -> Decimal:
        return max(minimum, per_clip * v) - max(rival_minimum, rival_per_clip * v)

    points = {Decimal(0)}
    for m, c in ((minimum, per_clip), (rival_minimum, rival_per_clip)):
        if c > 0 and m > 0:
            points.add(m / c)
    ordered = sorted(points)
    for lo, hi in zip(ordered, [*ordered[1:], None], strict=True):
        start = Decimal(max(1, math.ceil(lo)))
        if hi is not None and start > hi:
            continue
        if gap(start) < 0:
            return int(start)
        slope = gap(start + 1) - gap(start)
        if slope < 0:
            candidate = start + math.floor(-gap(start) / slope) + 1
            if (hi is None or candidate <= hi) and gap(candidate) < 0:
                return int(candidate)
    return None


class ScaleRow(BaseModel):
    """One line of the cost-at-scale table."""

    model: str
    tier: str
    volume: int
    seconds: float
    seed_metered_usd: USD
    minimum_usd: USD
    effective_usd: USD
    wire_billed_seconds: int
    wire_effective_usd: USD
    price_assumed: bool


def cost_at_scale(
    catalog: Catalog,
    seconds: float = 5,
    resolution: Resolution = "1080p",
    volumes: tuple[int, ...] = SEED_VOLUMES,
) -> list[ScaleRow]:
    """The seed's table, for every tier that can make the clip.

    `seed_metered_usd` bills the seconds asked, as the seed does; `wire_effective_usd` bills what
    the wire really spells (a 5 s clip is 8 s on Sora's 4 | 8 | 12) with the minimum applied.
    A credit-limited tier (Kling Free) is left out at volumes its credits cannot cover.
    """
    rows: list[ScaleRow] = []
    for row in catalog.models:
        if resolution not in row.wire:
            continue
        try:
            billed = sum(step.seconds for step in plan_steps(row, "text", seconds))
        except Unplannable:
            continue
        for tier in row.tier:
            if resolution_rank(resolution) > resolution_rank(tier.max_resolution):
                continue
            for volume in volumes:
                cap = tier.monthly_seconds_cap
                if cap is not None and billed * volume > cap:
                    continue
                seed = clip_cost(tier, resolution, seconds) * volume
                wire = monthly(tier, clip_cost(tier, resolution, billed), volume)
                rows.append(
                    ScaleRow(
                        model=row.id,
                        tier=tier.name,
                        volume=volume,
                        seconds=seconds,
                        seed_metered_usd=seed,
                        minimum_usd=tier.monthly_minimum_usd,
                        effective_usd=max(seed, tier.monthly_minimum_usd),
                        wire_billed_seconds=billed,
                        wire_effective_usd=wire.effective_usd,
                        price_assumed="price_per_second" in tier.assumed,
                    )
                )
    return rows


class MonthOnTier(BaseModel):
    """A month's billed seconds priced on one tier, its minimum applied."""

    tier: str
    metered_usd: USD
    minimum_usd: USD
    effective_usd: USD
    break_even_s: int | None = None  # billed seconds a month from which it beats the held tier


class TierAdvice(BaseModel):
    """Which tier of a subscription account pays at a month's volume. A recommendation: the
    key holds its plan, and changing it is the account holder's decision."""

    provider: str
    model: str
    held: str
    billed_seconds: Decimal
    clips: int
    basis: str  # where the volume comes from: "this month's ledger", "--volume"
    tiers: list[MonthOnTier]  # cheapest first: the tiers that can make this month's seconds
    recommended: str

    def says(self) -> str:
        month = {t.tier: t for t in self.tiers}
        volume = f"{self.billed_seconds:,.0f} billed s ({self.clips:,} clips, {self.basis})"
        best = month[self.recommended]
        if self.held not in month:
            return (f"tier: {self.provider} {self.held} cannot make {volume}; "
                    f"{self.recommended} would, at {usd_text(best.effective_usd)}")
        held = month[self.held]
        if self.recommended == self.held:
            text = f"tier: stay on {self.provider} {self.held} at {volume}: " \
                   f"{usd_text(held.effective_usd)}"
            dearer = [t for t in self.tiers if t.tier != self.held and t.break_even_s]
            if dearer:
                t = min(dearer, key=lambda t: t.break_even_s or 0)
                text += (f"; {t.tier} ({usd_text(t.minimum_usd)} minimum) pays from "
                         f"{t.break_even_s:,} billed s a month")
            return text
        minimum = (f" ({usd_text(best.minimum_usd)} minimum included)" if best.minimum_usd
                   else "")
        return (f"tier: {self.recommended} pays at {volume}: {usd_text(best.effective_usd)} "
                f"a month against {usd_text(held.effective_usd)} on {self.held}{minimum}; "
                f"the {self.provider} key holds {self.held}: switching is the account "
                "holder's decision")


def tier_advice(row: ModelRow, held: str, seconds: dict[Resolution, Decimal], clips: int,
                basis: str) -> TierAdvice | None:
    """The tiers of `row` (a subscription model) priced on a month of `seconds` billed by
    resolution, cheapest first; None without a volume. A tier that cannot make a resolution of
    the month, or whose credits would not cover it, is left out."""
    total = sum(seconds.values(), Decimal(0))
    if total <= 0:
        return None
    month = []
    for tier in row.tier:
        if any(resolution_rank(r) > resolution_rank(tier.max_resolution) for r in seconds):
            continue
        cap = tier.monthly_seconds_cap
        if cap is not None and total > _dec(cap):
            continue
        metered = sum((clip_cost(tier, r, s) for r, s in seconds.items()), Decimal(0))
        month.append(MonthOnTier(tier=tier.name, metered_usd=metered,
                                 minimum_usd=tier.monthly_minimum_usd,
                                 effective_usd=max(metered, tier.monthly_minimum_usd)))
    if not month:
        return None
    month.sort(key=lambda t: (t.effective_usd, t.minimum_usd))
    mine = next((t for t in month if t.tier == held), None)
    if mine is not None:
        for t in month:
            if t is not mine and t.metered_usd < mine.metered_usd:
                t.break_even_s = break_even_volume(t.metered_usd / total, t.minimum_usd,
                                                   mine.metered_usd / total, mine.minimum_usd)
    return TierAdvice(provider=row.provider, model=row.id, held=held, billed_seconds=total,
                      clips=clips, basis=basis, tiers=month, recommended=month[0].tier)
