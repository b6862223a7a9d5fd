"""A step's charge: its ledger row and the journal's record of it, together and once.

Every charge event (submit, complete, fail, re-queue, reconciled) goes through `charge`: the
row is flushed the moment the charge is known, under the clip's lock, before the journal notes
it — so a killed run loses nothing it paid for, and a rerun writes no charge twice.
"""

from decimal import Decimal

from models import ClipRequest, RoutePlan
from models.ledger import ChargeKind, EventKind
from storage.ledger import event_row
from storage.records import StepRecord
from tasks.runtime import Runtime


def charge(rt: Runtime, request: ClipRequest, plan: RoutePlan, index: int, kind: EventKind,
           cost: Decimal, charge_kind: ChargeKind, *, job_id: str | None = None,
           **fields) -> bool:
    """Record charge `kind` of step `index` — or of the step that sent `job_id`, which a
    later attempt may have replaced; False when it was already recorded."""

    def write(step: StepRecord, marker: str) -> None:
        job = step.handle.job_id if step.handle else None
        rt.ledger.append([event_row(
            kind, request, plan, rt.run_id, key=(step.index, step.model, job, marker),
            cost=cost, charge=charge_kind, model=step.model, tier=step.tier, job_id=job,
            provider=rt.catalog.row(step.model).provider, seconds_billed=step.seconds,
            **fields)])

    return rt.journal.record_charge(request.clip_id, index, kind, cost, write, job_id=job_id)
