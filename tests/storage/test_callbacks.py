"""The runs waiting on jobs, kept by each journal backend: a run suspended on several steps is
completed by the last of their marks, not before, and once; marks that come before the run
writes its group are counted when it does (it must not suspend then); a resumed group leaves
nothing behind but the entries of other suspensions."""

import uuid
from concurrent.futures import ThreadPoolExecutor

from storage.callbacks import Callbacks, WaitGroup, WaitingRun, step_key


def _parked(callbacks: Callbacks, key: str, clips: list[str]) -> list[WaitingRun]:
    steps = [WaitingRun(flow_run_id="run-1", key=key, clip_id=clip, index=0,
                        job_id=f"job-{clip}") for clip in clips]
    for step in steps:
        callbacks.wait(step)
    return steps


def _group(key: str, steps: list[WaitingRun]) -> WaitGroup:
    return WaitGroup(key=key, flow_run_id="run-1", steps=[step_key(s) for s in steps])


def test_a_group_is_completed_by_its_last_mark_only(journal):
    callbacks = Callbacks(journal)
    key = uuid.uuid4().hex
    steps = _parked(callbacks, key, ["aa", "bb", "cc"])
    assert not callbacks.suspending(_group(key, steps))
    assert callbacks.ended(steps[0]) is None
    assert callbacks.ended(steps[0]) is None  # the same step again counts once
    assert callbacks.ended(steps[2]) is None
    group = callbacks.ended(steps[1])
    assert group is not None and group.flow_run_id == "run-1" and len(group.steps) == 3


def test_marks_before_the_group_are_counted_when_it_is_written(journal):
    callbacks = Callbacks(journal)
    key = uuid.uuid4().hex
    steps = _parked(callbacks, key, ["aa", "bb"])
    assert callbacks.ended(steps[0]) is None and callbacks.ended(steps[1]) is None
    assert callbacks.suspending(_group(key, steps))  # all back: it must not suspend


def test_a_resumed_group_leaves_only_other_suspensions(journal):
    callbacks = Callbacks(journal)
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    steps = _parked(callbacks, old, ["aa", "bb"])
    group = _group(old, steps)
    callbacks.suspending(group)
    callbacks.ended(steps[0])
    later = _parked(callbacks, new, ["cc"])  # another run's suspension
    callbacks.resumed(group)
    assert [w.clip_id for w in callbacks.all_waiting()] == ["cc"]
    assert callbacks.waiting_on("cc", 0) == later[0]
    assert journal.learned("waiting_groups").texts() == []
    assert journal.learned("ended_jobs").texts() == []


def test_a_step_parked_again_in_a_new_suspension_is_not_removed_by_the_old_one(journal):
    callbacks = Callbacks(journal)
    old, new = uuid.uuid4().hex, uuid.uuid4().hex
    group = _group(old, _parked(callbacks, old, ["aa"]))
    again = _parked(callbacks, new, ["aa"])  # the resumed run parked the step again
    callbacks.resumed(group)
    assert callbacks.waiting_on("aa", 0) == again[0]


def test_racing_marks_of_a_group_complete_it(journal):
    callbacks = Callbacks(journal)
    key = uuid.uuid4().hex
    steps = _parked(callbacks, key, [f"c{n}" for n in range(12)])
    callbacks.suspending(_group(key, steps))
    with ThreadPoolExecutor(6) as pool:
        completed = [g for g in pool.map(callbacks.ended, steps) if g is not None]
    assert completed  # at least the last mark saw the whole group
    assert callbacks.ended(steps[0]) is not None
