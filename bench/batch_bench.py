"""Batch makespan against the ideal: N time-scaled Kling requests through run_batch (tasks
fan-out) on the sandbox with shared rendering, against the lower bound computed from the same
jobs' latencies (read from the sandbox's own timelines) and the account's concurrency limit:
max(longest job, sum of latencies / slots). Slot utilisation = sum of latencies / (slots x
makespan). Also the worker's CPU per request and its share of the makespan (at this time
scale one worker is CPU-bound: that share near 100% says so), its peak RSS, and where the
makespan went: until the first job reached the provider (flow start, plan, rows prepared), the
submits, and after the last job ended there (the last downloads, inspections, reconciliation),
with the slots' utilisation between the first submit and the last completion. Ends with one
line of JSON.

`python -m bench batch` (N=1000, time_scale 0.05: a 5 s Kling job takes ~2 s); set
REELFLOW_BENCH_BATCH=N for another size.
"""

import asyncio
import json
import os
import resource
import tempfile
import time
import uuid
from pathlib import Path

from tests.sandbox_process import start_sandbox

TIME_SCALE = 0.05


def _start_prefect_server() -> float:
    """The temporary Prefect server a run without PREFECT_API_URL starts on first use, started
    before the clock does: a worker talks to a server that is already up."""
    from prefect.server.api.server import SubprocessASGIServer

    started = time.perf_counter()
    SubprocessASGIServer().start()
    return time.perf_counter() - started


def main() -> None:
    n = int(os.environ.get("REELFLOW_BENCH_BATCH", "1000"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sandbox(Path(tmp) / "sandbox", "--calm", "--shared-render",
                               time_scale=TIME_SCALE)
        try:
            os.environ.update({"REELFLOW_HOME": str(Path(tmp) / "home"),
                               "REELFLOW_SANDBOX": server.url,
                               "REELFLOW_SANDBOX_TIME_SCALE": str(TIME_SCALE),
                               "REELFLOW_SUBSCRIPTIONS": "kling:standard"})
            manifest = Path(tmp) / "batch.jsonl"
            tag = uuid.uuid4().hex[:8]
            manifest.write_text("\n".join(json.dumps(
                {"prompt": f"bench clip {i} {tag}", "duration": 5, "resolution": "720p"})
                for i in range(n)))
            from flows.batch import run_batch
            from models.batch import BatchRequest
            from providers.catalog import load_catalog
            from tasks.batch_summary import BatchIncomplete
            from tasks.limits import catalog_limits

            slots = catalog_limits(load_catalog())["provider:kling:standard"]
            server_s = _start_prefect_server()
            started, epoch = time.perf_counter(), time.time()
            cpu = time.process_time()
            failures = ""
            try:
                result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
            except BatchIncomplete as err:  # still a measurement: say what failed
                result, failures = err.result, str(err)
            makespan = time.perf_counter() - started
            cpu = time.process_time() - cpu
            latencies, created, completed = [], [], []
            for row in server.usage():
                job = server.admin.get(f"/jobs/{row['job_id']}").json()
                latencies.append(job["completes_at"] - job["created_at"])
                created.append(job["created_at"] - epoch)
                completed.append(job["completes_at"] - epoch)
            stats = server.stats()
        finally:
            server.stop()
    ideal = max(max(latencies), sum(latencies) / slots)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"batch of {n} Kling 5 s 720p requests (time_scale {TIME_SCALE}, {slots} slots, "
          f"shared rendering; the temporary Prefect server took {server_s:.1f} s to start, "
          "not counted)")
    print(f"  done {result.done}, failed {result.failed}, provider 429s "
          f"{stats.get('429:kling', 0)}, peak in flight {result.peak_in_flight}")
    if failures:
        print(f"  FAILED: {failures[:600]}")
    print(f"  makespan {makespan:8.1f} s   ideal {ideal:8.1f} s   ratio {makespan / ideal:5.2f}x")
    utilisation = sum(latencies) / (slots * makespan)
    first, last = min(created), max(completed)
    steady = sum(latencies) / (slots * (last - first))
    print(f"  slot utilisation {utilisation:6.1%}   mean job latency "
          f"{sum(latencies) / len(latencies):.2f} s")
    print(f"  first job at the provider +{first:.1f} s, last submit +{max(created):.1f} s, last "
          f"job ended there +{last:.1f} s, then {makespan - last:.1f} s to the end; slot "
          f"utilisation from the first submit to the last completion {steady:6.1%}")
    print(f"  worker CPU {cpu:7.1f} s ({cpu / n * 1e3:.0f} ms a request, busy "
          f"{cpu / makespan:.0%} of the makespan: near 100% = CPU-bound at this time scale)   "
          f"peak RSS {peak_mib:.0f} MiB")
    print(json.dumps({"batch": {
        "requests": n, "slots": slots, "done": result.done, "failed": result.failed,
        "makespan_s": round(makespan, 1), "ideal_s": round(ideal, 1),
        "makespan_ratio": round(makespan / ideal, 3), "slot_utilisation": round(utilisation, 3),
        "steady_slot_utilisation": round(steady, 3), "first_submit_s": round(first, 1),
        "last_submit_s": round(max(created), 1), "last_completion_s": round(last, 1),
        "tail_s": round(makespan - last, 1), "worker_cpu_ms_per_request": round(cpu / n * 1e3),
        "worker_busy_share": round(cpu / makespan, 3), "peak_rss_mib": round(peak_mib)}},
        sort_keys=True))


if __name__ == "__main__":
    main()
