"""Claims: a provider job is held by exactly one clip step, create-if-absent across processes;
a second claim by another step raises JobClaimed (each journal backend)."""

import multiprocessing

import pytest

from storage.journal import JobClaimed, open_journal


def _claim(place: str, clip: str, barrier, results) -> None:
    journal = open_journal(place)
    barrier.wait()
    try:
        journal.claim_job("openai_videos", "video_1", clip, 0)
        results.put((clip, True))
    except JobClaimed:
        results.put((clip, False))


def test_four_processes_claim_one_job_and_exactly_one_wins(journal, journal_place):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    clips = [f"clip{i}" for i in range(4)]
    procs = [ctx.Process(target=_claim, args=(journal_place, c, barrier, results))
             for c in clips]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    outcome = dict(results.get(timeout=5) for _ in clips)
    winners = [c for c, won in outcome.items() if won]
    assert len(winners) == 1
    journal.claim_job("openai_videos", "video_1", winners[0], 0)  # the holder, again: fine
    assert not journal.claimed_by_other("openai_videos", "video_1", winners[0], 0)
    loser = next(c for c in clips if c != winners[0])
    assert journal.claimed_by_other("openai_videos", "video_1", loser, 0)
    with pytest.raises(JobClaimed):
        journal.claim_job("openai_videos", "video_1", winners[0], 1)  # another step: no
    journal.claim_job("kling_native", "video_1", loser, 0)  # ids are per protocol


def test_claims_and_signature_locks_are_not_clip_records(journal):
    journal.claim_job("fal_queue", "r1", "abc", 0)
    with journal.signature_lock("sig"):
        pass
    assert journal.records() == []
