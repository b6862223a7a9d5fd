"""The journal's named transitions (each one lock, read, check, write), its migration on read of
records written by earlier versions, and concurrent writers across processes."""

import json
import multiprocessing
import shutil
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from models import Archived, ClipOutcome, ClipRequest, JobHandle
from providers.router import parse_subscriptions, plan
from storage.journal import InvalidTransition, new_record, open_journal
from storage.journal_folder import FolderJournal
from storage.records import ClipJournal, StepRecord

RECORDS = Path(__file__).parent / "records"
VERSIONS = ("first_wave", "session4")


@pytest.fixture
def clip(catalog, now, sandbox_endpoints):
    """(request, plan) of a Kling 5 s 720p text clip."""
    request = ClipRequest(prompt="A heron lands on a post", duration=5, resolution="720p",
                          policy="kling-v3")
    return request, plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                         subscriptions=parse_subscriptions("kling:standard", catalog))


def handle(job_id: str) -> JobHandle:
    return JobHandle(protocol="kling_native", endpoint="sandbox", endpoint_kind="sandbox",
                     account="kling:standard", credential_ref="KLING_ACCESS_KEY",
                     job_id=job_id, submitted_at=datetime.now(UTC))


def step(decision, index: int = 0) -> StepRecord:
    return StepRecord(index=index, kind="generate", seconds=5, model=decision.model,
                      tier=decision.tier, key=f"key{index}")


def test_a_step_goes_intent_sending_submitted_charged_succeeded(journal, clip):
    request, decision = clip
    created = journal.start(new_record(request, decision))
    assert created.state == "intent" and created.plan == decision
    journal.record_intent(request.clip_id, step(decision))
    sending = journal.mark_sending(request.clip_id, 0, "key0")
    assert sending.send_started_at is not None
    journal.record_submit(request.clip_id, 0, handle("job-1"))
    rows = []
    write = lambda s, marker: rows.append((s.handle.job_id, marker))  # noqa: E731
    assert journal.record_charge(request.clip_id, 0, "complete", Decimal("0.14"), write)
    assert not journal.record_charge(request.clip_id, 0, "complete", Decimal("0.14"), write)
    assert journal.record_charge(request.clip_id, 0, "requeue", Decimal("0.14"), write)
    assert journal.record_charge(request.clip_id, 0, "requeue", Decimal("0.14"), write)
    journal.finish_step(request.clip_id, 0, "succeeded", None)
    record = journal.read(request.clip_id)
    assert rows == [("job-1", "complete"), ("job-1", "requeue:0"), ("job-1", "requeue:1")]
    assert record.spent_usd == Decimal("0.42") and record.steps[0].charged("requeue") == 2
    assert record.state == "running" and record.steps[0].state == "succeeded"


def test_invalid_transitions_raise(journal, clip):
    request, decision = clip
    with pytest.raises(InvalidTransition):  # no record yet
        journal.record_submit(request.clip_id, 0, handle("job-1"))
    journal.start(new_record(request, decision))
    journal.record_intent(request.clip_id, step(decision))
    journal.record_submit(request.clip_id, 0, handle("job-1"))
    journal.record_submit(request.clip_id, 0, handle("job-1"))  # the same handle again: fine
    with pytest.raises(InvalidTransition, match="already has job job-1"):
        journal.record_submit(request.clip_id, 0, handle("job-2"))
    with pytest.raises(InvalidTransition, match="already has job"):
        journal.record_intent(request.clip_id, step(decision))  # would drop a live job
    with pytest.raises(InvalidTransition):
        journal.withdraw_intent(request.clip_id, 0)  # it has a job
    with pytest.raises(InvalidTransition):
        journal.finish_step(request.clip_id, 0, "running", None)
    with pytest.raises(InvalidTransition):
        journal.mark_rejected(request.clip_id, "not done yet")
    archived = Archived(path="/a.mp4", sha256="aa", bytes=1)
    journal.record_archive(request.clip_id, archived)
    with pytest.raises(InvalidTransition, match="archived as aa"):
        journal.record_archive(request.clip_id, archived.model_copy(update={"sha256": "bb"}))


