"""The analytics database: a local DuckDB file holding the ledger's rows the reports read, kept
up to date incrementally, and the views over them.

`build` loads each part file once: it keeps the parts it has loaded (path, size, modification
time) and reads only the new ones — a report after a day of work reads that day's parts, not
the month's. Rows are deduplicated by event_id as they arrive (the earliest of a charge written
twice is kept, as before), and only the columns the views read are kept. A part the sweep
compacted away is forgotten; the compacted part's rows are already there and are not counted
twice. A part that cannot be read is skipped, reported, and tried again at the next build.
Beside the rows, the file keeps the per-clip roll-up `clip_rollup` (views.sql; `clips` reads
it): a build merges in the new rows' clips, so a report does not group every row by clip.
The file is a cache of the ledger: one written by another version is rebuilt from the parts.
A column no part holds yet (a ledger written before `labels` existed) is NULL of its type.
The ledger's location is configuration, not user input: a folder, or an object store read
through its fsspec filesystem registered on the connection (a part's path is then its URL);
every query that takes input binds parameters. Reports open the file read-only.
"""

import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from models import LEDGER_SCHEMA
from storage.ledger_files import LedgerFiles

VIEWS = Path(__file__).with_name("views.sql")
VIEW_NAMES = ("spend_by_day", "clips", "unit_costs", "hidden_costs", "latency",
              "quality_rates", "continuation_savings")
# bumped when the tables change shape: a file of another version is rebuilt from the parts
VERSION = 5
LOCK_WAIT_S = 60.0
# what the views, the report and the reconciliation read; the rest stays in the parts
COLUMNS = ("event_id", "event_time", "event_kind", "provider", "model", "tier", "job_id",
           "clip_id", "mode", "seconds_asked", "seconds_billed", "seconds_delivered",
           "resolution_asked", "resolution_actual", "queued_s", "running_s", "cost_usd",
           "charge_kind", "inspection_outcome", "labels")
FIELDS = [LEDGER_SCHEMA.field(name) for name in COLUMNS]
# ids are nearly all distinct: dictionary and FSST analysis of them cost ~0.6 s of CPU per
# column per 2 M rows here (a third of a load) and save little, so they are stored as they are
IDS = {"event_id", "job_id", "clip_id"}


def build(database: Path, ledger: str, options: dict[str, Any] | None = None) -> list[str]:
    """Bring `database` up to date with the ledger at `ledger` (a folder or an fsspec URL,
    `options` its storage options): the parts not loaded yet are loaded; returns the parts
    skipped as unreadable."""
    database.parent.mkdir(parents=True, exist_ok=True)
    files = LedgerFiles(ledger, options)
    with _open(database, read_only=False) as con:
        if not _current(con):
            con.close()
            for stale in (database, database.with_name(database.name + ".wal")):
                stale.unlink(missing_ok=True)
            return build(database, ledger, options)
        files.attach(con)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # callers print their own output
        # the tables are sets of rows (every view orders its own output): loading them in
        # parallel need not keep the parts' order
        con.execute("SET preserve_insertion_order = false")
        found = files.stats()
        known = {path: (size, mtime) for path, size, mtime in
                 con.execute("SELECT path, size, mtime_ns FROM loaded_parts").fetchall()}
        new = [path for path, stat in found.items() if known.get(path) != stat]
        readable, unreadable = _readable(con, files, new)
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
        columns = ", ".join(f"{f.name} {_TYPES[str(f.type)]}"
                            + (" USING COMPRESSION uncompressed" if f.name in IDS else "")
                            for f in FIELDS)
        con.execute(f"CREATE TABLE ledger ({columns})")
        con.execute("CREATE TABLE loaded_parts (path VARCHAR, size BIGINT, mtime_ns BIGINT)")
        con.execute("CREATE TABLE analytics_version AS SELECT ? AS version", [VERSION])
        con.execute(VIEWS.read_text(encoding="utf-8"))
        return True
    if "analytics_version" not in tables:
        return False
    return con.execute("SELECT max(version) FROM analytics_version").fetchone()[0] == VERSION


def _readable(con: duckdb.DuckDBPyConnection, files: LedgerFiles, paths: list[str]
              ) -> tuple[list[str], list[str]]:
    """(readable, unreadable): one DuckDB pass over the footers, file by file only when one
    fails (one bad part must not take the report with it)."""
    if not paths:
        return [], []
    try:
        con.execute("SELECT count(*) FROM read_parquet(?)", [paths]).fetchall()
        return paths, []
    except duckdb.Error:
        return files.readable_split(paths)


