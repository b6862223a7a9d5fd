"""The full cost report over 10 million generated ledger rows in the part-file layout: a cold
build of the analytics file and the whole report (every view, projection, budget) against the
baseline, pandas computing the same views from the same Parquet files (issue 22: DuckDB at
least 3x faster, in at most 4 GB), with pyarrow.compute doing a subset (spend and unit costs,
latency) beside it; then 100,000 new rows arrive and the file is brought up to date and read
(issue 22: under 2 s). Each step in its own process for time and peak memory; the last line
of output is the figures as JSON. `REPORT_BENCH_ROWS` sets the size."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = int(os.environ.get("REPORT_BENCH_ROWS", 10_000_000))
UPDATE_ROWS = 100_000
ROOT = str(Path(__file__).resolve().parents[1])

DUCKDB = """
import sys, time; sys.path.insert(0, {root!r})
from pathlib import Path
from analytics import db
from analytics.report import collect
from providers.catalog import load_catalog
start = time.perf_counter()
db.build(Path({tmp!r}) / "a.duckdb", {ledger!r})
with db.connect(Path({tmp!r}) / "a.duckdb", {ledger!r}) as con:
    report = collect(con, load_catalog(), period="all")
print(time.perf_counter() - start, sum(float(r["cost_usd"]) for r in report.tables["unit_costs"]))
"""

UPDATE = """
import sys, time; sys.path.insert(0, {root!r})
from pathlib import Path
from analytics import db
from analytics.synthetic import bulk
bulk(Path({ledger!r}), {rows}, seed=1, run="update", first_event={first})
start = time.perf_counter()
db.build(Path({tmp!r}) / "a.duckdb", {ledger!r})
with db.connect(Path({tmp!r}) / "a.duckdb", {ledger!r}) as con:
    n = con.execute("SELECT count(*) FROM ledger").fetchone()[0]
print(time.perf_counter() - start, n)
"""

# the baseline (issue 22): pandas computing the same views from the same Parquet files — the
# rows deduplicated by event id (earliest kept), then spend by day, the per-clip roll-up, unit
# costs, hidden costs, latency percentiles, quality rates, continuation savings, price drift
PANDAS = """
import sys, time
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
ledger = {ledger!r}
start = time.perf_counter()
COLS = ["event_id", "event_time", "event_kind", "provider", "model", "tier", "clip_id", "mode",
        "seconds_asked", "seconds_billed", "seconds_delivered", "resolution_asked",
        "resolution_actual", "queued_s", "running_s", "cost_usd", "charge_kind",
        "inspection_outcome"]
table = pq.read_table(ledger, columns=COLS)  # pandas' own Parquet reader, pyarrow's
# amounts as floats (pandas has no exact decimal column; object Decimals would be far slower)
table = table.set_column(table.schema.get_field_index("cost_usd"), "cost_usd",
                         table["cost_usd"].cast("float64"))
df = table.to_pandas()
# dedupe by event id, the earliest copy kept
df = df.sort_values("event_time", kind="stable").drop_duplicates("event_id", keep="first")
keys = ["provider", "model", "tier", "mode"]
df["day"] = df["event_time"].dt.floor("D")
df["charged"] = df["cost_usd"] > 0
spend = df.groupby(["day", *keys], dropna=False, observed=True).agg(
    cost_usd=("cost_usd", "sum"), charges=("charged", "sum")).reset_index()
insp = df["event_kind"] == "inspection"
rej = df["event_kind"] == "rejection"
df["sd_insp"] = df["seconds_delivered"].where(insp)
df["ra_insp"] = df["resolution_actual"].where(insp)
df["out_insp"] = df["inspection_outcome"].where(insp)
df["out_rej"] = df["inspection_outcome"].where(rej)
df["is_insp"] = insp
clips = df.groupby("clip_id", dropna=False).agg(
    provider=("provider", "first"), model=("model", "first"), tier=("tier", "first"),
    mode=("mode", "first"), seconds_delivered=("sd_insp", "max"),
    seconds_asked=("seconds_asked", "max"), resolution_asked=("resolution_asked", "max"),
    resolution_actual=("ra_insp", "max"), out_rej=("out_rej", "max"),
    out_insp=("out_insp", "max"), delivered=("is_insp", "any"), cost_usd=("cost_usd", "sum"),
    first_event=("event_time", "min")).reset_index()
