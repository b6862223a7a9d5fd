"""What only the PostgreSQL journal has: its schema and migrations, the per-step rows beside
each clip's record, and unreadable rows moved to its quarantine table."""

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from models import ClipRequest, JobHandle
from providers.router import parse_subscriptions, plan
from storage.journal import new_record
from storage.journal_postgres import VERSION, JournalSchemaTooNew, PostgresJournal
from storage.records import StepRecord


@pytest.fixture
def journal(postgres_url):
    opened = PostgresJournal(postgres_url)
    yield opened
    opened.close()


@pytest.fixture
def started(journal, catalog, now, sandbox_endpoints):
    request = ClipRequest(prompt="A tern over the surf", duration=5, resolution="720p",
                          policy="kling-v3")
    decision = plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                    subscriptions=parse_subscriptions("kling:standard", catalog))
    return journal.start(new_record(request, decision))


def _sql(url: str, statement: str, *params):
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def test_the_schema_is_made_once_and_a_newer_one_is_refused(postgres_url, journal):
    PostgresJournal(postgres_url).close()  # a second process's open migrates nothing
    assert _sql(postgres_url, "SELECT version FROM reelflow.schema_version ORDER BY 1") == [
        (v,) for v in range(1, VERSION + 1)]
    tables = {t for (t,) in _sql(postgres_url, "SELECT table_name FROM information_schema"
                                 ".tables WHERE table_schema = 'reelflow'")}
    assert tables == {"schema_version", "clips", "steps", "claims", "quarantine", "learned"}
    _sql(postgres_url, "INSERT INTO reelflow.schema_version (version) VALUES (%s)", VERSION + 1)
    with pytest.raises(JournalSchemaTooNew, match=f"version {VERSION + 1}"):
        PostgresJournal(postgres_url)


def test_a_journal_of_an_older_version_is_migrated_with_its_records_kept(postgres_url,
                                                                         monkeypatch, started):
    """`started` was made at today's version; a database left at version 1 (before the
    learned table) is brought up to date by the next open, its clips untouched."""
    _sql(postgres_url, "DROP TABLE reelflow.learned")
    _sql(postgres_url, "DELETE FROM reelflow.schema_version WHERE version > 1")
    reopened = PostgresJournal(postgres_url)
    try:
        assert reopened.read(started.clip_id) == started
        reopened.learned("capabilities").put("k1", "{}")
        assert reopened.counts()["learned"] == 1
    finally:
        reopened.close()


def test_each_step_has_a_row_beside_its_clip(postgres_url, journal, started):
    clip_id = started.clip_id
    journal.record_intent(clip_id, StepRecord(index=0, kind="generate", seconds=5,
                                              model="kling-v3", tier="standard", key="k0"))
    journal.record_submit(clip_id, 0, JobHandle(
        protocol="kling_native", endpoint="sandbox", endpoint_kind="sandbox",
        account="kling:standard", credential_ref="KLING_ACCESS_KEY", job_id="job-7",
        submitted_at=datetime.now(UTC)))
    journal.record_charge(clip_id, 0, "complete", Decimal("0.42"), lambda s, m: None)
    assert _sql(postgres_url, "SELECT state, spent_usd FROM reelflow.clips") == [
        ("running", Decimal("0.42"))]
    assert _sql(postgres_url, "SELECT step_index, replaced, state, protocol, job_id, "
                "spent_usd FROM reelflow.steps") == [
        (0, False, "submitted", "kling_native", "job-7", Decimal("0.42"))]
    journal.finish_step(clip_id, 0, "failed", "the provider failed it")
    journal.record_intent(clip_id, StepRecord(index=0, kind="generate", seconds=5,
                                              model="kling-v3", tier="standard", key="k1"))
    assert _sql(postgres_url, "SELECT position, replaced, state, job_id FROM reelflow.steps "
                "ORDER BY position") == [(0, False, "intent", None),
                                         (1, True, "failed", "job-7")]


def test_an_unreadable_row_is_quarantined_and_read_as_absent(postgres_url, journal, started):
    _sql(postgres_url, "UPDATE reelflow.clips SET record = record || '{\"state\": \"nope\"}'")
    assert journal.read(started.clip_id) is None
    assert journal.records() == [] and journal.matching(started.clip_id[:6]) == []
    [moved] = journal.quarantined(started.clip_id)
    assert moved.clip_id == started.clip_id and "state" in moved.found
    assert moved.path.startswith("reelflow.quarantine/")
    assert journal.start(started.model_copy()).clip_id == started.clip_id  # a run goes on


def _drop_sessions(url: str) -> int:
    """End every session on the journal's database, as a server restart or a failover does."""
    rows = _sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()")
    return len(rows)


def test_transitions_go_on_after_the_server_dropped_every_session(postgres_url, journal,
                                                                  started):
    journal.record_intent(started.clip_id, StepRecord(index=0, kind="generate", seconds=5,
                                                      model="kling-v3", tier="standard",
                                                      key="k0"))
    assert _drop_sessions(postgres_url) >= 1
    handle = JobHandle(protocol="kling_native", endpoint="sandbox", endpoint_kind="sandbox",
                       account="kling:standard", credential_ref="KLING_ACCESS_KEY",
                       job_id="job-8", submitted_at=datetime.now(UTC))
    journal.record_submit(started.clip_id, 0, handle)
    assert journal.read(started.clip_id).steps[0].handle == handle


def test_a_send_lock_lost_with_its_session_is_released_quietly_and_taken_again(
        postgres_url, journal, started, caplog):
    """The server dropped the lock session while a send held its lock (a restart): the send
    ends without an error (its job, if sent, is the journal's to record), and the next send of
    the clip, here or in another process, takes the lock on a new session."""
    other = PostgresJournal(postgres_url)
    try:
        with journal._send_lock(started.clip_id):
            _drop_sessions(postgres_url)
        assert "lock session ended while a lock was held" in caplog.text
        with other._send_lock(started.clip_id), journal.signature_lock("sig"):
            pass
        with journal._send_lock(started.clip_id):
            pass
    finally:
        other.close()
