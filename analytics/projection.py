"""Projection and advice: what a month of the measured workload costs on each model and tier,
minimums included; where Kling Pro's $500 minimum pays off; which tier to be on; and month-to-date
spend against a budget. Prices come from the price book (DESIGN.md §2: analytics may use it).

The month's projection reads whole UTC days only (never the hour of the call), so two reports
made on one day over one ledger agree; with fewer than three days of data it says so instead
of extrapolating."""

import calendar
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import duckdb
from pydantic import BaseModel, Field

from analytics.tables import Cents
from models import Resolution, cents, resolution_rank, usd_text
from providers.catalog import Catalog
from providers.durations import Unplannable, plan_steps
from providers.pricebook import break_even_volume, clip_cost, monthly


class Workload(BaseModel):
    clips_per_month: int
    seconds_per_clip: float
    resolution: Resolution
    measured: bool
    current: str | None = Field(
        default=None, description="The model and tier that made most of the measured clips.")


class TierCost(BaseModel):
    model: str
    tier: str
    billed_seconds: int
    metered_usd: Cents
    minimum_usd: Cents
    effective_usd: Cents
    per_clip_usd: Cents

    @property
    def name(self) -> str:
        return f"{self.model} {self.tier}"


class Advice(BaseModel):
    workload: Workload
    tiers: list[TierCost]
    best: TierCost | None
    pro_break_even_clips: int | None
    advice: str


MIN_DAYS = 3  # days with data before the month is extrapolated


class Budget(BaseModel):
    month: str
    spent_usd: Cents = Field(description="Month to date, today included.")
    projected_usd: Cents | None = Field(
        description="The month's end; None with fewer than three days of data.")
    projection_method: str | None = Field(description="How projected_usd was reached.")
    projection_reason: str | None = Field(
        default=None, description="Why there is no projection (not enough data yet).")
    budget_usd: Cents | None
    over_budget: bool


def measured_workload(con: duckdb.DuckDBPyConnection, now: datetime) -> Workload | None:
    """Clips delivered in the last 30 days, their typical length and resolution, and the model
    and tier that made most of them."""
    row = con.execute("""
        SELECT count(*), avg(seconds_asked), mode(resolution_asked), mode(model || ' ' || tier)
        FROM clips WHERE delivered AND first_event >= ?::TIMESTAMPTZ - INTERVAL 30 DAY
          AND first_event <= ?::TIMESTAMPTZ""", [now, now]).fetchall()[0]
    if not row or not row[0]:
        return None
    return Workload(clips_per_month=int(row[0]), seconds_per_clip=float(row[1]),
                    resolution=row[2], measured=True, current=row[3])


def advise(catalog: Catalog, workload: Workload, *, now: datetime) -> Advice:
    tiers: list[TierCost] = []
    for row in catalog.models:
        if row.is_sunset(now.date()) or workload.resolution not in row.wire:
            continue
        try:
            billed = sum(s.seconds for s in plan_steps(row, "text", workload.seconds_per_clip))
        except Unplannable:
            continue
        for tier in row.tier:
            if resolution_rank(workload.resolution) > resolution_rank(tier.max_resolution):
                continue
            cap = tier.monthly_seconds_cap
            if cap is not None and billed * workload.clips_per_month > cap:
                continue
            month = monthly(tier, clip_cost(tier, workload.resolution, billed),
                            workload.clips_per_month)
            tiers.append(TierCost(model=row.id, tier=tier.name, billed_seconds=billed,
                                  metered_usd=month.metered_usd, minimum_usd=month.minimum_usd,
                                  effective_usd=month.effective_usd,
                                  per_clip_usd=month.per_clip_usd))
    tiers.sort(key=lambda t: (t.effective_usd, t.model, t.tier))
    best = tiers[0] if tiers else None
    pro_break_even, pro_minimum = None, None
    try:
        kling = catalog.row("kling-v3")
        pro, standard = kling.tier_named("pro"), kling.tier_named("standard")
        seconds = sum(s.seconds for s in plan_steps(kling, "text", workload.seconds_per_clip))
        pro_minimum = pro.monthly_minimum_usd
        pro_break_even = break_even_volume(
            clip_cost(pro, workload.resolution, seconds), pro.monthly_minimum_usd,
            clip_cost(standard, workload.resolution, seconds), standard.monthly_minimum_usd)
    except (KeyError, StopIteration, Unplannable):
        pass
    text = _advice(workload, tiers, best)
    if pro_break_even:
        text += (f" Kling Pro's {usd_text(pro_minimum)} monthly minimum pays off from "
                 f"{pro_break_even:,} such clips a month — "
                 + ("you are past it." if workload.clips_per_month >= pro_break_even
                    else "below that, Standard stays cheaper."))
    return Advice(workload=workload, tiers=tiers, best=best,
                  pro_break_even_clips=pro_break_even, advice=text)


