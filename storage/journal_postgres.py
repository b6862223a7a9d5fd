"""The journal in PostgreSQL, for workers on many machines that share no disk.

Schema `reelflow` (its own, so it can live in the Prefect server's database), created and
migrated here (`schema_version`): a row per clip (`clips`: its state and spent for SQL, the
whole record as JSON for the transitions) and a row per step (`steps`, current and replaced,
rewritten with the clip's row in the same transaction), claims (`claims`, primary key
(protocol, job_id): create-if-absent by INSERT ... ON CONFLICT DO NOTHING) and unreadable
records moved aside (`quarantine`).

Locks are PostgreSQL's advisory locks, which the server drops when a client's session ends —
also when its process is SIGKILLed, as flock's are. A transition is one transaction that first
takes the clip's transaction-level lock (`pg_advisory_xact_lock`), so two processes' reads and
writes of one record never interleave; a clip created by two at once is created by one (the
other waits on the lock and then reads it). A send lock is a session-level lock held on one
connection per process across the whole send: a process's sends of different clips share it
(the server counts each lock once per key), and a thread lock per key keeps two threads of one
process apart, since a session's advisory locks are re-entrant. A send lock held elsewhere is
polled with pg_try_advisory_lock rather than waited on, so the shared connection is never
blocked by one waiter.

Transitions and reads take a connection from a pool of `connections`; a transition nested in
another on the same thread (a transition may call another) runs in the outer one's transaction.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from storage.journal import (
    Claim,
    JobClaimed,
    Journal,
    JournalUnavailable,
    Quarantined,
    _check_clip_id,
)
from storage.learned import Learned
from storage.records import OPEN_STATES, ClipJournal

log = logging.getLogger(__name__)

SCHEMA = "reelflow"
# each version's statements, applied once in order under the migration lock
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE reelflow.clips (
               clip_id text PRIMARY KEY,
               state text NOT NULL,
               created_at timestamptz NOT NULL,
               updated_at timestamptz NOT NULL,
               spent_usd numeric NOT NULL,
               parent_clip_id text,
               record jsonb NOT NULL)""",
        "CREATE INDEX clips_open ON reelflow.clips (state) WHERE state IN "
        f"({', '.join(repr(s) for s in OPEN_STATES)})",
        "CREATE INDEX clips_parent ON reelflow.clips (parent_clip_id)",
        """CREATE TABLE reelflow.steps (
               clip_id text NOT NULL REFERENCES reelflow.clips ON DELETE CASCADE,
               position int NOT NULL,
               replaced boolean NOT NULL,
               step_index int NOT NULL,
               kind text NOT NULL,
               seconds int NOT NULL,
               state text NOT NULL,
               model text NOT NULL,
               tier text NOT NULL,
               protocol text,
               job_id text,
               spent_usd numeric NOT NULL,
               PRIMARY KEY (clip_id, position))""",
        "CREATE INDEX steps_job ON reelflow.steps (protocol, job_id)",
        """CREATE TABLE reelflow.claims (
               protocol text NOT NULL,
               job_id text NOT NULL,
               clip_id text NOT NULL,
               step int NOT NULL,
               claimed_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (protocol, job_id))""",
        """CREATE TABLE reelflow.quarantine (
               id bigserial PRIMARY KEY,
               clip_id text NOT NULL,
               found text NOT NULL,
               record text NOT NULL,
               last_written timestamptz NOT NULL,
               moved_at timestamptz NOT NULL DEFAULT now())""",
    ),
    2: (
        """CREATE TABLE reelflow.learned (
               kind text NOT NULL,
               key text NOT NULL,
               fact text NOT NULL,
               learned_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (kind, key))""",
    ),
}
VERSION = max(MIGRATIONS)
SEND_POLL_S = (0.02, 0.5)  # the first and the longest wait between tries of a held send lock


class JournalSchemaTooNew(JournalUnavailable):
    """The database's journal was migrated by a newer reelflow than this one."""


