"""A batch's budget guard: nothing is submitted that would take committed spend past the cap.

Committed spend = every charge the journal holds for the batch's clips (all runs) + what the
jobs in flight have not charged yet. The guard is asked at each submit, once a provider slot is
free (`before_submit`, the runtime's hook), so it sees every charge landed so far — a failure
charge, a re-queue, a fallback to a dearer model — not only the plans' estimates made before
the batch started. The first submit that would cross the cap stops the batch: it and every
later one raise BudgetReached, and their requests are listed as left. A job already submitted
(resumed after a kill) is never refused: its money is spent at the provider; it is counted.

Both fan-outs take requests in manifest order: the first rows fill the budget. The deployments
fan-out admits whole requests on their estimates before sending them (`admit`); each chunk run
then gets its share of the budget and a guard of its own (tasks/fan_out_deployments.py). The
tasks fan-out leaves, before it starts, the rows past the first whose estimate would not fit
(`fitting`): its rows run concurrently, and which of them asked first at a submit is the order
their task runs happened to start in, not the manifest's.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal

from models import ClipRequest, RoutePlan, usd_text
from storage.journal import Journal
from storage.records import ClipJournal
from tasks.suspending import Parked

# The batch request being made in this asyncio task (and the tasks it starts: storyboard
# scenes, extension steps): their submits are that request's spend.
_ITEM: ContextVar[str | None] = ContextVar("reelflow_batch_item", default=None)


class BudgetReached(RuntimeError):
    """Submitting this job would take the batch's committed spend past its budget."""


def submit_tried(record: ClipJournal | None, plan: RoutePlan, index: int) -> bool:
    """Step `index` of `plan` was sent to the provider (its step is written before the
    submit): the job exists or may (an ambiguous submit is recovered by its key, which must
    not change), so it is never refused."""
    step = record.steps[index] if record and index < len(record.steps) else None
    return bool(step and step.model == plan.model and step.state != "failed")


def remaining_cost(plan: RoutePlan, index: int) -> Decimal:
    """The plan's estimate for its steps from `index` on (prices are per billed second)."""
    total = sum(s.seconds for s in plan.steps)
    rest = sum(s.seconds for s in plan.steps[index:])
    return Decimal(plan.cost_usd) * rest / total if total else Decimal(plan.cost_usd)


class BudgetGuard:
    def __init__(self, budget: Decimal | None, journal: Journal, clips: list[str]):
        self.budget, self.journal = budget, journal
        self.settled = sum((self.spent(c) for c in clips), Decimal(0))
        # (item, clip) -> (the clip's spend at its first submit in this run, spend it is
        # committed to); an item's clips are itself, or its scenes and extension steps
        self.open: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self.stopped = False

    def spent(self, clip_id: str) -> Decimal:
        return self.journal.spent(clip_id)

    @contextmanager
    def item(self, clip_id: str):
        """Submits made inside are `clip_id`'s; its charges are settled when it ends — not
        when it parks (wait=suspend): its job renders on, so what it may still cost stays
        committed while the run's other clips are admitted."""
        token = _ITEM.set(clip_id)
        try:
            yield
        except Parked:
            _ITEM.reset(token)
            raise
        except BaseException:
            self._settle(clip_id, token)
            raise
        self._settle(clip_id, token)

    def _settle(self, clip_id: str, token) -> None:
        _ITEM.reset(token)
        for key in [k for k in self.open if k[0] == clip_id]:
            base, _ = self.open.pop(key)
            self.settled += self.spent(key[1]) - base

    def committed(self) -> Decimal:
        """Charges landed + the part of each open item's commitment not charged yet."""
        return self.settled + sum((max(self.spent(clip) - base, owed)
                                   for (_, clip), (base, owed) in self.open.items()), Decimal(0))

    def before_submit(self, request: ClipRequest, plan: RoutePlan, index: int) -> None:
        """Raise BudgetReached instead of submitting step `index` of `plan` past the cap."""
        if self.budget is None:
            return
        record = self.journal.read(request.clip_id)
        resuming = submit_tried(record, plan, index)
        key = (_ITEM.get() or request.clip_id, request.clip_id)
        spent = record.spent_usd if record else Decimal(0)
        base, _ = self.open.pop(key, (spent, Decimal(0)))
        owed = spent - base + remaining_cost(plan, index)
        if not resuming and (self.stopped or self.committed() + owed > self.budget):
            self.stopped = True  # stop submitting: later requests are left too
            self.open[key] = (base, spent - base)
            raise BudgetReached(f"not submitted: {plan.model} for "
                                f"{usd_text(remaining_cost(plan, index))} would take committed "
                                f"spend past the {usd_text(self.budget)} budget")
        self.open[key] = (base, owed)

    def fitting(self, estimates: list[tuple[str, Decimal]]) -> set[str]:
        """The clips that fit, in manifest order, on their estimates beside what is settled:
        up to the first that does not (it and every later one are left). Nothing is reserved:
        each submit is still asked of `before_submit`."""
        if self.budget is None:
            return {clip for clip, _ in estimates}
        fit, total = set(), self.settled
        for clip, estimate in estimates:
            total += estimate
            if total > self.budget:
                break
            fit.add(clip)
        return fit

    def admit(self, estimate: Decimal) -> bool:
        """Upfront admission of a whole request on its estimate (deployments fan-out): the
        estimate is counted as if charged."""
        if self.budget is None:
            return True
        if self.stopped or self.settled + estimate > self.budget:
            self.stopped = True
            return False
        self.settled += estimate
        return True
