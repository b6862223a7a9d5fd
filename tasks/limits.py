"""Provider concurrency: one limit per account, named `provider:<name>:<tier>`, sized from the
catalog (the tier's documented jobs in flight), so that provider 429s stay rare.

A slot is held from submit until the job ends at the provider (or its wait ends): the provider
counts jobs in flight, not requests. Inside a run an asyncio semaphore per name does it; with
REELFLOW_CONCURRENCY_LIMITS=prefect the slot is also taken from a Prefect global concurrency
limit of the same name — shared by every run and worker — with strict=True, so a limit that
was never created (`reelflow limits sync`) fails the run instead of silently not limiting.
Several models on one account (AtlasCloud's) share its limit: the smallest of their figures.
A Prefect slot is a lease the holder renews while it runs (LEASE_S): a worker that dies with
its slots gives them back when the lease runs out — a minute, not Prefect's default five, in
which the other workers would have run the account below its limit.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel

from models import concurrency_key
from providers.catalog import Catalog

LEASE_S = 60.0


def catalog_limits(catalog: Catalog) -> dict[str, int]:
    limits: dict[str, int] = {}
    for row in catalog.models:
        for tier in row.tier:
            name = concurrency_key(row.provider, tier.name)
            limits[name] = min(limits.get(name, tier.concurrency), tier.concurrency)
    return limits


class ProviderSlots:
    def __init__(self, catalog: Catalog, *, use_prefect: bool = False):
        self.limits = catalog_limits(catalog)
        self.use_prefect = use_prefect
        self._local: dict[str, asyncio.Semaphore] = {}
        self.peak: dict[str, int] = {}
        self._held: dict[str, int] = {}

    @asynccontextmanager
    async def slot(self, name: str) -> AsyncIterator[None]:
        """One job in flight on the account `name` (a plan's concurrency_key)."""
        local = self._local.setdefault(name, asyncio.Semaphore(self.limits.get(name, 1)))
        async with local:
            self._held[name] = self._held.get(name, 0) + 1
            self.peak[name] = max(self.peak.get(name, 0), self._held[name])
            try:
                if self.use_prefect:
                    from prefect.concurrency.asyncio import concurrency

                    async with concurrency(name, occupy=1, strict=True, lease_duration=LEASE_S):
                        yield
                else:
                    yield
            finally:
                self._held[name] -= 1


class LimitChange(BaseModel):
    name: str
    limit: int
    action: str  # created, updated, unchanged


async def sync_limits(catalog: Catalog) -> list[LimitChange]:
    """Create or update a Prefect global concurrency limit per account (idempotent)."""
    from prefect import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectNotFound

    changes = []
    async with get_client() as client:
        for name, limit in sorted(catalog_limits(catalog).items()):
            try:
                current = await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=limit))
                changes.append(LimitChange(name=name, limit=limit, action="created"))
                continue
            if current.limit == limit and current.active:
                changes.append(LimitChange(name=name, limit=limit, action="unchanged"))
                continue
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=limit, active=True))
            changes.append(LimitChange(name=name, limit=limit, action="updated"))
    return changes