def _load(con: duckdb.DuckDBPyConnection, paths: list[str]) -> None:
    """The rows of `paths` into `ledger`; then, among the event ids they bring, every copy but
    the earliest removed (a charge written again by a run killed before its journal knew); then
    the per-clip roll-up `clip_rollup` brought up to date. Into an empty table every id is new
    and every clip is rolled up once. Otherwise the rows arrive through a staging table that
    shadows `ledger` while clip_rollup_of() rolls them up, and each clip they touch is merged
    with its roll-up so far — or, when a copy was removed (its clip's sums would hold it),
    every clip the arriving rows or the removed copies belong to is rolled up again from all
    of its rows."""
    source = "read_parquet(?, union_by_name = true, hive_partitioning = false)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}",
                                             [paths]).fetchall()}
    select = ", ".join(f.name if f.name in present else _null_column(f) for f in FIELDS)
    main = _main(con)  # fixed SQL below: names, not input
    if con.execute("SELECT count(*) = 0 FROM ledger").fetchone()[0]:
        con.execute(f"INSERT INTO ledger SELECT {select} FROM {source}", [paths])
        _dedupe(con, main, "")
        con.execute("DELETE FROM clip_rollup")
        con.execute("INSERT INTO clip_rollup FROM clip_rollup_of()")
        return
    con.execute(f"CREATE OR REPLACE TEMP TABLE ledger AS SELECT {select} FROM {source}",
                [paths])
    con.execute(f"INSERT INTO {main}.ledger FROM temp.ledger")
    replaced = _dedupe(con, main, "WHERE event_id IN (SELECT event_id FROM temp.ledger)")
    if replaced:
        con.execute("CREATE OR REPLACE TEMP TABLE touched AS SELECT DISTINCT clip_id FROM ("
                    "SELECT clip_id FROM temp.ledger UNION ALL SELECT unnest(?::VARCHAR[]))",
                    [replaced])
        touched = "clip_id IN (SELECT clip_id FROM temp.touched)"  # never NULL: LEDGER_SCHEMA
        con.execute(f"DELETE FROM {main}.clip_rollup WHERE {touched}")
        con.execute(f"CREATE OR REPLACE TEMP TABLE ledger AS FROM {main}.ledger WHERE {touched}")
        con.execute(f"INSERT INTO {main}.clip_rollup FROM clip_rollup_of()")
        con.execute("DROP TABLE temp.touched")
    else:
        # the touched clips' roll-ups so far (one pass over the table), then out by row id
        con.execute(f"CREATE OR REPLACE TEMP TABLE before AS SELECT rowid AS row_id, * "
                    f"FROM {main}.clip_rollup WHERE clip_id IN (SELECT clip_id FROM temp.ledger)")
        con.execute(f"DELETE FROM {main}.clip_rollup "
                    "WHERE rowid IN (SELECT row_id FROM temp.before)")
        con.execute(f"INSERT INTO {main}.clip_rollup {_MERGE}")
        con.execute("DROP TABLE temp.before")
    con.execute("DROP TABLE temp.ledger")


# a clip's roll-up so far (`before`, none for a new clip) merged with that of its arriving rows
_MERGE = """
    SELECT n.clip_id, coalesce(b.provider, n.provider), coalesce(b.model, n.model),
           coalesce(b.tier, n.tier), coalesce(b.mode, n.mode),
           greatest(b.seconds_delivered, n.seconds_delivered),
           greatest(b.seconds_asked, n.seconds_asked),
           greatest(b.resolution_asked, n.resolution_asked),
           greatest(b.resolution_actual, n.resolution_actual),
           greatest(b.rejection_outcome, n.rejection_outcome),
           greatest(b.inspection_outcome, n.inspection_outcome),
           coalesce(b.delivered, false) OR n.delivered, coalesce(b.cost_usd, 0) + n.cost_usd,
           least(b.first_event, n.first_event)
    FROM clip_rollup_of() n LEFT JOIN temp.before b USING (clip_id)"""


def _dedupe(con: duckdb.DuckDBPyConnection, main: str, arriving: str) -> list[str]:
    """Every copy of an event id (among those `arriving` selects) but the earliest deleted;
    returns the clip ids of the copies deleted."""
    return [clip for (clip,) in con.execute(f"""
        DELETE FROM {main}.ledger WHERE rowid IN (
            SELECT rowid FROM (
                SELECT rowid, row_number() OVER (PARTITION BY event_id
                                                 ORDER BY event_time, rowid) AS copy
                FROM {main}.ledger WHERE event_id IN (
                    SELECT event_id FROM {main}.ledger {arriving}
                    GROUP BY event_id HAVING count(*) > 1))
            WHERE copy > 1)
        RETURNING clip_id""").fetchall()]


def _main(con: duckdb.DuckDBPyConnection) -> str:
    """The file's own schema by its full name (`main.x` alone can find a temp table)."""
    database = con.execute("SELECT current_database()").fetchone()[0]
    return '"' + database.replace('"', '""') + '".main'


def connect(database: Path, ledger: str, options: dict[str, Any] | None = None, *,
            read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection for reports (read-only by default), views built if missing."""
    if not database.exists():
        build(database, ledger, options)
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