clips["outcome"] = clips["out_rej"].fillna(clips["out_insp"])
rejected = clips["outcome"].fillna("").str.contains("rejected")
clips["accepted"] = clips["delivered"] & ~rejected
clips["sd_deliv"] = clips["seconds_delivered"].where(clips["delivered"])
units = clips.groupby(["provider", "model", "tier"], observed=True).agg(
    cost_usd=("cost_usd", "sum"), accepted_clips=("accepted", "sum"),
    delivered_seconds=("sd_deliv", "sum")).reset_index()
units["cost_per_delivered_second"] = (units["cost_usd"]
                                     / units["delivered_seconds"].replace(0, np.nan))
units["cost_per_accepted_clip"] = units["cost_usd"] / units["accepted_clips"].replace(0, np.nan)
gen = df["charge_kind"] == "generation"
rej_clip = df["clip_id"].isin(clips.loc[rejected, "clip_id"])
snap = gen & (df["seconds_billed"] > df["seconds_asked"]) & (df["mode"] != "extend")
hidden = pd.DataFrame({{
    "provider": df["provider"], "model": df["model"], "tier": df["tier"],
    "failed": df["cost_usd"].where(df["charge_kind"] == "failed_generation"),
    "requeue": df["cost_usd"].where(df["charge_kind"] == "requeue"),
    "storage": df["cost_usd"].where(df["charge_kind"] == "storage"),
    "rejected": df["cost_usd"].where(gen & rej_clip),
    "snapped": (df["cost_usd"] * (df["seconds_billed"] - df["seconds_asked"])
                / df["seconds_billed"]).where(snap)}}).groupby(
    ["provider", "model", "tier"], observed=True).sum(min_count=1)
done = df[(df["event_kind"] == "complete") & df["running_s"].notna()]
wait = done["queued_s"] + done["running_s"]
latency = wait.groupby([done["model"], done["seconds_billed"], done["resolution_asked"],
                        done["event_time"].dt.hour], observed=True).quantile(
    [0.5, 0.95, 0.99]).unstack()
kind = df["event_kind"]
outcome = df["inspection_outcome"].fillna("")
quality = pd.DataFrame({{"model": df["model"], "completed": kind == "complete",
                        "failed": kind == "fail", "inspected": insp,
                        "downgraded": insp & outcome.str.contains("downgraded"),
                        "flash": insp & outcome.str.contains("flash_frame"),
                        }}).groupby("model", observed=True).sum()
quality["success_rate"] = quality["completed"] / (
    quality["completed"] + quality["failed"]).replace(0, np.nan)
quality["downgrade_rate"] = quality["downgraded"] / quality["inspected"].replace(0, np.nan)
quality["flash_frame_rate"] = quality["flash"] / quality["inspected"].replace(0, np.nan)
cont = df[gen & df["mode"].isin(["extend", "storyboard"])].merge(
    clips[["clip_id", "seconds_delivered"]].rename(columns={{"seconds_delivered": "total"}}),
    on="clip_id", how="left")
cont["total"] = cont["total"].fillna(cont["seconds_billed"])
cont["scratch"] = cont["cost_usd"] / cont["seconds_billed"].replace(0, np.nan) * cont["total"]
savings = cont.groupby(["model", "mode"], observed=True).agg(
    paid=("cost_usd", "sum"), scratch=("scratch", "sum"))
charged = df[df["charge_kind"] != "none"]
drift = charged.assign(est=charged["cost_usd"].where(charged["charge_kind"] != "reconciled")
                       ).groupby(["provider", "model", "tier"], observed=True).agg(
    est=("est", "sum"), billed=("cost_usd", "sum"))
