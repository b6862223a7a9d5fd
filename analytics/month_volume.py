"""The month's volume per subscription account, read from the ledger: the seconds billed at
full price this calendar month (UTC) — finished generations and re-queues, by resolution — and
the clips they made, on the real endpoint or the sandbox alike as the rows say (never mixed).
It is what decides which tier pays (providers/pricebook.py `tier_advice`): billed seconds, not
clips, since a month of 9 s clips and one of 5 s clips break even at different counts."""

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from models import Resolution
from providers.catalog import SUBSCRIPTION_PROTOCOLS, Catalog
from providers.pricebook import TierAdvice, tier_advice
from storage.ledger import read_ledger

COLUMNS = ["event_time", "event_kind", "provider", "tier", "endpoint", "clip_id",
           "seconds_billed", "resolution_asked"]


class AccountMonth(BaseModel):
    """One account's month so far."""

    provider: str
    tier: str
    seconds: dict[Resolution, Decimal]
    clips: int


def month_of(rows: list[dict], now: datetime) -> dict[str, AccountMonth]:
    """provider:tier -> its month so far, from ledger rows."""
    seconds: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    clips: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        when = row["event_time"]
        if (when.year, when.month) != (now.year, now.month) or row["event_kind"] not in (
                "complete", "requeue") or not row["seconds_billed"]:
            continue
        account = f"{row['provider']}:{row['tier']}"
        seconds[account][row["resolution_asked"] or "1080p"] += Decimal(str(row["seconds_billed"]))
        if row["event_kind"] == "complete":
            clips[account].add(row["clip_id"])
    return {account: AccountMonth(provider=account.split(":")[0], tier=account.split(":")[1],
                                  seconds=dict(by_res), clips=len(clips[account]))
            for account, by_res in seconds.items()}


def read_month(place: str | Path, options: dict[str, Any] | None, now: datetime
               ) -> dict[str, AccountMonth]:
    return month_of(read_ledger(place, COLUMNS, options), now)


def held_tiers(subscriptions: frozenset[tuple[str, str]], catalog: Catalog) -> dict[str, str]:
    """provider -> the tier its key holds, for the subscription providers."""
    plans = {row.provider for row in catalog.models if row.protocol in SUBSCRIPTION_PROTOCOLS}
    return {provider: tier for provider, tier in subscriptions if provider in plans}


def advice_for(catalog: Catalog, held: dict[str, str], month: dict[str, AccountMonth],
               basis: str = "this month's ledger") -> list[TierAdvice]:
    """For each subscription provider whose key holds a tier (`held`: provider -> tier), which
    of its tiers pays at its account's month."""
    advice, seen = [], set()
    for row in catalog.models:
        if row.protocol not in SUBSCRIPTION_PROTOCOLS or row.provider not in held \
                or row.provider in seen:
            continue
        seen.add(row.provider)
        mine = month.get(f"{row.provider}:{held[row.provider]}")
        if mine and (found := tier_advice(row, held[row.provider], mine.seconds, mine.clips,
                                          basis)):
            advice.append(found)
    return advice