def test_done_is_final_a_rerun_reads_it_and_nothing_runs_it_again(journal, clip, catalog,
                                                                   now, sandbox_endpoints):
    request, decision = clip
    journal.start(new_record(request, decision))
    journal.record_intent(request.clip_id, step(decision))
    journal.record_submit(request.clip_id, 0, handle("job-1"))
    journal.finish_step(request.clip_id, 0, "succeeded", None)
    done = json.loads((RECORDS / "session4" / "done_text.json").read_text())["inspection"]
    outcome = ClipOutcome.model_validate(done)
    journal.mark_done(request.clip_id, outcome)
    other = plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                 subscriptions=parse_subscriptions("kling:standard", catalog),
                 exclude={decision.model: "test"})
    again = journal.start(new_record(request, other))  # a concurrent run's re-plan
    assert again.state == "done" and again.plan == decision
    for change in (lambda: journal.note_attempt(request.clip_id, "kling-v3", "x"),
                   lambda: journal.record_intent(request.clip_id, step(decision, 1)),
                   lambda: journal.mark_unknown(request.clip_id, 0, "x"),
                   lambda: journal.mark_pending(request.clip_id, 0, "x")):
        with pytest.raises(InvalidTransition):
            change()
    journal.finish_step(request.clip_id, 0, "succeeded", None)  # the same word again: fine
    journal.mark_rejected(request.clip_id, "replaced by take 1")
    assert journal.read(request.clip_id).outcome.rejected == "replaced by take 1"


def test_a_refused_send_is_withdrawn_and_a_lost_clip_is_closed(journal, clip):
    request, decision = clip
    journal.start(new_record(request, decision))
    journal.record_intent(request.clip_id, step(decision))
    journal.withdraw_intent(request.clip_id, 0)
    assert journal.read(request.clip_id).steps == []
    journal.leave_for_budget(request.clip_id, "run-1", "past the budget")
    journal.leave_for_budget("0" * 64, "run-1", "never journalled: nothing to note")
    assert journal.read("0" * 64) is None
    journal.note_attempt(request.clip_id, decision.model, "refused on content policy")
    journal.mark_lost(request.clip_id, "output expired before archival")
    record = journal.read(request.clip_id)
    assert record.state == "lost" and not record.is_open and journal.open_records() == []
    assert record.left_for_budget.run_id == "run-1"
    assert [str(a) for a in record.attempts] == [
        f"{decision.model}: refused on content policy", "output expired before archival"]


@pytest.mark.parametrize("version", VERSIONS)
def test_records_of_earlier_versions_load_in_todays_shape(version):
    folder = RECORDS / version
    loaded = {path.stem: ClipJournal.model_validate_json(path.read_text())
              for path in folder.glob("*.json")}
    done = loaded["done_text"]
    assert done.state == "done" and done.outcome.result.clip_id == done.clip_id
    assert done.archive.sha256 == done.outcome.result.sha256 and done.archive.bytes > 0
    assert done.plan.model == "kling-v3" and done.request.clip_id == done.clip_id
    assert done.spent_usd == Decimal(str(done.outcome.result.cost_usd))
    fallback = loaded["fallback"].attempts
    assert len(fallback) == 1 and fallback[0].model == "kling-v3"
    assert fallback[0].why.startswith("refused on content policy")
    board = loaded["storyboard"]
    assert board.outcome.stitch == "re-encode" and board.outcome.trim is None
    assert board.archive.bytes is None and board.archive.submitted_at is None
    assert loaded["rejected"].outcome.rejected.startswith("silently downgraded")
    left = loaded["left_by_budget"]
    assert left.attempts == [] and "$0.90 budget" in left.left_for_budget.why
    assert loaded["left_by_budget_then_done"].state == "done"
    assert loaded["extension"].parent_clip_id and loaded["extension"].request.mode == "extend"
    pending = loaded["pending"]
    assert pending.is_open and pending.steps[0].state == "pending" and pending.steps[0].handle
    if version == "session4":
        unknown = loaded["unknown"]
        assert unknown.state == "unknown" and unknown.steps[0].key
    else:
        assert pending.steps[0].key is None  # keys were not kept then: recovery by time
    for record in loaded.values():  # today's shape survives its own round trip
        assert ClipJournal.model_validate_json(record.model_dump_json()) == record


