"""Reconciliation with the provider's own bill: every charge it made reaches the ledger.

The providers' usage APIs (Kling's balance deduction detail, fal's billing events) name the job
each charge is for; the sandbox emulates them. For every job of this home whose charges are
final (its step succeeded or failed), the provider's total is compared with the ledger's, to the
cent; a charge found only at the provider is written as a ledger row of its own kind,
`reconciled`, on that job's clip. The ledger's own capture should leave nothing to write here:
the rows this writes are counted, so a gap in capture is seen, not hidden. Protocols without a
per-job usage API (OpenAI's costs are per day and project; AtlasCloud's per day and model) are
reported as not reconcilable job by job, with the days on which the provider's day totals exceed
this home's ledger. Those gaps, and jobs at the provider that no clip of this home claims, are
reported with their cost, never written: the key may serve other homes or tools.
"""

import asyncio
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from prefect import task
from prefect.artifacts import acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from models import cents, usd_text
from providers.errors import ProviderError
from storage.ledger import read_ledger
from tasks.charges import charge
from tasks.runtime import Runtime

# charges land after the submit; the window opens this long before the first one
WINDOW_MARGIN = timedelta(hours=1)


class JobBill(BaseModel):
    """One finished job as the provider billed it and as the ledger held it."""

    job_id: str
    clip_id: str
    account: str
    ledger_usd: Decimal = Field(description="The ledger's total before this reconciliation.")
    provider_usd: Decimal
    added_usd: Decimal = Field(default=Decimal(0),
                               description="Written to the ledger as a `reconciled` row.")


class ReconciledCharge(BaseModel):
    clip_id: str
    job_id: str
    usd: Decimal = Field(description="Found only on the provider's bill; now in the ledger.")


class Reconciliation(BaseModel):
    reconciled: list[ReconciledCharge] = Field(default_factory=list)
    over_billed: dict[str, Decimal] = Field(
        default_factory=dict, description="job -> ledger minus bill where the ledger is higher.")
    unclaimed_usd: dict[str, Decimal] = Field(
        default_factory=dict, description="Jobs on this key's bill that no clip here claims.")
    not_reconcilable: list[str] = Field(
        default_factory=list, description="Accounts whose protocol names no job in its usage.")
    day_gaps: dict[str, dict[str, Decimal]] = Field(
        default_factory=dict, description="account -> UTC day -> how much the provider's day "
        "total (costs API, no job named) exceeds this home's ledger for that account: a charge "
        "the ledger lacks, or another user of the same key. Reported, never written.")
    checked_jobs: int = 0
    bill: dict[str, Decimal] = Field(
        default_factory=dict, description="job -> the provider's total, for every finished job "
        "of this home on a reconcilable account (what a report reconciles the ledger with).")
    jobs: list[JobBill] = Field(default_factory=list, description="Every job compared.")


async def reconcile_charges(rt: Runtime) -> Reconciliation:
    """Compare, per account this home used, the provider's per-job charges with the ledger and
    write what the ledger lacks as `reconciled` rows."""
    result = Reconciliation()
    records = await asyncio.to_thread(rt.journal.records)
    steps = {}  # job id -> (record, step index, step state)
    jobs_of: dict[str, set[str]] = defaultdict(set)  # account -> its job ids
    since: dict[str, datetime] = {}
    adapters = {}
    for record in records:
        for step in record.every_step():
            if step.handle is None:
                continue
            adapter = rt.adapter(rt.catalog.row(step.model), step.tier)
            key = f"{adapter.protocol}:{adapter.account}"
            adapters[key] = adapter
            since[key] = min(since.get(key, step.handle.submitted_at), step.handle.submitted_at)
            steps[step.handle.job_id] = (record, step.index, step.state)
            jobs_of[key].add(step.handle.job_id)
    if not steps:
        return result
    ours, by_day = await asyncio.to_thread(_ledger_totals, rt)
    until = datetime.now(UTC) + timedelta(minutes=1)
    for key, adapter in sorted(adapters.items()):
        found = await adapter.charges(since[key] - WINDOW_MARGIN, until)
        if found is None:
            result.not_reconcilable.append(key)
            await _day_gaps(result, key, adapter, since[key], until, jobs_of[key], by_day)
            continue
        theirs: dict[str, Decimal] = defaultdict(Decimal)
        for item in found:
            theirs[item.job_id] += item.usd
        for job_id, billed in sorted(theirs.items()):
            if job_id not in steps:
                result.unclaimed_usd[job_id] = billed
                continue
            record, index, state = steps[job_id]
            if state not in ("succeeded", "failed", "cancelled"):
                continue  # still running or pending: its charges are not all in yet
            result.checked_jobs += 1
            result.bill[job_id] = billed
            # the exact difference, so the ledger ends equal to the bill (not only in cents)
            ledger = ours.get(job_id, Decimal(0))
            gap = billed - ledger
            job = JobBill(job_id=job_id, clip_id=record.clip_id, account=key,
                          ledger_usd=ledger, provider_usd=billed)
            if cents(gap) > 0:
                await asyncio.to_thread(charge, rt, record.request, record.plan, index,
                                        "reconciled", gap, "reconciled", job_id=job_id)
                result.reconciled.append(ReconciledCharge(clip_id=record.clip_id,
                                                          job_id=job_id, usd=gap))
                job.added_usd = gap
            elif cents(gap) < 0:
                result.over_billed[job_id] = -gap
            result.jobs.append(job)
    return result


