"""A generated ledger in the real part-file layout, for tests with hand-computed answers and for
the 10-million-row benchmark."""

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models import LEDGER_SCHEMA


def _ids(prefix: str, n: int, offset: int = 0) -> list[str]:
    return [hashlib.sha256(f"{prefix}{i + offset}".encode()).hexdigest()[:32]
            for i in range(n)]


def clip_rows(*, n: int, provider: str, model: str, tier: str, seconds_asked: float,
              seconds_billed: int, cost: str, resolution: str = "1080p",
              start: datetime = datetime(2026, 11, 1, 12, tzinfo=UTC), latency_s: float = 40.0,
              hour: int | None = None, outcome: str = "ok", mode: str = "text",
              actual: str = "1920x1080", prefix: str | None = None, run: str = "synthetic",
              offset: int = 0, labels: dict[str, str] | None = None) -> dict[str, list]:
    """Columns for n clips: a submit, a complete charge and an inspection row each."""
    prefix = prefix or f"{model}-{tier}-{mode}-"
    clips = _ids(prefix + "clip", n, offset)
    jobs = _ids(prefix + "job", n, offset)
    columns: dict[str, list] = {name: [] for name in LEDGER_SCHEMA.names}
    for i in range(n):
        when = start + timedelta(minutes=i)
        if hour is not None:
            when = when.replace(hour=hour)
        for kind, charge, usd in (("submit", "none", "0"), ("complete", "generation", cost),
                                  ("inspection", "none", "0")):
            values = {
                "event_id": hashlib.sha256(f"{clips[i]}{kind}".encode()).hexdigest()[:32],
                "event_time": when, "event_kind": kind, "provider": provider, "model": model,
                "tier": tier, "account": f"{provider}:{tier}", "endpoint": "sandbox",
                "job_id": jobs[i], "clip_id": clips[i], "parent_clip_id": None,
                "storyboard_id": None, "batch_id": None, "mode": mode,
                "seconds_asked": seconds_asked, "seconds_billed": float(seconds_billed),
                "seconds_delivered": seconds_asked if kind == "inspection" else None,
                "resolution_asked": resolution,
                "resolution_actual": actual if kind == "inspection" else None, "audio": False,
                "queued_s": latency_s * 0.25 if kind == "complete" else None,
                "running_s": latency_s * 0.75 if kind == "complete" else None,
                "detection_delay_s": None, "download_s": None, "inspection_s": None,
                "cost_usd": Decimal(usd), "charge_kind": charge,
                "inspection_outcome": outcome if kind == "inspection" else None,
                "flow_run_id": run, "labels": labels or {},
            }
            for name in LEDGER_SCHEMA.names:
                columns[name].append(values[name])
    return columns


def charge_rows(*, n: int, provider: str, model: str, tier: str, kind: str, charge: str,
                cost: str, start: datetime = datetime(2026, 11, 2, 9, tzinfo=UTC),
                seconds: float = 5, run: str = "synthetic",
                labels: dict[str, str] | None = None) -> dict[str, list]:
    """Columns for n stand-alone charges (failures, re-queues, storage)."""
    clips = _ids(f"{model}{kind}clip", n)
    columns: dict[str, list] = {name: [] for name in LEDGER_SCHEMA.names}
    for i in range(n):
        values = dict.fromkeys(LEDGER_SCHEMA.names)
        values.update({
            "event_id": hashlib.sha256(f"{clips[i]}{kind}{i}".encode()).hexdigest()[:32],
            "event_time": start + timedelta(minutes=i), "event_kind": kind,
            "provider": provider, "model": model, "tier": tier,
            "account": f"{provider}:{tier}", "endpoint": "sandbox",
            "job_id": _ids(f"{model}{kind}job", n)[i], "clip_id": clips[i], "mode": "text",
            "seconds_asked": seconds, "seconds_billed": seconds, "resolution_asked": "1080p",
            "cost_usd": Decimal(cost), "charge_kind": charge, "flow_run_id": run,
            "labels": labels or {}})
        for name in LEDGER_SCHEMA.names:
            columns[name].append(values[name])
    return columns


