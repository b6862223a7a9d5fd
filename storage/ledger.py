"""The ledger writer: append-only Parquet part files with the one fixed schema.

Layout: <root>/date=<event date>/run=<flow run id>/part-<n>.parquet, one small file flushed at
each charge event, so a killed run loses nothing it had already paid for. The root is a folder
or an object store (storage/ledger_files.py): in a folder part numbers are taken with O_EXCL and
files appear whole (temp name, rename); on an object store each part is one create-only put.
Either way two writers of one run never collide and no part is ever overwritten.
Rows carry a deterministic event_id (clip, step, job, kind): a charge written twice by a run
killed between writing and journalling is the same event, and readers count it once.
Every row carries the labels of the request it was made from (`event_row`): a run's rows the
labels of that run's request, even where the journal holds an earlier run's.
"""

import hashlib
import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from models import ClipRequest, LedgerRow, RoutePlan, account_key, rows_to_table
from models.ledger import ChargeKind, EventKind
from storage.ledger_files import LedgerFiles


def event_id(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def event_row(kind: EventKind, request: ClipRequest, plan: RoutePlan, run_id: str, *,
              key: tuple, cost: Decimal = Decimal(0), charge: ChargeKind = "none",
              model: str | None = None, tier: str | None = None, job_id: str | None = None,
              provider: str | None = None, **fields) -> LedgerRow:
    """The one place a ledger row is made: an event of `request`'s clip under `plan` (a step's
    own model and tier where it ran on them). `key` makes its event id with the clip's, so
    the same event written twice is counted once."""
    tier, provider = tier or plan.tier, provider or plan.provider
    fields.setdefault("seconds_billed", plan.seconds_billed)
    return LedgerRow(
        event_id=event_id(request.clip_id, *key), event_time=datetime.now(UTC),
        event_kind=kind, provider=provider, model=model or plan.model, tier=tier,
        account=account_key(provider, tier), endpoint=plan.endpoint, job_id=job_id,
        **request.ledger_columns(), cost_usd=cost, charge_kind=charge, flow_run_id=run_id,
        **fields)


class LedgerWriter:
    def __init__(self, place: str | Path, run_id: str, options: dict[str, Any] | None = None):
        self.files, self.run_id = LedgerFiles(place, options), run_id
        self._next: dict[str, int] = {}  # folder -> the part number to try next

    def append(self, rows: list[LedgerRow]) -> str | None:
        """Flush rows now, as one part file per event date."""
        written = None
        for day in sorted({row.event_time.date() for row in rows}):
            written = self.write(day, rows_to_table(
                [row for row in rows if row.event_time.date() == day]))
        return written

    def write(self, day: date, table: pa.Table) -> str:
        """`table` as a new part file of `day` in this run's folder: whole, never over another
        part, its row count checked before it appears."""
        data = _parquet(table)
        if pq.read_metadata(pa.BufferReader(data)).num_rows != table.num_rows:
            raise RuntimeError(f"a part of {day}: {table.num_rows} rows in, a different count "
                               "out")
        folder = self.files.folder(day, self.run_id)
        if self.files.local:
            return str(self._rename_into(Path(folder), data))
        return self._put(folder, data)

    def _put(self, folder: str, data: bytes) -> str:
        """On an object store the key is the claim: the folder's parts are counted once per
        writer, and a number taken since is skipped by the create-only put."""
        n = self._next.get(folder)
        location, n = self.files.put_new(folder, data, self.files.count(folder) if n is None
                                         else n)
        self._next[folder] = n + 1
        return location

    def _rename_into(self, folder: Path, data: bytes) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = self.claim(folder)
        tmp = folder / f".{path.name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(path)
        return path

    def claim(self, folder: Path) -> Path:
        """The next part number of a local folder, claimed by a hidden marker (readers skip
        dot-files). The folder's markers are counted once per writer, not at every write (a
        run of 1,000 clips writes ~6,000 parts into one folder); a number another writer took
        meanwhile is refused by the exclusive create and the next one tried."""
        n = self._next.get(str(folder))
        if n is None:
            n = len(list(folder.glob(".part-*.claim")))
        while True:
            try:
                fd = os.open(folder / f".part-{n:05d}.claim", os.O_CREAT | os.O_EXCL |
                             os.O_WRONLY)
                os.close(fd)
                self._next[str(folder)] = n + 1
                return folder / f"part-{n:05d}.parquet"
            except FileExistsError:
                n += 1


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def read_ledger(place: str | Path, columns: list[str] | None = None,
                options: dict[str, Any] | None = None) -> list[dict]:
    """Every row of the readable parts, once per event_id, in the parts' order (for tests,
    the CLI and reconciliation; analytics builds views); only `columns` (and event_id) when
    given. Labels as a dict; a part older than a column has it as None. `place`: the ledger's
    folder or fsspec URL, `options` its fsspec storage options.

    Read by DuckDB in one scan: a run of 1,000 clips leaves ~6,000 one-event parts, which
    pyarrow opened one by one in ~10 s and DuckDB reads in ~1 s. Only when a part cannot be
    read (garbage, or compacted away since the listing) are the parts listed again and checked
    one by one, and the readable ones read: a compaction puts its file before it deletes the
    parts, so the new listing holds every row."""
    files = LedgerFiles(place, options)
    try:
        return _scan(files, files.parts(), columns)
    except duckdb.Error:
        return _scan(files, files.readable_split(files.parts())[0], columns)


def _scan(files: LedgerFiles, paths: list[str], columns: list[str] | None) -> list[dict]:
    if not paths:
        return []
    wanted = ("* EXCLUDE (filename, file_row_number)" if columns is None
              else ", ".join(dict.fromkeys(["event_id", *columns])))
    with files.attach(duckdb.connect()) as con:
        con.execute("SET TimeZone = 'UTC'")  # event times come back as UTC datetimes
        found = con.execute(
            f"SELECT {wanted} FROM read_parquet(?, union_by_name = true, hive_partitioning = "
            "false, filename = true, file_row_number = true) QUALIFY row_number() OVER "
            "(PARTITION BY event_id ORDER BY filename, file_row_number) = 1 "
            "ORDER BY filename, file_row_number", [paths])
        names = [d[0] for d in found.description]
        rows = [dict(zip(names, values, strict=True)) for values in found.fetchall()]
    if columns is None or "labels" in columns:
        for row in rows:
            row["labels"] = dict(row.get("labels") or {})
    return rows