async def _day_gaps(result: Reconciliation, key: str, adapter, since: datetime,
                    until: datetime, jobs: set[str],
                    by_day: dict[tuple[str, date], Decimal]) -> None:
    """Day totals where the protocol has nothing finer (OpenAI's organization costs)."""
    try:
        days = await adapter.daily_costs(since - WINDOW_MARGIN, until)
    except ProviderError:
        return  # e.g. a project key where an admin key is needed: nothing to compare with
    for day, billed in sorted((days or {}).items()):
        ours = sum((usd for (job, d), usd in by_day.items() if d == day and job in jobs),
                   Decimal(0))
        if (gap := cents(billed - ours)) > 0:
            result.day_gaps.setdefault(key, {})[day.isoformat()] = gap


def _ledger_totals(rt: Runtime) -> tuple[dict[str, Decimal], dict[tuple[str, date], Decimal]]:
    """Per job, and per (job, UTC day of the charge)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    by_day: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for row in read_ledger(rt.settings.ledger_place, ["job_id", "cost_usd", "event_time"],
                           rt.settings.ledger_options):
        if row["job_id"]:
            totals[row["job_id"]] += row["cost_usd"]
            by_day[(row["job_id"], row["event_time"].astimezone(UTC).date())] += row["cost_usd"]
    return totals, by_day

def _signed(amount: Decimal) -> str:
    return ("−" if cents(amount) < 0 else "") + usd_text(abs(amount))


def reconciliation_table(found: Reconciliation) -> list[dict[str, str]]:
    """Job, ledger amount, provider amount, difference — dollars to the cent — with the total
    and a row for every account or job the comparison could not cover."""
    rows = []
    for job in found.jobs:
        now = job.ledger_usd + job.added_usd
        note = (f"{usd_text(job.added_usd)} found only on the bill, added to the ledger"
                if job.added_usd else "ledger higher than the bill"
                if cents(now - job.provider_usd) > 0 else "")
        rows.append({"job": job.job_id, "clip": job.clip_id[:12], "account": job.account,
                     "ledger": usd_text(now), "provider": usd_text(job.provider_usd),
                     "difference": _signed(now - job.provider_usd), "note": note})
    ledger = sum((j.ledger_usd + j.added_usd for j in found.jobs), Decimal(0))
    billed = sum((j.provider_usd for j in found.jobs), Decimal(0))
    rows.append({"job": f"total ({len(found.jobs)} jobs)", "clip": "", "account": "",
                 "ledger": usd_text(ledger), "provider": usd_text(billed),
                 "difference": _signed(ledger - billed), "note": ""})
    rows += [{"job": job, "clip": "—", "account": "", "ledger": usd_text(Decimal(0)),
              "provider": usd_text(usd), "difference": _signed(-usd),
              "note": "on this key's bill; no clip of this home claims it (another user?)"}
             for job, usd in sorted(found.unclaimed_usd.items())]
    rows += [{"job": "—", "clip": "—", "account": account, "ledger": "", "provider": "",
              "difference": "", "note": "not reconcilable job by job: the provider's usage "
              "names no job" + "".join(f"; {day}: the bill exceeds the ledger by "
                                       f"{usd_text(gap)}" for day, gap in
                                       found.day_gaps.get(account, {}).items())}
             for account in found.not_reconcilable]
    return rows


async def publish_reconciliation(found: Reconciliation, key: str) -> None:
    """The reconciliation as a table artifact (best-effort: the ledger rows are what count)."""
    added = sum((c.usd for c in found.reconciled), Decimal(0))
    differ = sum(cents(j.ledger_usd + j.added_usd - j.provider_usd) != 0 for j in found.jobs)
    await acreate_table_artifact(
        key=key, table=reconciliation_table(found),
        description=f"{len(found.jobs)} jobs against the provider's bill: {differ} differ; "
        f"{usd_text(added)} found only on the bill, now in the ledger")


reconcile_task = task(reconcile_charges, name="reconcile with the provider's bill", retries=0,
                      cache_policy=NO_CACHE)
