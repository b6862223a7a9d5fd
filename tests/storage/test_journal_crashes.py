"""What each journal backend guarantees across processes: two creating one clip make one
record; a process SIGKILLed while it holds a clip's send lock or is mid-transition leaves the
lock free and the record as it was before that transition (the next run resumes)."""

import multiprocessing
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from models import ClipRequest
from providers.router import parse_subscriptions, plan
from storage.journal import new_record, open_journal
from storage.records import StepRecord

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture
def fresh(catalog, now, sandbox_endpoints):
    """A new clip's first record."""
    request = ClipRequest(prompt="A kingfisher dives", duration=5, resolution="720p",
                          policy="kling-v3")
    decision = plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                    subscriptions=parse_subscriptions("kling:standard", catalog))
    return new_record(request, decision)


def _start(place: str, fresh, created_at: datetime, barrier, results) -> None:
    journal = open_journal(place)
    barrier.wait()
    mine = fresh.model_copy(update={"created_at": created_at})
    results.put((created_at, journal.start(mine).created_at))


def test_two_processes_creating_one_clip_make_one_record(journal, journal_place, fresh):
    starts = [datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=n) for n in range(3)]
    barrier, results = SPAWN.Barrier(len(starts)), SPAWN.Queue()
    procs = [SPAWN.Process(target=_start, args=(journal_place, fresh, at, barrier, results))
             for at in starts]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    seen = [results.get(timeout=5) for _ in procs]
    kept = journal.read(fresh.clip_id).created_at
    assert kept in starts and {got for _, got in seen} == {kept}  # one made it, all read it
    assert [r.clip_id for r in journal.records()] == [fresh.clip_id]


def _hold(place: str, clip_id: str, what: str, ready) -> None:
    """Hold the clip's send lock, or stop inside a transition that has written, forever."""
    journal = open_journal(place)
    if what == "send":
        with journal.sending(clip_id):
            ready.set()
            time.sleep(3600)
    with journal.changing(clip_id):
        record = journal.read(clip_id)
        record.state = "failed"  # a write the transition never finishes
        journal._write(record)
        ready.set()
        time.sleep(3600)


def _killed_holding(place: str, clip_id: str, what: str):
    ready = SPAWN.Event()
    holder = SPAWN.Process(target=_hold, args=(place, clip_id, what, ready))
    holder.start()
    assert ready.wait(60), "the holder never took the lock"
    return holder


@pytest.mark.parametrize("what", ["send", "transition"])
def test_a_process_killed_holding_a_clip_s_lock_leaves_it_free(journal, journal_place, fresh,
                                                              what):
    journal.start(fresh)
    holder = _killed_holding(journal_place, fresh.clip_id, what)
    seen = []

    def next_run() -> None:
        with journal.sending(fresh.clip_id) if what == "send" else \
                journal.changing(fresh.clip_id):
            seen.append(journal.read(fresh.clip_id))

    waiting = threading.Thread(target=next_run, daemon=True)
    waiting.start()
    waiting.join(1.0)
    assert not seen, "the lock was not held"
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(timeout=10)
    waiting.join(15)
    assert seen, "the lock stayed held after its process was killed"
    if what == "transition":
        # never half a record: PostgreSQL rolled the killed transaction back; the folder had
        # renamed the whole record into place before the kill
        database = journal_place.startswith("postgresql://")
        assert seen[0].state == (fresh.state if database else "failed")
    journal.record_intent(fresh.clip_id, StepRecord(index=0, kind="generate", seconds=5,
                                                    model="kling-v3", tier="standard"))
    assert journal.read(fresh.clip_id).steps[0].state == "intent"  # the next run resumes