def _lock_key(kind: str, name: str) -> int:
    """A signed 64-bit advisory lock key for (`kind`, `name`): record, send, signature or
    migrate; collisions only serialise two unrelated locks."""
    digest = hashlib.blake2b(f"{kind}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresJournal(Journal):
    """Clip records in PostgreSQL, with the folder journal's transitions and guarantees."""

    def __init__(self, url: str, *, connections: int = 4):
        self.url, self.connections = url, connections
        self._local = threading.local()  # this thread's transaction and the clips it locks
        self._guard = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._lock_conn: psycopg.Connection | None = None
        self._key_locks: dict[int, list] = {}  # key -> [its thread lock, threads using it]
        self._migrate()

    # connections

    def _connections(self) -> ConnectionPool:
        with self._guard:
            if self._pool is None:
                self._pool = ConnectionPool(self.url, min_size=1, max_size=self.connections,
                                            kwargs={"autocommit": True,
                                                    "row_factory": tuple_row}, open=True,
                                            name="reelflow-journal", timeout=120,
                                            check=ConnectionPool.check_connection)
            return self._pool

    def close(self) -> None:
        """Close the pool and the send locks' session (a send in flight keeps its own until
        it ends; a later use opens new ones)."""
        with self._guard:
            pool, self._pool = self._pool, None
            lock_conn, self._lock_conn = self._lock_conn, None
        if pool is not None:
            pool.close()
        if lock_conn is not None:
            lock_conn.close()

    def _migrate(self) -> None:
        """Create or bring the schema to VERSION, once across processes (a transaction-level
        lock); a schema newer than this code is refused rather than misread."""
        try:
            conn = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.OperationalError as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise JournalUnavailable(f"cannot reach the journal's database at "
                                     f"{self._where()}: {reason}") from None
        with conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("migrate", SCHEMA),))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version "
                         "(version int PRIMARY KEY, applied_at timestamptz NOT NULL "
                         "DEFAULT now())")
            row = conn.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version").fetchone()
            current = (row[0] if row else None) or 0
            if current > VERSION:
                raise JournalSchemaTooNew(
                    f"the journal at {self._where()} is at schema version {current}; this "
                    f"reelflow knows up to {VERSION}: upgrade reelflow")
            for version in range(current + 1, VERSION + 1):
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)",
                             (version,))

    def _where(self) -> str:
        """The database, without credentials, for messages."""
        info = conninfo_to_dict(self.url)
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname')}"

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """This thread's transaction's connection, or a pooled one for one statement."""
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        with self._connections().connection() as conn:
            yield conn

    # the record lock: one transaction per transition

    @contextmanager
    def changing(self, clip_id: str) -> Iterator[None]:
        """The record's lock, for one transition: a transaction holding the clip's advisory
        lock (re-entered freely by the thread holding it: a transition may call another, and
        a transition on another clip inside it joins its transaction)."""
        _check_clip_id(clip_id)
        held: set[str] = self._local.__dict__.setdefault("clips", set())
        if clip_id in held:
            yield
            return
        outer = getattr(self._local, "conn", None)
        if outer is not None:
            with self._locked(outer, clip_id, held):
                yield
            return
        with self._connections().connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                with self._locked(conn, clip_id, held):
                    yield
            finally:
                self._local.conn = None

    @contextmanager
    def _locked(self, conn: psycopg.Connection, clip_id: str, held: set[str]) -> Iterator[None]:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("record", clip_id),))
        held.add(clip_id)
        try:
            yield
        finally:
            held.discard(clip_id)

    def read(self, clip_id: str) -> ClipJournal | None:
        """The clip's record; None when it has none, or had one that could not be read (it is
        quarantined now)."""
        _check_clip_id(clip_id)
        found = self._rows("clip_id = %s", (clip_id,))
        return found[0] if found else None

    def _rows(self, where: str, params: tuple) -> list[ClipJournal]:
        """The readable records matching `where`, by clip id; unreadable ones quarantined."""
        with self._conn() as conn:
            rows = conn.execute(f"SELECT clip_id, record::text, updated_at FROM {SCHEMA}.clips "
                                f"WHERE {where} ORDER BY clip_id", params).fetchall()
        records = []
        for clip_id, text, written in rows:
            try:
                records.append(ClipJournal.model_validate_json(text))
            except ValueError as err:  # fields a record of this version cannot have
                self._quarantine(clip_id, text, written, f"{type(err).__name__}: {err}"[:2000])
        return records

    def _quarantine(self, clip_id: str, text: str, written: datetime, found: str) -> None:
        with self._conn() as conn, conn.transaction():
            moved = conn.execute(f"DELETE FROM {SCHEMA}.clips WHERE clip_id = %s AND "
                                 "record::text = %s", (clip_id, text)).rowcount
            if moved:  # another reader may have moved it first
                conn.execute(f"INSERT INTO {SCHEMA}.quarantine (clip_id, found, record, "
                             "last_written) VALUES (%s, %s, %s, %s)",
                             (clip_id, found, text, written))
        if moved:
            log.warning("journal record of clip %s could not be read (%s): moved to %s"
                        ".quarantine", clip_id, found.splitlines()[0], SCHEMA)

    def quarantined(self, clip_id: str | None = None) -> list[Quarantined]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT id, clip_id, found, last_written FROM {SCHEMA}.quarantine "
                "WHERE %(clip)s::text IS NULL OR clip_id = %(clip)s ORDER BY moved_at, id",
                {"clip": clip_id}).fetchall()
        return [Quarantined(clip_id=clip, path=f"{SCHEMA}.quarantine/{row_id}", found=found,
                            last_written=written) for row_id, clip, found, written in rows]

    def _write(self, record: ClipJournal) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is None or record.clip_id not in self._local.clips:
            raise RuntimeError(f"a write of clip {record.clip_id} outside its transition")
        conn.execute(
            f"INSERT INTO {SCHEMA}.clips (clip_id, state, created_at, updated_at, spent_usd, "
            "parent_clip_id, record) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb) "
            "ON CONFLICT (clip_id) DO UPDATE SET state = excluded.state, "
            "updated_at = excluded.updated_at, spent_usd = excluded.spent_usd, "
            "parent_clip_id = excluded.parent_clip_id, record = excluded.record",
            (record.clip_id, record.state, record.created_at, record.updated_at,
             record.spent_usd, record.parent_clip_id, record.model_dump_json()))
        conn.execute(f"DELETE FROM {SCHEMA}.steps WHERE clip_id = %s", (record.clip_id,))
        steps = [(s, False) for s in record.steps] + [(s, True) for s in record.replaced]
        with conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {SCHEMA}.steps (clip_id, position, replaced, step_index, kind, "
                "seconds, state, model, tier, protocol, job_id, spent_usd) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(record.clip_id, n, replaced, s.index, s.kind, s.seconds, s.state, s.model,
                  s.tier, s.handle.protocol if s.handle else None,
                  s.handle.job_id if s.handle else None, s.spent_usd)
                 for n, (s, replaced) in enumerate(steps)])

    # session locks: a send's, a signature's

    @contextmanager
    def _send_lock(self, clip_id: str) -> Iterator[None]:
        with self._session_lock(_lock_key("send", clip_id)):
            yield

    @contextmanager
    def signature_lock(self, signature: str) -> Iterator[None]:
        with self._session_lock(_lock_key("signature", signature)):
            yield

    @contextmanager
    def _session_lock(self, key: int) -> Iterator[None]:
        """`key`'s advisory lock on this process's lock session, held until the block ends:
        a thread lock keeps this process's threads apart, the server other processes."""
        with self._guard:
            entry = self._key_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                conn = self._lock_session(key)
                try:
                    yield
                finally:
                    try:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                    except psycopg.Error:  # the session is gone, and the lock with it
                        log.warning("the journal's lock session ended while a lock was held")
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._key_locks[key]

    def _lock_session(self, key: int) -> psycopg.Connection:
        """The lock session, once it holds `key` (polled: the session is shared)."""
        wait = SEND_POLL_S[0]
        while True:
            with self._guard:
                if self._lock_conn is None or self._lock_conn.closed:
                    self._lock_conn = psycopg.connect(self.url, autocommit=True,
                                                      row_factory=tuple_row)
                conn = self._lock_conn
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            except psycopg.OperationalError:  # the session broke: its locks went with it
                log.warning("the journal's lock session broke: opening another")
                conn.close()
                continue
            if row and row[0]:
                return conn
            time.sleep(wait)
            wait = min(wait * 2, SEND_POLL_S[1])

    # claims

    def claim_job(self, protocol: str, job_id: str, clip_id: str, index: int) -> None:
        with self._conn() as conn, conn.transaction():
            won = conn.execute(
                f"INSERT INTO {SCHEMA}.claims (protocol, job_id, clip_id, step) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (protocol, job_id) DO NOTHING",
                (protocol, job_id, clip_id, index)).rowcount
        if not won and self.claimed_by_other(protocol, job_id, clip_id, index):
            raise JobClaimed(f"job {job_id} is claimed by another clip; not adopting it")

    def claimed_by_other(self, protocol: str, job_id: str, clip_id: str, index: int) -> bool:
        with self._conn() as conn:
            row = conn.execute(f"SELECT clip_id, step FROM {SCHEMA}.claims "
                               "WHERE protocol = %s AND job_id = %s",
                               (protocol, job_id)).fetchone()
        return row is not None and tuple(row) != (clip_id, index)

    def claims(self) -> list[Claim]:
        with self._conn() as conn:
            rows = conn.execute(f"SELECT protocol, job_id, clip_id, step FROM {SCHEMA}.claims "
                                "ORDER BY protocol, job_id").fetchall()
        return [Claim(protocol=p, job_id=j, clip_id=c, step=s) for p, j, c, s in rows]

    def keep_quarantined(self, note: Quarantined, text: str) -> bool:
        """A record another journal had quarantined (a migration), with what it held, so a
        rerun of the clip recovers by lookup here too; False when it is here already."""
        with self._conn() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)",
                          (_lock_key("record", note.clip_id),))
            present = conn.execute(
                f"SELECT 1 FROM {SCHEMA}.quarantine WHERE clip_id = %s AND last_written = %s",
                (note.clip_id, note.last_written)).fetchone()
            if present is None:
                conn.execute(f"INSERT INTO {SCHEMA}.quarantine (clip_id, found, record, "
                             "last_written) VALUES (%s, %s, %s, %s)",
                             (note.clip_id, note.found, text, note.last_written))
        return present is None

    # listing

    def records(self) -> list[ClipJournal]:
        return self._rows("TRUE", ())

    def open_records(self) -> list[ClipJournal]:
        """Clips a run or the sweep must still finish (by the open-state index)."""
        return self._rows("state = ANY(%s)", (list(OPEN_STATES),))

    def matching(self, prefix: str) -> list[str]:
        if not prefix.isalnum():
            return []
        with self._conn() as conn:
            return [clip for (clip,) in conn.execute(
                f"SELECT clip_id FROM {SCHEMA}.clips WHERE starts_with(clip_id, %s) "
                "ORDER BY clip_id", (prefix,)).fetchall()]

    def learned(self, kind: str) -> Learned:
        return _TableLearned(self, kind)

    def counts(self) -> dict[str, int]:
        """Rows per table: what a migration is checked by."""
        with self._conn() as conn:
            return {table: conn.execute(f"SELECT count(*) FROM {SCHEMA}.{table}").fetchone()[0]
                    for table in ("clips", "steps", "claims", "quarantine", "learned")}