print(time.perf_counter() - start, units["cost_usd"].sum())
"""

ARROW = """
import sys, time
import pyarrow.dataset as ds, pyarrow.compute as pc
start = time.perf_counter()
table = ds.dataset({ledger!r}, format="parquet", partitioning="hive").to_table(columns=[
    "event_id", "event_time", "provider", "model", "tier", "mode", "cost_usd", "clip_id",
    "event_kind", "seconds_delivered", "queued_s", "running_s"])
first = pc.index_in(table["event_id"], table["event_id"])  # dedupe by event id
table = table.filter(pc.equal(first, pc.cast(pc.indices_nonzero(pc.is_valid(first)),
                                             "int32")))
day = pc.strftime(table["event_time"], format="%Y-%m-%d")
spend = table.append_column("day", day).group_by(
    ["day", "provider", "model", "tier", "mode"]).aggregate([("cost_usd", "sum")])
units = table.group_by(["provider", "model", "tier"]).aggregate(
    [("cost_usd", "sum"), ("seconds_delivered", "sum")])
done = table.filter(pc.equal(table["event_kind"], "complete"))
lat = pc.add(done["queued_s"], done["running_s"])
quant = pc.quantile(lat, q=[0.5, 0.95, 0.99])
print(time.perf_counter() - start, sum(float(v.as_py()) for v in units["cost_usd_sum"]))
"""


def measure(code: str) -> tuple[float, float, str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read().split()
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return float(out[0]), usage.ru_maxrss / 1024, out[1]


def main() -> None:
    if importlib.util.find_spec("pandas") is None:
        raise SystemExit("bench report: its baseline is pandas, which is not installed here "
                         "(pip install pandas)")
    with tempfile.TemporaryDirectory() as tmp:
        ledger = str(Path(tmp) / "ledger")
        start = time.perf_counter()
        # generated in a child: ru_maxrss survives fork and exec, so this process stays small
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); "
                        "from pathlib import Path; from analytics.synthetic import bulk; "
                        f"bulk(Path({ledger!r}), {ROWS})"], check=True)
        made = time.perf_counter() - start
        ours = measure(DUCKDB.format(root=ROOT, tmp=tmp, ledger=ledger))
        pandas = measure(PANDAS.format(ledger=ledger))
        arrow = measure(ARROW.format(ledger=ledger))
        update = measure(UPDATE.format(root=ROOT, tmp=tmp, ledger=ledger, rows=UPDATE_ROWS,
                                       first=ROWS))
    assert int(update[2]) == ROWS + UPDATE_ROWS, update
    print(f"cost report over {ROWS:,} ledger rows (generated in {made:.0f} s)")
    for name, (seconds, rss, total) in (("duckdb cold build + full report", ours),
                                        ("pandas, the same views", pandas),
                                        ("pyarrow.compute subset", arrow)):
        print(f"  {name:32s} {seconds:7.1f} s  peak RSS {rss:7.0f} MiB  "
              f"(total ${float(total):,.0f})")
    for name, (seconds, rss, _) in (("pandas", pandas), ("pyarrow", arrow)):
        print(f"  {name:8s} / duckdb               {seconds / ours[0]:7.2f}x time, "
              f"{rss / ours[1]:.2f}x memory")
    print(f"  update after {UPDATE_ROWS:,} new rows  {update[0]:7.2f} s  "
          f"peak RSS {update[1]:7.0f} MiB")
    print(json.dumps({"rows": ROWS, "cold_report_s": round(ours[0], 2),
                      "cold_report_rss_mib": round(ours[1]), "pandas_s": round(pandas[0], 2),
                      "pandas_rss_mib": round(pandas[1]),
                      "ratio_vs_pandas": round(pandas[0] / ours[0], 3),
                      "pyarrow_s": round(arrow[0], 2), "ratio": round(ours[0] / arrow[0], 3),
                      "update_100k_s": round(update[0], 3),
                      "update_rss_mib": round(update[1])}))


if __name__ == "__main__":
    main()
