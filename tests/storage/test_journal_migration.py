"""`reelflow journal migrate`: a folder journal — records of every version kept so far, claims,
a quarantined record — copied into PostgreSQL, idempotently, verified by counts, and read back
there as the folder reads it."""

import json
import shutil
from pathlib import Path

from cli.main import main
from storage.journal_folder import FolderJournal
from storage.journal_postgres import PostgresJournal

RECORDS = Path(__file__).parent / "records"


def _folder_journal(root: Path) -> FolderJournal:
    """Every kept record of the session-4 and first-wave versions, two claims, and a record
    cut mid-write (quarantined on its first read)."""
    for version in ("first_wave", "session4"):
        for path in sorted((RECORDS / version).glob("*.json")):
            clip_id = json.loads(path.read_text())["clip_id"]
            if not (root / clip_id).exists():
                (root / clip_id).mkdir(parents=True)
                shutil.copy(path, root / clip_id / "record.json")
    journal = FolderJournal(root)
    journal.claim_job("kling_native", "job-1", "a" * 64, 0)
    journal.claim_job("openai_videos", "video_1", "b" * 64, 1)
    (root / ("c" * 64)).mkdir()
    (root / ("c" * 64) / "record.json").write_bytes(b'{"clip_id": "ccc\x00')
    assert journal.read("c" * 64) is None  # quarantined now
    return journal


def test_a_folder_journal_is_copied_once_verified_and_reads_the_same(tmp_path, postgres_url,
                                                                     capsys):
    folder = _folder_journal(tmp_path / "journal")
    argv = ["journal", "migrate", "--from", str(folder.root), "--to", postgres_url, "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    records = folder.records()
    assert first["records"] == first["copied"] == len(records) > 10
    assert (first["claims"], first["claims_copied"]) == (2, 2)
    assert (first["quarantined"], first["quarantined_copied"]) == (1, 1)
    assert first["missing"] == [] and first["conflicts"] == []
    assert main(argv) == 0  # again: nothing new to copy, still verified
    again = json.loads(capsys.readouterr().out)
    assert (again["copied"], again["claims_copied"], again["quarantined_copied"]) == (0, 0, 0)
    database = PostgresJournal(postgres_url)
    try:
        assert database.records() == records  # as written, upgraded on read the same way
        assert database.claims() == folder.claims()
        [lost] = database.quarantined("c" * 64)
        assert lost.last_written == folder.quarantined("c" * 64)[0].last_written
        assert database.counts()["clips"] == len(records)
    finally:
        database.close()


def test_a_job_the_database_holds_for_another_step_is_not_verified(tmp_path, postgres_url,
                                                                   capsys):
    folder = _folder_journal(tmp_path / "journal")
    database = PostgresJournal(postgres_url)
    database.claim_job("kling_native", "job-1", "d" * 64, 0)  # another clip has it there
    database.close()
    assert main(["journal", "migrate", "--from", str(folder.root), "--to", postgres_url]) == 1
    out = capsys.readouterr().out
    assert "not migrated: kling_native job job-1" in out and "NOT verified" in out


def test_a_database_it_cannot_reach_is_named_in_one_line(tmp_path, capsys):
    FolderJournal(tmp_path / "journal")
    assert main(["journal", "migrate", "--from", str(tmp_path / "journal"), "--to",
                 "postgresql://postgres@127.0.0.1:1/reelflow"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reelflow: to: cannot reach the journal's database at 127.0.0.1:1")
    assert len(err.splitlines()) == 1