def write(root: Path, *column_sets: dict[str, list], rows_per_part: int = 5000) -> int:
    """Write rows as part files under date=/run= folders; returns the row count."""
    merged: dict[str, list] = {name: [] for name in LEDGER_SCHEMA.names}
    for columns in column_sets:
        for name in merged:
            merged[name].extend(columns[name])
    table = pa.table(merged, schema=LEDGER_SCHEMA)
    days = pc.strftime(table.column("event_time"), format="%Y-%m-%d")
    for day in sorted(set(days.to_pylist())):
        subset = table.filter(pc.equal(days, day))
        for run in sorted(set(subset.column("flow_run_id").to_pylist())):
            part = subset.filter(pc.equal(subset.column("flow_run_id"), run))
            folder = root / f"date={day}" / f"run={run}"
            folder.mkdir(parents=True, exist_ok=True)
            for n, offset in enumerate(range(0, part.num_rows, rows_per_part)):
                pq.write_table(part.slice(offset, rows_per_part), folder / f"part-{n:05d}.parquet")
    return table.num_rows


def _strings(indices: np.ndarray, values: list[str | None]) -> pa.Array:
    """A string column from small-vocabulary indices (fast: dictionary-decoded by Arrow)."""
    return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()),
                                          pa.array(values, pa.string())).cast(pa.string())


def bulk(root: Path, rows: int, *, seed: int = 0, run: str = "bulk", first_event: int = 0
         ) -> int:
    """Millions of plausible rows, fast (vectorised), in the same layout: one part per day in
    run=`run`, event ids counted from `first_event` (another run's rows are new events)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, 3, rows)
    prices = np.array([0.028, 0.028, 0.071])[pick]
    kind = rng.choice(5, rows, p=[0.33, 0.32, 0.32, 0.02, 0.01])  # submit complete insp fail rq
    seconds = rng.choice(np.array([5.0, 10.0, 15.0]), rows)
    cost = np.select([kind == 1, kind == 3, kind == 4],
                     [prices * seconds, 0.2 * prices * seconds, prices * seconds], 0.0)
    start = np.datetime64("2026-10-01T00:00:00", "us")
    times = start + (rng.integers(0, 60 * 86400, rows) * 1_000_000).astype("timedelta64[us]")
    latency = rng.lognormal(np.log(40), 0.55, rows)
    done, inspected = kind == 1, kind == 2
    clip = pc.cast(pa.array(rng.integers(0, rows // 3 + 1, rows)), pa.string())
    columns = {
        "event_id": pc.cast(pa.array(np.arange(first_event, first_event + rows)), pa.string()),
        "event_time": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
        "event_kind": _strings(kind, ["submit", "complete", "inspection", "fail", "requeue"]),
        "provider": _strings(pick, ["kling", "fal", "sora"]),
        "model": _strings(pick, ["kling-v3", "kling-v3-fal", "sora-2"]),
        "tier": _strings(pick, ["standard", "standard", "api"]),
        "account": _strings(pick, ["kling:standard", "fal:standard", "sora:api"]),
        "endpoint": _strings(np.zeros(rows, np.int32), ["sandbox"]),
        "job_id": clip, "clip_id": clip,
        "mode": _strings(np.zeros(rows, np.int32), ["text"]),
        "seconds_asked": seconds, "seconds_billed": seconds,
        "seconds_delivered": pa.array(np.where(inspected, seconds, np.nan), from_pandas=True),
        "resolution_asked": _strings(np.zeros(rows, np.int32), ["1080p"]),
        "resolution_actual": _strings(np.where(inspected, 0, 1), ["1920x1080", None]),
        "queued_s": pa.array(np.where(done, latency * 0.25, np.nan), from_pandas=True),
        "running_s": pa.array(np.where(done, latency * 0.75, np.nan), from_pandas=True),
        "cost_usd": pa.array(np.round(cost, 6)).cast(pa.decimal128(18, 6)),
        "charge_kind": _strings(kind, ["none", "generation", "none", "failed_generation",
                                       "requeue"]),
        "inspection_outcome": _strings(np.where(inspected, 0, 1), ["ok", None]),
        "flow_run_id": _strings(np.zeros(rows, np.int32), [run]),
    }
    table = pa.table({f.name: pa.array(columns.get(f.name, pa.nulls(rows, f.type))).cast(f.type)
                      for f in LEDGER_SCHEMA}, schema=LEDGER_SCHEMA)
    days = (times.astype("datetime64[D]") - np.datetime64("2026-10-01")).astype(int)
    order = np.argsort(days, kind="stable")
    table, days = table.take(pa.array(order)), days[order]
    bounds = np.searchsorted(days, np.arange(days.max() + 2))
    for day in range(days.max() + 1):
        part = table.slice(bounds[day], bounds[day + 1] - bounds[day])
        if part.num_rows:
            label = str(np.datetime64("2026-10-01") + day)
            folder = root / f"date={label}" / f"run={run}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(part, folder / "part-00000.parquet")
    return rows
