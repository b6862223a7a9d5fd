"""The full cost report over 10 million generated ledger rows in the part-file layout: a cold
build of the analytics file and the whole report (every view, projection, budget) against
pyarrow.compute doing the same group-bys for spend and unit costs (the baseline); then 100,000
new rows arrive and the file is brought up to date (issue 22: under 2 s). Each step in its own
process for time and peak memory. `REPORT_BENCH_ROWS` sets the size."""

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
    with tempfile.TemporaryDirectory() as tmp:
        ledger = str(Path(tmp) / "ledger")
        start = time.perf_counter()
        # generated in a child: ru_maxrss survives fork and exec, so this process stays small
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {ROOT!r}); "
                        "from pathlib import Path; from analytics.synthetic import bulk; "
                        f"bulk(Path({ledger!r}), {ROWS})"], check=True)
        made = time.perf_counter() - start
        ours = measure(DUCKDB.format(root=ROOT, tmp=tmp, ledger=ledger))
        base = measure(ARROW.format(ledger=ledger))
        update = measure(UPDATE.format(root=ROOT, tmp=tmp, ledger=ledger, rows=UPDATE_ROWS,
                                       first=ROWS))
    assert int(update[2]) == ROWS + UPDATE_ROWS, update
    print(f"cost report over {ROWS:,} ledger rows (generated in {made:.0f} s)")
    print(f"  duckdb cold build + full report {ours[0]:7.1f} s  peak RSS {ours[1]:7.0f} MiB  "
          f"(total ${float(ours[2]):,.0f})")
    print(f"  pyarrow.compute subset          {base[0]:7.1f} s  peak RSS {base[1]:7.0f} MiB  "
          f"(total ${float(base[2]):,.0f})")
    print(f"  ratio                           {ours[0] / base[0]:7.2f}x time, "
          f"{ours[1] / base[1]:.2f}x memory")
    print(f"  update after {UPDATE_ROWS:,} new rows  {update[0]:7.2f} s  "
          f"peak RSS {update[1]:7.0f} MiB")
    print(json.dumps({"rows": ROWS, "cold_report_s": round(ours[0], 2),
                      "cold_report_rss_mib": round(ours[1]), "pyarrow_s": round(base[0], 2),
                      "ratio": round(ours[0] / base[0], 3),
                      "update_100k_s": round(update[0], 3),
                      "update_rss_mib": round(update[1])}))


if __name__ == "__main__":
    main()
