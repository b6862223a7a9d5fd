"""Never lost, never stuck: a clip is done only while its file is there; paid but unarchived is a
state the sweep retries; partial files of dead writers go; corrupt records and ledger parts are
contained. Each test ends with the ledger equal to the sandbox's bill, job by job."""

import asyncio
import errno
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cli.main import main
from flows.batch import run_batch
from flows.generate import generate_clip
from flows.sweep import sweep_archive
from models import ClipRequest
from models.batch import BatchRequest
from storage.archive import Archive
from tasks.archiving import ClipLost, ClipUnarchived
from tests.flows.conftest import assert_reconciled, delete_provider_copy
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def request(**fields) -> ClipRequest:
    return ClipRequest(**{"prompt": f"Kept clip {uuid.uuid4().hex[:8]}", "duration": 5,
                          "resolution": "720p", **fields})


def generate(req: ClipRequest):
    return asyncio.run(generate_clip(req))


def test_a_deleted_archive_is_fetched_again_by_a_rerun_and_by_the_sweep(home, sandbox):
    first, second, third = request(), request(), request()
    one, two, three = generate(first), generate(second), generate(third)
    paid = len(sandbox.usage())
    Path(one.path).unlink()
    again = generate(first)
    assert again.path == one.path and Path(one.path).exists() and again.sha256 == one.sha256
    Path(two.path).chmod(0o644)
    with open(two.path, "r+b") as handle:  # corrupt, not missing
        handle.seek(2000)
        handle.write(b"\x00" * 64)
    Path(three.path).unlink()
    report = asyncio.run(sweep_archive())
    assert report.verified.corrupt == [two.path] and report.verified.missing == [three.path]
    assert sorted(report.verified.restored) == sorted([second.clip_id, third.clip_id])
    archive = Archive(home)
    assert archive.sha256(two.path) == two.sha256 and archive.sha256(three.path) == three.sha256
    assert list(Path(two.path).parent.glob("*.damaged-*"))  # set aside for a person
    assert len(sandbox.usage()) == paid  # fetched, not generated again
    assert_reconciled(home, sandbox)


def test_a_deleted_archive_whose_provider_copy_is_gone_is_lost_with_its_cost(home, sandbox,
                                                                              capsys):
    req = request(policy="sora-2", duration=4)
    clip = generate(req)
    record = journal_of(home).read(clip.clip_id)
    delete_provider_copy(record)
    Path(clip.path).unlink()
    with pytest.raises(ClipLost, match="provider no longer has it"):
        generate(req)
    lost = journal_of(home).read(clip.clip_id)
    assert lost.state == "lost" and clip.job_ids[0] in lost.reason and "$0.28" in lost.reason
    capsys.readouterr()
    assert main(["clips", "--state", "lost", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(c["clip_id"], c["job_ids"], c["cost_usd"]) for c in listed] == [
        (clip.clip_id, clip.job_ids, clip.cost_usd)]
    with pytest.raises(ClipLost, match="ask for take 1"):  # a rerun says so, pays nothing
        generate(req)
    code = main(["generate", "--prompt", req.prompt, "--duration", "4", "--policy", "sora-2",
                 "--resolution", "720p"])
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 1 and said.startswith(f"reelflow: clip {clip.clip_id[:12]} was paid for")
    assert_reconciled(home, sandbox)


def test_disk_full_leaves_the_clip_unarchived_and_the_sweep_archives_it_once_space_is_back(
        home, sandbox, monkeypatch):
    real = Archive.writing

    def full(self, final):
        if final.endswith(".mp4") and ".trimmed" not in final:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, final)

    monkeypatch.setattr(Archive, "writing", full)
    req = request()
    paid = len(sandbox.usage())
    with pytest.raises(ClipUnarchived, match="No space left on device"):
        generate(req)
    record = journal_of(home).read(req.clip_id)
    assert record.state == "unarchived" and "No space left" in record.reason
    assert record.spent_usd > 0  # paid, and said so
    monkeypatch.setattr(Archive, "writing", real)
    report = asyncio.run(sweep_archive())
    assert [(r.clip_id, r.outcome) for r in report.resumed] == [(req.clip_id, "done")]
    after = journal_of(home).read(req.clip_id)
    assert after.state == "done" and Path(after.archive.path).exists() and after.reason is None
    assert len(sandbox.usage()) - paid == 1  # one job, never a second charge
    assert_reconciled(home, sandbox)


def test_partial_files_of_dead_writers_go_and_a_live_writer_s_stay(home, sandbox):
    clip = generate(request())
    folder = Path(clip.path).parent
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = folder / f".x.mp4.{done.stdout.strip()}-{uuid.uuid4().hex}.part"
    live = folder / f".y.mp4.{__import__('os').getpid()}-{uuid.uuid4().hex}.part"
    dead.write_bytes(b"half a clip")
    live.write_bytes(b"still writing")
    report = asyncio.run(sweep_archive())
    assert report.verified.partials_removed == [str(dead)]
    assert not dead.exists() and live.exists()
    assert_reconciled(home, sandbox)


def test_a_truncated_record_is_quarantined_recovered_by_lookup_and_the_batch_goes_on(
        home, sandbox, tmp_path):
    tag = uuid.uuid4().hex[:8]
    rows = [{"prompt": f"Batch row {i} {tag}", "duration": 5, "resolution": "720p"}
            for i in range(3)]
    first = generate(ClipRequest(**rows[0]))
    path = home / "journal" / first.clip_id / "record.json"
    cut = path.read_bytes()[:300]  # cut mid-record
    path.write_bytes(cut)
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    paid = len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert result.done + result.already_done == 3 and result.failed == 0
    assert len(sandbox.usage()) - paid == 2  # the lost record's job was found, not re-paid
    journal = journal_of(home)
    assert journal.read(first.clip_id).steps[0].handle.job_id == first.job_ids[0]
    [lost] = journal.quarantined(first.clip_id)
    assert Path(lost.path).read_bytes() == cut and "ValidationError" in lost.found
    report = asyncio.run(sweep_archive())
    assert [q.clip_id for q in report.quarantined] == [first.clip_id]
    assert_reconciled(home, sandbox)


def test_a_garbage_ledger_part_is_skipped_with_a_warning_and_the_report_is_made(home, sandbox,
                                                                                capsys):
    clip = generate(request())
    bad = home / "ledger" / "date=2026-11-30" / "run=garbage" / "part-00000.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 this is not parquet at all")
    capsys.readouterr()
    assert main(["report", "--json", "--period", "all"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"]["warnings"] == [f"unreadable ledger part skipped: {bad}"]
    assert float(out["report"]["budget"]["spent_usd"]) == pytest.approx(clip.cost_usd)
    assert_reconciled(home, sandbox)
