"""The budget guard on its own: committed spend = charges landed + what open jobs still owe;
asked before each submit; resumed jobs never refused; the first refusal stops the batch."""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from models import ClipRequest, JobHandle
from providers.router import parse_subscriptions, plan
from storage.journal import Journal, new_record
from storage.journal_folder import FolderJournal
from storage.records import StepRecord
from tasks.budget import BudgetGuard, BudgetReached, remaining_cost


@pytest.fixture
def kling(catalog, now, sandbox_endpoints):
    """(request, plan) for a Kling 720p clip of `seconds` (> 10 s: an extension chain)."""
    def make(prompt: str, seconds: float = 5):
        request = ClipRequest(prompt=prompt, duration=seconds, resolution="720p",
                              policy="kling-v3")
        return request, plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                             subscriptions=parse_subscriptions("kling:standard", catalog))
    return make


def charge(journal: Journal, request: ClipRequest, decision, usd: str, *,
           step: str | None = None) -> None:
    """What a landed charge (and, optionally, a step in that state) leaves in the journal."""
    record = journal.start(new_record(request, decision))
    record.spent_usd += Decimal(usd)
    if step:
        handle = JobHandle(protocol=decision.protocol, endpoint="sandbox",
                           endpoint_kind="sandbox", account="kling:standard",
                           credential_ref="KLING_ACCESS_KEY", job_id="job-1",
                           submitted_at=datetime.now(UTC))
        record.steps = [StepRecord(index=0, kind="generate", seconds=5, model=decision.model,
                                   tier=decision.tier, state=step,
                                   handle=handle if step != "intent" else None)]
    journal._write(record)  # a fixture: the state a run's transitions would leave


def test_remaining_cost_is_the_plan_s_share_from_a_step_on(kling):
    _, long = kling("a long take", 30)  # Kling: 10 s + extensions
    assert len(long.steps) > 1
    assert remaining_cost(long, 0) == Decimal(long.cost_usd)
    last = long.steps[-1].seconds / sum(s.seconds for s in long.steps)
    assert remaining_cost(long, len(long.steps) - 1) == pytest.approx(
        Decimal(long.cost_usd) * Decimal(last))


def test_jobs_are_admitted_until_the_next_would_cross_then_everything_stops(tmp_path, kling):
    journal = FolderJournal(tmp_path)
    pairs = [kling(f"clip {i}") for i in range(4)]
    guard = BudgetGuard(Decimal("0.30"), journal, [r.clip_id for r, _ in pairs])
    cheap = pairs[0][1].cost_usd
    assert Decimal(cheap) == Decimal("0.14")
    with guard.item(pairs[0][0].clip_id):
        guard.before_submit(*pairs[0], 0)
        with guard.item(pairs[1][0].clip_id):
            guard.before_submit(*pairs[1], 0)
            assert guard.committed() == Decimal("0.28")
            with pytest.raises(BudgetReached, match=r"past the \$0.30 budget"), \
                    guard.item(pairs[2][0].clip_id):
                guard.before_submit(*pairs[2], 0)
    assert guard.stopped and guard.committed() == 0  # nothing was charged; all closed
    with pytest.raises(BudgetReached), guard.item(pairs[3][0].clip_id):
        guard.before_submit(*pairs[3], 0)  # it stays stopped, even for what would fit now


def test_charges_landed_count_and_a_retry_owes_its_whole_cost_again(tmp_path, kling):
    journal = FolderJournal(tmp_path)
    (a, pa), (b, pb) = kling("fails once"), kling("waits")
    guard = BudgetGuard(Decimal("0.30"), journal, [a.clip_id, b.clip_id])  # 2 x 0.14 fit
    with guard.item(a.clip_id):
        guard.before_submit(a, pa, 0)
        charge(journal, a, pa, "0.028")  # the job failed: Kling's 20% failure charge
        assert guard.committed() == Decimal("0.14")  # within what it owed
        guard.before_submit(a, pa, 0)  # the retry: 0.028 landed + 0.14 owed
        assert guard.committed() == Decimal("0.168")
        with guard.item(b.clip_id), pytest.raises(BudgetReached):
            guard.before_submit(b, pb, 0)  # 0.168 + 0.14 > 0.30
        charge(journal, a, pa, "0.14")
    assert guard.settled == Decimal("0.168") and guard.committed() == Decimal("0.168")