def _advice(workload: Workload, tiers: list[TierCost], best: TierCost | None) -> str:
    """What to do, in one sentence, and why: the cheapest tier for the workload, against the
    tier the clips are made on now."""
    length = f"{workload.seconds_per_clip:.1f}".removesuffix(".0")
    volume = (f"{workload.clips_per_month:,} clips of {length} s at {workload.resolution}"
              + (" (your last 30 days)" if workload.measured else " (an assumed workload)"))
    if best is None:
        return f"No model can serve this workload: none in the catalog makes {volume}."
    current = next((t for t in tiers if t.name == workload.current), None)
    if workload.current is None:
        lead = f"Use {best.name}"
    elif workload.current == best.name:
        lead = f"Stay on {best.name}"
    else:
        lead = f"Move from {workload.current} to {best.name}"
    text = (f"{lead}: it is the cheapest of the {len(tiers)} tiers that can make such clips, "
            f"{usd_text(best.effective_usd)} a month for {volume}.")
    if current is not None and current is not best:
        text += (f" {current.name} would cost {usd_text(current.effective_usd)} "
                 f"({usd_text(current.effective_usd - best.effective_usd)} more).")
    return text


def budget(con: duckdb.DuckDBPyConnection, now: datetime, budget_usd: Decimal | None
           ) -> Budget:
    """Month-to-date spend, and the month's end: the spend of the whole days so far plus their
    daily mean for each day left (today included); none from fewer than three days of data."""
    today = now.astimezone(UTC).date()
    first = today.replace(day=1)
    start, midnight = (datetime.combine(d, time(), UTC) for d in (first, today))
    spent = Decimal(con.execute(
        "SELECT coalesce(sum(cost_usd), 0) FROM ledger WHERE event_time >= ? "
        "AND event_time <= ?", [start, now]).fetchall()[0][0])
    days = con.execute(
        "SELECT CAST(utc_wall(event_time) AS DATE) AS day, sum(cost_usd) FROM ledger "
        "WHERE event_time >= ? AND event_time < ? GROUP BY day ORDER BY day",
        [start, midnight]).fetchall()
    month_days = calendar.monthrange(today.year, today.month)[1]
    projected, method, reason = _projection(days, today, month_days)
    over = budget_usd is not None and (spent > budget_usd
                                       or (projected is not None and projected > budget_usd))
    return Budget(month=first.strftime("%Y-%m"), spent_usd=spent, projected_usd=projected,
                  projection_method=method, projection_reason=reason, budget_usd=budget_usd,
                  over_budget=over)


def _projection(days: list[tuple[date, Decimal]], today: date, month_days: int
                ) -> tuple[Decimal | None, str | None, str | None]:
    """(projected, method, reason): days are this month's whole days with data, before today."""
    if len(days) < MIN_DAYS:
        return None, None, (f"not enough data yet: {len(days)} whole day"
                            f"{'' if len(days) == 1 else 's'} of data this month before today; "
                            f"{MIN_DAYS} are needed to project the month")
    yesterday = today - timedelta(days=1)
    counted = (yesterday - days[0][0]).days + 1
    so_far = sum((Decimal(usd or 0) for _, usd in days), Decimal(0))
    daily = so_far / counted
    left = month_days - yesterday.day
    projected = cents(so_far + daily * left)
    method = (f"the spend of the {counted} whole days from {days[0][0]:%b %d} to "
              f"{yesterday:%b %d} ({usd_text(so_far)}) plus their daily mean "
              f"({usd_text(daily)} a day) for the {left} day{'' if left == 1 else 's'} left "
              f"of {today:%B} (today included)")
    return projected, method, None