@pytest.mark.parametrize("version", VERSIONS)
def test_an_old_open_record_takes_its_next_transition_and_is_saved_in_todays_shape(
        tmp_path, version):
    old = RECORDS / version / "pending.json"
    clip_id = json.loads(old.read_text())["clip_id"]
    (tmp_path / clip_id).mkdir()
    shutil.copy(old, tmp_path / clip_id / "record.json")
    journal = FolderJournal(tmp_path)
    journal.finish_step(clip_id, 0, "succeeded", None)
    saved = json.loads((tmp_path / clip_id / "record.json").read_text())
    assert "inspection" not in saved and saved["outcome"] is None
    assert journal.read(clip_id).steps[0].state == "succeeded"


def _submit(place: str, clip_id: str, job_id: str, barrier, results) -> None:
    journal = open_journal(place)
    barrier.wait()
    try:
        journal.record_submit(clip_id, 0, handle(job_id))
        results.put((job_id, "won"))
    except InvalidTransition:
        results.put((job_id, "refused"))


def _charge(place: str, clip_id: str, n: int, barrier, results) -> None:
    journal = open_journal(place)
    barrier.wait()
    for _ in range(n):
        journal.record_charge(clip_id, 0, "requeue", Decimal("0.01"), lambda s, m: None)
    results.put(n)


def _race(target, *each) -> list:
    """`target(*args, barrier, results)` in one process per `args`, started together; what
    they put in `results`."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(len(each)), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, barrier, results)) for args in each]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    return [results.get(timeout=5) for _ in procs]


def test_two_processes_record_a_job_for_one_step_and_one_wins(journal, journal_place, clip):
    request, decision = clip
    journal.start(new_record(request, decision))
    journal.record_intent(request.clip_id, step(decision))
    outcome = dict(_race(_submit, *((journal_place, request.clip_id, job)
                                    for job in ("job-a", "job-b"))))
    assert sorted(outcome.values()) == ["refused", "won"]
    winner = next(job for job, said in outcome.items() if said == "won")
    assert journal.read(request.clip_id).steps[0].handle.job_id == winner


def test_two_processes_charging_one_step_lose_no_update(journal, journal_place, clip):
    request, decision = clip
    journal.start(new_record(request, decision))
    journal.record_intent(request.clip_id, step(decision))
    assert _race(_charge, *[(journal_place, request.clip_id, 25)] * 2) == [25, 25]
    record = journal.read(request.clip_id)
    assert record.spent_usd == Decimal("0.50") and record.steps[0].charged("requeue") == 50
    assert sorted(record.steps[0].charges) == sorted(f"requeue:{i}" for i in range(50))


def test_a_transition_does_not_wait_on_a_send_in_flight(journal, clip):
    """A send holds the send lock across awaits; a transition on the event loop that waited
    on it would stop the loop the send needs (two runs of one request in one process hung)."""
    request, decision = clip
    journal.start(new_record(request, decision))
    with journal.sending(request.clip_id) as sending:
        sending.record_intent(step(decision))
        noted = threading.Thread(target=journal.note_attempt,
                                 args=(request.clip_id, "kling-v3", "noted mid-send"))
        noted.start()
        noted.join(timeout=10)
        assert not noted.is_alive()
        assert journal.start(new_record(request, decision)).attempts[-1].why == "noted mid-send"


def test_two_sends_of_one_clip_in_one_process_take_turns(journal, clip):
    request, decision = clip
    journal.start(new_record(request, decision))
    order: list[str] = []

    def send(name: str, hold_s: float) -> None:
        with journal.sending(request.clip_id):
            order.append(f"{name} in")
            time.sleep(hold_s)
            order.append(f"{name} out")

    first = threading.Thread(target=send, args=("first", 0.3))
    first.start()
    time.sleep(0.1)
    send("second", 0)
    first.join()
    assert order == ["first in", "first out", "second in", "second out"]


def test_threads_changing_one_record_lose_no_update(journal, clip):
    request, decision = clip
    journal.start(new_record(request, decision))
    journal.record_intent(request.clip_id, step(decision))

    def charge() -> None:
        for _ in range(20):
            journal.record_charge(request.clip_id, 0, "requeue", Decimal("0.01"),
                                  lambda s, m: None)

    threads = [threading.Thread(target=charge) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert journal.read(request.clip_id).steps[0].charged("requeue") == 60