class _TableLearned(Learned):
    """Facts of one kind as rows of reelflow.learned."""

    def __init__(self, journal: PostgresJournal, kind: str):
        self.journal, self.kind = journal, kind

    def put(self, key: str, text: str) -> None:
        with self.journal._conn() as conn:
            conn.execute(f"INSERT INTO {SCHEMA}.learned (kind, key, fact) VALUES (%s, %s, %s) "
                         "ON CONFLICT (kind, key) DO UPDATE SET fact = excluded.fact, "
                         "learned_at = now()", (self.kind, key, text))

    def add(self, key: str, text: str) -> bool:
        with self.journal._conn() as conn:
            return conn.execute(f"INSERT INTO {SCHEMA}.learned (kind, key, fact) VALUES "
                                "(%s, %s, %s) ON CONFLICT (kind, key) DO NOTHING",
                                (self.kind, key, text)).rowcount == 1

    def texts(self, prefix: str = "") -> list[str]:
        with self.journal._conn() as conn:
            return [fact for (fact,) in conn.execute(
                f"SELECT fact FROM {SCHEMA}.learned WHERE kind = %s AND starts_with(key, %s) "
                "ORDER BY key", (self.kind, prefix)).fetchall()]

    def remove(self, key: str) -> None:
        with self.journal._conn() as conn:
            conn.execute(f"DELETE FROM {SCHEMA}.learned WHERE kind = %s AND key = %s",
                         (self.kind, key))

    def forget(self) -> int:
        with self.journal._conn() as conn:
            return conn.execute(f"DELETE FROM {SCHEMA}.learned WHERE kind = %s",
                                (self.kind,)).rowcount
