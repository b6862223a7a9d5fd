"""The ledger writer: append-only Parquet part files with the one fixed schema.

Layout: <root>/date=<event date>/run=<flow run id>/part-<n>.parquet, one small file flushed at
each charge event, so a killed run loses nothing it had already paid for. Part numbers are taken
with O_EXCL, so two writers in one run never collide; files appear whole (temp name, rename).
Rows carry a deterministic event_id (clip, step, job, kind): a charge written twice by a run
killed between writing and journalling is the same event, and readers count it once.
Every row carries the labels of the request it was made from (`event_row`): a run's rows the
labels of that run's request, even where the journal holds an earlier run's.
"""

import hashlib
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow.parquet as pq

from models import ClipRequest, LedgerRow, RoutePlan, account_key, rows_to_table
from models.ledger import ChargeKind, EventKind

P = TypeVar("P", str, Path)


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
    def __init__(self, root: Path, run_id: str):
        self.root, self.run_id = root, run_id
        self._next: dict[Path, int] = {}  # folder -> the part number to try next

    def append(self, rows: list[LedgerRow]) -> Path | None:
        """Flush rows now, as one part file per event date."""
        written = None
        for date in sorted({row.event_time.date() for row in rows}):
            batch = [row for row in rows if row.event_time.date() == date]
            folder = self.root / f"date={date.isoformat()}" / f"run={self.run_id}"
            folder.mkdir(parents=True, exist_ok=True)
            path = self.claim(folder)
            tmp = folder / f".{path.name}.tmp"
            pq.write_table(rows_to_table(batch), tmp)
            tmp.replace(path)
            written = path
        return written

    def claim(self, folder: Path) -> Path:
        """The next part number, claimed by a hidden marker (readers skip dot-files). The
        folder's markers are counted once per writer, not at every write (a run of 1,000 clips
        writes ~6,000 parts into one folder); a number another writer took meanwhile is
        refused by the exclusive create and the next one tried."""
        n = self._next.get(folder)
        if n is None:
            n = len(list(folder.glob(".part-*.claim")))
        while True:
            try:
                fd = os.open(folder / f".part-{n:05d}.claim", os.O_CREAT | os.O_EXCL |
                             os.O_WRONLY)
                os.close(fd)
                self._next[folder] = n + 1
                return folder / f"part-{n:05d}.parquet"
            except FileExistsError:
                n += 1


def part_files(root: Path) -> list[Path]:
    """The ledger's part files, in order (a dot-file is a writer's, not yet a part)."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def ledger_parts(root: Path) -> tuple[list[Path], list[Path]]:
    """(readable, unreadable) part files: a part whose Parquet footer cannot be read (garbage,
    truncated) is skipped by every reader and reported, never silently."""
    return readable_split(part_files(root))


def readable_split(paths: list[P]) -> tuple[list[P], list[P]]:
    """(readable, unreadable) of `paths`, footer by footer."""
    readable: list[P] = []
    unreadable: list[P] = []
    for path in paths:
        try:
            pq.read_metadata(path)
        except (OSError, ValueError):  # pyarrow.ArrowInvalid is a ValueError
            unreadable.append(path)
        else:
            readable.append(path)
    return readable, unreadable


def read_ledger(root: Path, columns: list[str] | None = None) -> list[dict]:
    """Every row of the readable parts, once per event_id, in the parts' order (for tests,
    the CLI and reconciliation; analytics builds views); only `columns` (and event_id) when
    given. Labels as a dict; a part older than a column has it as None.

    Read by DuckDB in one scan: a run of 1,000 clips leaves ~6,000 one-event parts, which
    pyarrow opened one by one in ~10 s and DuckDB reads in ~1 s. Only when a part cannot be
    read are the parts checked one by one, and the readable ones read."""
    try:
        return _scan(part_files(root), columns)
    except duckdb.Error:
        return _scan(ledger_parts(root)[0], columns)


def _scan(paths: list[Path], columns: list[str] | None) -> list[dict]:
    if not paths:
        return []
    wanted = ("* EXCLUDE (filename, file_row_number)" if columns is None
              else ", ".join(dict.fromkeys(["event_id", *columns])))
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")  # event times come back as UTC datetimes
        found = con.execute(
            f"SELECT {wanted} FROM read_parquet(?, union_by_name = true, hive_partitioning = "
            "false, filename = true, file_row_number = true) QUALIFY row_number() OVER "
            "(PARTITION BY event_id ORDER BY filename, file_row_number) = 1 "
            "ORDER BY filename, file_row_number", [[str(p) for p in paths]])
        names = [d[0] for d in found.description]
        rows = [dict(zip(names, values, strict=True)) for values in found.fetchall()]
    if columns is None or "labels" in columns:
        for row in rows:
            row["labels"] = dict(row.get("labels") or {})
    return rows
