"""Projection and advice: what a month of the measured workload costs on each model and tier,
minimums included; where Kling Pro's $500 minimum pays off; which tier to be on; and month-to-date
spend against a budget. Prices come from the price book (DESIGN.md §2: analytics may use it)."""

import calendar
from datetime import datetime
from decimal import Decimal

import duckdb
from pydantic import BaseModel

from models import Resolution, resolution_rank
from providers.catalog import Catalog
from providers.durations import Unplannable, plan_steps
from providers.pricebook import break_even_volume, clip_cost, monthly


class Workload(BaseModel):
    clips_per_month: int
    seconds_per_clip: float
    resolution: Resolution
    measured: bool


class TierCost(BaseModel):
    model: str
    tier: str
    billed_seconds: int
    metered_usd: Decimal
    minimum_usd: Decimal
    effective_usd: Decimal
    per_clip_usd: Decimal


class Advice(BaseModel):
    workload: Workload
    tiers: list[TierCost]
    best: TierCost | None
    pro_break_even_clips: int | None
    advice: str


class Budget(BaseModel):
    month: str
    spent_usd: Decimal
    projected_usd: Decimal
    budget_usd: Decimal | None
    over_budget: bool


def measured_workload(con: duckdb.DuckDBPyConnection, now: datetime) -> Workload | None:
    """Clips delivered in the last 30 days, and their typical length and resolution."""
    row = con.execute("""
        SELECT count(*), avg(seconds_asked), mode(resolution_asked)
        FROM clips WHERE delivered AND first_event >= ?::TIMESTAMPTZ - INTERVAL 30 DAY""",
                      [now]).fetchall()[0]
    if not row or not row[0]:
        return None
    return Workload(clips_per_month=int(row[0]), seconds_per_clip=float(row[1]),
                    resolution=row[2], measured=True)


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
    pro_break_even = None
    try:
        kling = catalog.row("kling-v3")
        pro, standard = kling.tier_named("pro"), kling.tier_named("standard")
        seconds = sum(s.seconds for s in plan_steps(kling, "text", workload.seconds_per_clip))
        pro_break_even = break_even_volume(
            clip_cost(pro, workload.resolution, seconds), pro.monthly_minimum_usd,
            clip_cost(standard, workload.resolution, seconds), standard.monthly_minimum_usd)
    except (KeyError, StopIteration, Unplannable):
        pass
    text = "no model can serve this workload" if best is None else (
        f"{best.model} {best.tier} at ${best.effective_usd:,.2f} a month for "
        f"{workload.clips_per_month:,} clips of {workload.seconds_per_clip:.3g} s at "
        f"{workload.resolution}")
    if pro_break_even:
        text += (f"; Kling Pro's minimum pays off from {pro_break_even:,} such clips a month"
                 + (" — you are past it" if workload.clips_per_month >= pro_break_even
                    else ""))
    return Advice(workload=workload, tiers=tiers, best=best,
                  pro_break_even_clips=pro_break_even, advice=text)


def budget(con: duckdb.DuckDBPyConnection, now: datetime, budget_usd: Decimal | None
           ) -> Budget:
    """Month-to-date spend and a straight-line projection to the month's end."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = con.execute("SELECT coalesce(sum(cost_usd), 0) FROM ledger WHERE event_time >= ? "
                        "AND event_time <= ?", [first, now]).fetchall()[0][0]
    spent = Decimal(spent)
    days = calendar.monthrange(now.year, now.month)[1]
    elapsed = max((now - first).total_seconds() / 86400, 1 / 24)
    projected = (spent / Decimal(str(elapsed)) * days).quantize(Decimal("0.01"))
    return Budget(month=first.strftime("%Y-%m"), spent_usd=spent, projected_usd=projected,
                  budget_usd=budget_usd,
                  over_budget=budget_usd is not None and projected > budget_usd)
