"""The sandbox's state on disk (SQLite under the state folder): jobs, usage, counters, knobs.

A client killed mid-poll finds its job, and its bill, when it comes back; a restarted sandbox
finds both too. One connection behind a lock: the sandbox is one process, and SQLite in WAL mode
keeps up with it.
"""

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sandbox.jobs import Job

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, protocol TEXT, account TEXT, external_id TEXT,
    created_at REAL, final INTEGER DEFAULT 0, data TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_external ON jobs(protocol, account, external_id);
CREATE TABLE IF NOT EXISTS usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL, account TEXT, protocol TEXT, tier TEXT,
    job_id TEXT, model TEXT, kind TEXT, seconds REAL, resolution TEXT, usd TEXT,
    UNIQUE(job_id, kind));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT);
"""


class Store:
    def __init__(self, state: Path):
        state.mkdir(parents=True, exist_ok=True)
        self.state = state
        self._db = sqlite3.connect(state / "sandbox.db", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self.lock = threading.RLock()

    # jobs
    def put(self, job: Job) -> None:
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.protocol, job.account, job.external_id, job.created_at,
                 int(job.final), job.model_dump_json()),
            )

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            row = self._db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def by_external(self, protocol: str, account: str, external_id: str) -> Job | None:
        with self.lock:
            row = self._db.execute(
                "SELECT data FROM jobs WHERE protocol = ? AND account = ? AND external_id = ?",
                (protocol, account, external_id),
            ).fetchone()
        return Job.model_validate_json(row[0]) if row else None

    def jobs(self, protocol: str | None = None, account: str | None = None,
             open_only: bool = False) -> list[Job]:
        query, args = "SELECT data FROM jobs WHERE 1=1", []
        if protocol:
            query, args = query + " AND protocol = ?", [*args, protocol]
        if account:
            query, args = query + " AND account = ?", [*args, account]
        if open_only:
            query += " AND final = 0"
        with self.lock:
            rows = self._db.execute(query + " ORDER BY created_at, id", args).fetchall()
        return [Job.model_validate_json(r[0]) for r in rows]

    # usage
    def bill(self, row: dict[str, Any]) -> None:
        with self.lock:
            self._db.execute(
                "INSERT OR IGNORE INTO usage (at, account, protocol, tier, job_id, model, kind,"
                " seconds, resolution, usd) VALUES (:at, :account, :protocol, :tier, :job_id,"
                " :model, :kind, :seconds, :resolution, :usd)", row)

    def usage(self) -> list[dict[str, Any]]:
        with self.lock:
            cursor = self._db.execute("SELECT * FROM usage ORDER BY seq")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    # tables other modules keep here (the webhook deliveries), under the same lock
    def script(self, sql: str) -> None:
        with self.lock:
            self._db.executescript(sql)

    def query(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        with self.lock:
            return self._db.execute(sql, args).fetchall()

    # counters and settings
    def count(self, name: str, by: int = 1) -> int:
        with self.lock:
            self._db.execute(
                "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = "
                "value + excluded.value", (name, by))
            return self._db.execute("SELECT value FROM counters WHERE name = ?",
                                    (name,)).fetchone()[0]

    def counters(self) -> dict[str, int]:
        with self.lock:
            return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def save_setting(self, name: str, value: Any) -> None:
        with self.lock:
            self._db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)",
                             (name, json.dumps(value)))

    def setting(self, name: str) -> Any:
        with self.lock:
            row = self._db.execute("SELECT value FROM settings WHERE name = ?",
                                   (name,)).fetchone()
        return json.loads(row[0]) if row else None
