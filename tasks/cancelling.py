"""Cancelling stops the spending where the provider can stop it, and loses nothing it cannot.

A run that is cancelled (the UI's Cancel, Ctrl-C, or `reelflow cancel`) asks each of its jobs
still in flight to stop. fal's queue takes a cancel (PUT .../cancel, 202); Kling, the OpenAI
Videos API and AtlasCloud document none, so their jobs run to their end and are billed. The
journal records either outcome (Journal.cancel_step): a stopped job's step is `cancelled` and
its clip failed; a job that could not be stopped leaves its clip `pending`, so the sweep or a
rerun collects and archives what was paid for. What a provider still bills for a stopped job
reaches the ledger through reconciliation. The cancel itself is bounded in time: a run being
torn down does not wait on a provider that does not answer.
"""

import asyncio

import httpx
from pydantic import BaseModel, Field

from models import JobHandle
from providers.errors import ProviderError
from storage.records import StepRecord
from tasks.runtime import Runtime

CANCEL_TIMEOUT_S = 10.0
IN_FLIGHT = ("submitted", "pending", "unknown")


class Cancelled(BaseModel):
    """One job a cancel was asked of, and what became of it."""

    clip_id: str
    job_id: str
    model: str
    stopped: bool = Field(description="The provider stopped it; else it runs on and bills.")
    why: str


async def stop_job(rt: Runtime, clip_id: str, step: StepRecord) -> Cancelled | None:
    """Ask the provider to stop `step`'s job and record the answer; None when the step had
    already ended (nothing to cancel)."""
    assert step.handle is not None
    handle: JobHandle = step.handle
    row = rt.catalog.row(step.model)
    try:
        stopped = await asyncio.wait_for(rt.adapter(row, step.tier).cancel(handle),
                                         CANCEL_TIMEOUT_S)
    except (ProviderError, httpx.HTTPError, TimeoutError):
        stopped = False
    why = (f"cancelled: {row.protocol} stopped job {handle.job_id}" if stopped else
           f"cancel asked, but {row.protocol} cannot stop job {handle.job_id}: it runs to its "
           "end and is billed; the sweep or a rerun archives it")
    changed = await asyncio.to_thread(rt.journal.cancel_step, clip_id, step.index, stopped, why)
    return Cancelled(clip_id=clip_id, job_id=handle.job_id, model=step.model, stopped=stopped,
                     why=why) if changed else None


async def cancel_clip(rt: Runtime, clip_id: str) -> list[Cancelled]:
    """Every job of the clip still in flight, asked to stop."""
    record = await asyncio.to_thread(rt.journal.read, clip_id)
    if record is None:
        return []
    found = [await stop_job(rt, clip_id, step) for step in record.steps
             if step.handle is not None and step.state in IN_FLIGHT]
    return [c for c in found if c is not None]
