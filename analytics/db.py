"""The analytics database: a local DuckDB file holding the ledger's rows the reports read, kept
up to date incrementally, and the views over them.

`build` loads each part file once: it keeps the parts it has loaded (path, size, modification
time) and reads only the new ones — a report after a day of work reads that day's parts, not
the month's. Rows are deduplicated by event_id as they arrive (the earliest of a charge written
twice is kept, as before), and only the columns the views read are kept. A part the sweep
compacted away is forgotten; the compacted part's rows are already there and are not counted
twice. A part that cannot be read is skipped, reported, and tried again at the next build.
The file is a cache of the ledger: one written by another version is rebuilt from the parts.
A column no part holds yet (a ledger written before `labels` existed) is NULL of its type.
The ledger's location is configuration, not user input; every query that takes input binds
parameters. Reports open the file read-only.
"""

import time
from pathlib import Path

import duckdb
import pyarrow as pa

from models import LEDGER_SCHEMA
from storage.ledger import part_files, readable_split

VIEWS = Path(__file__).with_name("views.sql")
VIEW_NAMES = ("spend_by_day", "clips", "unit_costs", "hidden_costs", "latency",
              "quality_rates", "continuation_savings")
# bumped when the tables change shape: a file of another version is rebuilt from the parts
VERSION = 2
LOCK_WAIT_S = 60.0
# what the views, the report and the reconciliation read; the rest stays in the parts
COLUMNS = ("event_id", "event_time", "event_kind", "provider", "model", "tier", "job_id",
           "clip_id", "mode", "seconds_asked", "seconds_billed", "seconds_delivered",
           "resolution_asked", "resolution_actual", "queued_s", "running_s", "cost_usd",
           "charge_kind", "inspection_outcome", "labels")
FIELDS = [LEDGER_SCHEMA.field(name) for name in COLUMNS]


def build(database: Path, ledger: str) -> list[str]:
    """Bring `database` up to date with the ledger folder `ledger`: the parts not loaded yet
    are loaded; returns the parts skipped as unreadable."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with _open(database, read_only=False) as con:
        if not _current(con):
            con.close()
            for stale in (database, database.with_name(database.name + ".wal")):
                stale.unlink(missing_ok=True)
            return build(database, ledger)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # callers print their own output
        found = _stats(part_files(Path(ledger)))
        known = {path: (size, mtime) for path, size, mtime in
                 con.execute("SELECT path, size, mtime_ns FROM loaded_parts").fetchall()}
        new = [path for path, stat in found.items() if known.get(path) != stat]
        readable, unreadable = _readable(con, new)
        con.execute("BEGIN")
        if readable:
            _load(con, readable)
        gone = [path for path in known if path not in found]
        con.execute("DELETE FROM loaded_parts WHERE list_contains(?::VARCHAR[], path)",
                    [gone + new])
        con.execute("INSERT INTO loaded_parts SELECT unnest(?::VARCHAR[]), "
                    "unnest(?::BIGINT[]), unnest(?::BIGINT[])",
                    [readable, [found[p][0] for p in readable], [found[p][1] for p in readable]])
        con.execute("COMMIT")
    return unreadable


def _current(con: duckdb.DuckDBPyConnection) -> bool:
    """The tables and views of this version exist (made now in an empty file); False for a
    file another version wrote."""
    tables = {name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
    if not tables and not con.execute("SELECT count(*) FROM duckdb_views() "
                                      "WHERE NOT internal").fetchone()[0]:
        columns = ", ".join(f"{f.name} {_TYPES[str(f.type)]}" for f in FIELDS)
        con.execute(f"CREATE TABLE ledger ({columns})")
        con.execute("CREATE TABLE loaded_parts (path VARCHAR, size BIGINT, mtime_ns BIGINT)")
        con.execute("CREATE TABLE analytics_version AS SELECT ? AS version", [VERSION])
        con.execute(VIEWS.read_text(encoding="utf-8"))
        return True
    if "analytics_version" not in tables:
        return False
    return con.execute("SELECT max(version) FROM analytics_version").fetchone()[0] == VERSION


def _stats(paths: list[Path]) -> dict[str, tuple[int, int]]:
    found = {}
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:  # compacted away since it was listed
            continue
        found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def _readable(con: duckdb.DuckDBPyConnection, paths: list[str]) -> tuple[list[str], list[str]]:
    """(readable, unreadable): one DuckDB pass over the footers, file by file only when one
    fails (one bad part must not take the report with it)."""
    if not paths:
        return [], []
    try:
        con.execute("SELECT count(*) FROM read_parquet(?)", [paths]).fetchall()
        return paths, []
    except duckdb.Error:
        return readable_split(paths)


def _load(con: duckdb.DuckDBPyConnection, paths: list[str]) -> None:
    """The rows of `paths` into `ledger`; then, among the event ids they bring, every copy but
    the earliest removed (a charge written again by a run killed before its journal knew).
    Into an empty table every id is new: no lookup of what was there."""
    source = "read_parquet(?, union_by_name = true, hive_partitioning = false)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}",
                                             [paths]).fetchall()}
    select = ", ".join(f.name if f.name in present else _null_column(f) for f in FIELDS)
    empty = con.execute("SELECT count(*) = 0 FROM ledger").fetchone()[0]
    con.execute(f"INSERT INTO ledger SELECT {select} FROM {source}", [paths])
    arriving = "" if empty else f"WHERE event_id IN (SELECT event_id FROM {source})"
    con.execute(f"""
        DELETE FROM ledger WHERE rowid IN (
            SELECT rowid FROM (
                SELECT rowid, row_number() OVER (PARTITION BY event_id
                                                 ORDER BY event_time, rowid) AS copy
                FROM ledger WHERE event_id IN (
                    SELECT event_id FROM ledger {arriving}
                    GROUP BY event_id HAVING count(*) > 1))
            WHERE copy > 1)""", [paths] if arriving else [])


def connect(database: Path, ledger: str, *, read_only: bool = True
            ) -> duckdb.DuckDBPyConnection:
    """A connection for reports (read-only by default), views built if missing."""
    if not database.exists():
        build(database, ledger)
    con = _open(database, read_only=read_only)
    con.execute("SET enable_progress_bar = false")  # reports print their own output
    return con


def _open(database: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """DuckDB admits one process to a file while another writes it: a report and a batch's
    price check starting together take turns (for up to LOCK_WAIT_S) instead of failing."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(database), read_only=read_only)
        except duckdb.IOException:  # the file is held by another process (or unreadable)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# the ledger's arrow types as DuckDB names them
_TYPES = {"string": "VARCHAR", "bool": "BOOLEAN", "int64": "BIGINT", "double": "DOUBLE",
          "decimal128(18, 6)": "DECIMAL(18, 6)", "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
          "map<string, string>": "MAP(VARCHAR, VARCHAR)"}


def _null_column(field: pa.Field) -> str:
    """A column of the schema as NULL of its type (field names are the schema's, not input)."""
    return f"CAST(NULL AS {_TYPES[str(field.type)]}) AS {field.name}"
