"""sweep_archive: a pending job completed with its charge recorded, damaged files reported,
compaction that keeps every row, retention that never deletes an only copy."""

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from analytics.synthetic import clip_rows, write
from flows.generate import generate_clip
from flows.sweep import sweep_archive
from models import ClipRequest
from storage.ledger import read_ledger
from tasks.awaiting import PendingAtDeadline
from tasks.sweep_report import ArchiveDamaged
from tests.flows.conftest import assert_reconciled, delete_provider_copy
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def clip(**fields):
    fields = {"prompt": f"Swept clip {uuid.uuid4().hex[:8]}", "duration": 5,
              "resolution": "720p", **fields}
    return asyncio.run(generate_clip(ClipRequest(**fields)))


def clip_again(done):
    """The same request as the done clip `done`, run again."""
    record = journal_of(Path(done.path).parents[4]).read(done.clip_id)
    return asyncio.run(generate_clip(record.request))


def test_a_pending_job_is_completed_by_the_sweep_with_its_charge(home, sandbox, monkeypatch):
    sandbox.knobs(kling={"p50_5s": 2000, "p95_5s": 2100, "p50_30s": 2100})  # ~2 s
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "0.05")
    with pytest.raises(PendingAtDeadline):
        clip()
    record = journal_of(home).records()[0]
    assert record.state == "pending"
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "20")
    report = asyncio.run(sweep_archive())
    assert [(r.clip_id, r.outcome) for r in report.resumed] == [(record.clip_id, "done")]
    assert report.resumed[0].cost_usd == pytest.approx(0.14)
    after = journal_of(home).read(record.clip_id)
    assert after.state == "done" and Path(after.archive.path).exists()
    charges = [r for r in read_ledger(home / "ledger") if r["event_kind"] == "complete"]
    assert [r["job_id"] for r in charges] == [record.steps[0].handle.job_id]
    assert_reconciled(home, sandbox)


def test_a_file_that_cannot_be_put_back_is_lost_and_fails_the_run(home, sandbox):
    """Missing and corrupt files are fetched again (tests/flows/test_never_lost.py); one whose
    provider copy is gone too cannot be: its clip is lost, named, and the run ends Failed."""
    kept, gone = clip(), clip(policy="sora-2", duration=4)
    record = journal_of(home).read(gone.clip_id)
    delete_provider_copy(record)
    Path(gone.path).unlink()
    with pytest.raises(ArchiveDamaged, match="provider no longer has it") as caught:
        asyncio.run(sweep_archive())
    assert gone.clip_id[:12] in str(caught.value) and kept.clip_id[:12] not in str(caught.value)
    assert journal_of(home).read(gone.clip_id).state == "lost"
    assert Path(kept.path).exists()


def test_compaction_keeps_every_row_and_leaves_today_alone(home, sandbox):
    ledger = home / "ledger"
    yesterday = datetime.now(UTC).replace(hour=1) - timedelta(days=1)
    older = clip_rows(n=30, provider="kling", model="kling-v3", tier="standard",
                      seconds_asked=5, seconds_billed=5, cost="0.14", start=yesterday,
                      run="run-a")
    more = clip_rows(n=20, provider="kling", model="kling-v3", tier="standard",
                     seconds_asked=5, seconds_billed=5, cost="0.14", start=yesterday,
                     run="run-b", prefix="b-")
    write(ledger, older, more, rows_per_part=7)
    clip()  # today's parts
    rows_before = sorted(r["event_id"] for r in read_ledger(ledger))
    day = f"date={yesterday.date().isoformat()}"
    assert len(list((ledger / day).glob("run=*/part-*.parquet"))) > 2
    today = f"date={date.today().isoformat()}"
    today_parts = sorted((ledger / today).rglob("part-*.parquet"))
    report = asyncio.run(sweep_archive())
    assert [(d.day, d.rows) for d in report.compacted] == [(yesterday.date().isoformat(), 150)]
    assert [p.parent.name for p in (ledger / day).glob("run=*/part-*.parquet")] == [
        "run=compacted"]
    assert sorted(r["event_id"] for r in read_ledger(ledger)) == rows_before
    assert sorted((ledger / today).rglob("part-*.parquet")) == today_parts
    assert asyncio.run(sweep_archive()).compacted == []  # idempotent


def test_retention_never_deletes_an_only_copy(home, sandbox, monkeypatch, tmp_path):
    sora = clip(policy="sora-2", duration=4)
    monkeypatch.setenv("REELFLOW_LOCAL_RETENTION_DAYS", "0")
    report = asyncio.run(sweep_archive())  # no replica: nothing local may go, nor Sora's copy
    assert Path(sora.path).exists() and sora.path in report.retained.kept_only_copy
    assert report.retained.provider_copies_deleted == []
    assert not sandbox.admin.get(f"/jobs/{sora.job_ids[0]}").json()["deleted"]

    monkeypatch.setenv("REELFLOW_ARCHIVE_REPLICA", str(tmp_path / "replica"))
    report = asyncio.run(sweep_archive())  # verified in the replica: both may go
    assert sora.path in report.retained.local_deleted and not Path(sora.path).exists()
    copy = tmp_path / "replica" / Path(sora.path).relative_to(home)
    assert copy.exists() and report.retained.provider_copies_deleted == sora.job_ids
    assert sandbox.admin.get(f"/jobs/{sora.job_ids[0]}").json()["deleted"]
    again = asyncio.run(sweep_archive())  # checked in the replica, not missing
    assert again.verified.missing == [] and again.verified.restored == []
    rerun = clip_again(sora)  # a rerun of the request brings the file back from the replica
    assert Path(rerun.path).exists() and rerun.sha256 == sora.sha256


def test_the_sweep_recovers_an_unknown_submit_by_lookup_and_never_sends_it_again(
        home, sandbox, monkeypatch):
    """A Kling submit lost and its lookup failing past the deadline: the run leaves it
    unknown. The sweep looks it up (never re-sends), finishes the clip and charges it once."""
    from providers.errors import SubmitUnknown

    monkeypatch.setenv("REELFLOW_RETRY_DEADLINE_S", "1")
    prompt = f"Swept unknown {uuid.uuid4().hex[:8]}"
    sandbox.faults({"kind": "reset", "protocol": "kling", "method": "POST", "count": 2},
                   {"kind": "5xx", "protocol": "kling", "method": "GET", "count": 1000})
    with pytest.raises(SubmitUnknown):
        clip(prompt=prompt)
    assert journal_of(home).records()[0].state == "unknown"
    sandbox.clear_faults()
    report = asyncio.run(sweep_archive())
    assert [r.outcome for r in report.resumed] == ["done"]
    assert len(sandbox.jobs(prompt)) == 1
    assert report.reconciliation.reconciled == [] and report.reconciliation.checked_jobs == 1
    assert_reconciled(home, sandbox)