def test_charges_beyond_the_estimate_count_at_once(tmp_path, kling):
    journal = FolderJournal(tmp_path)
    (a, pa), (b, pb) = kling("re-queued"), kling("next")
    guard = BudgetGuard(Decimal("0.40"), journal, [a.clip_id, b.clip_id])
    with guard.item(a.clip_id):
        guard.before_submit(a, pa, 0)
        charge(journal, a, pa, "0.28")  # a re-queue charged it twice
        assert guard.committed() == Decimal("0.28")
        with guard.item(b.clip_id), pytest.raises(BudgetReached):
            guard.before_submit(b, pb, 0)


@pytest.mark.parametrize("state", ["submitted", "intent"])
def test_a_job_already_sent_is_never_refused_but_is_counted(tmp_path, kling, state):
    """Resumed after a kill: a job with a handle, or a submit whose answer was lost (intent:
    the next run recovers it by its key — a refusal now would change that key)."""
    journal = FolderJournal(tmp_path)
    (a, pa), (b, pb) = kling("resumed after a kill"), kling("new")
    charge(journal, a, pa, "0", step=state)
    guard = BudgetGuard(Decimal("0.10"), journal, [a.clip_id, b.clip_id])
    guard.before_submit(a, pa, 0)  # 0.14 > 0.10, but the money is already spent: resumed
    assert guard.committed() == Decimal("0.14")
    with pytest.raises(BudgetReached):
        guard.before_submit(b, pb, 0)


def test_earlier_runs_spend_counts_and_no_budget_admits_everything(tmp_path, kling):
    journal = FolderJournal(tmp_path)
    (a, pa), (b, pb) = kling("paid last run"), kling("this run")
    charge(journal, a, pa, "0.14")
    with pytest.raises(BudgetReached):
        BudgetGuard(Decimal("0.20"), journal, [a.clip_id, b.clip_id]).before_submit(b, pb, 0)
    unlimited = BudgetGuard(None, journal, [a.clip_id, b.clip_id])
    unlimited.before_submit(b, pb, 0)
    assert unlimited.admit(Decimal(1000)) and not unlimited.stopped


def test_submits_inside_an_item_s_tasks_are_that_item_s(tmp_path, kling):
    """A storyboard's scenes run in tasks of their own: their jobs are the batch item's."""
    journal = FolderJournal(tmp_path)
    (board, _), (scene1, p1), (scene2, p2) = kling("board"), kling("scene 1"), kling("scene 2")
    guard = BudgetGuard(Decimal("1"), journal, [board.clip_id])

    async def scenes():
        async def one(request, decision):
            guard.before_submit(request, decision, 0)
        await asyncio.gather(one(scene1, p1), one(scene2, p2))

    with guard.item(board.clip_id):
        asyncio.run(scenes())
        assert {item for item, _ in guard.open} == {board.clip_id}
        assert guard.committed() == Decimal("0.28")  # both scenes' jobs
    assert not guard.open


def test_a_parked_clip_s_job_stays_committed_while_the_next_ones_are_admitted(tmp_path, kling):
    """wait=suspend: a clip whose job still renders parks (its item ends early) — what the job
    will cost stays committed, so the run's next clip cannot spend it a second time."""
    from tasks.suspending import Parked, Waiting

    journal = FolderJournal(tmp_path)
    pairs = [kling(f"clip {i}") for i in range(3)]
    guard = BudgetGuard(Decimal("0.30"), journal, [r.clip_id for r, _ in pairs])
    for request, decision in pairs[:2]:
        with pytest.raises(Parked), guard.item(request.clip_id):
            guard.before_submit(request, decision, 0)
            raise Parked(Waiting(steps=[], timeout_s=60))
    assert guard.committed() == Decimal("0.28")
    with pytest.raises(BudgetReached), guard.item(pairs[2][0].clip_id):
        guard.before_submit(*pairs[2], 0)
