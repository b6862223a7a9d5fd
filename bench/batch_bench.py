"""Batch makespan against the ideal: N time-scaled Kling requests through run_batch (tasks
fan-out) on the sandbox with shared rendering, against the lower bound computed from the same
jobs' latencies (read from the sandbox's own timelines) and the account's concurrency limit:
max(longest job, sum of latencies / slots). Slot utilisation = sum of latencies / (slots x
makespan). Also the peak RSS of the process running the batch (the worker).

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
            from providers.catalog import load_catalog
            from tasks.limits import catalog_limits

            slots = catalog_limits(load_catalog())["provider:kling:standard"]
            started = time.perf_counter()
            cpu = time.process_time()
            result = asyncio.run(run_batch(str(manifest)))
            makespan = time.perf_counter() - started
            cpu = time.process_time() - cpu
            latencies = []
            for row in server.usage():
                job = server.admin.get(f"/jobs/{row['job_id']}").json()
                latencies.append(job["completes_at"] - job["created_at"])
            stats = server.stats()
        finally:
            server.stop()
    ideal = max(max(latencies), sum(latencies) / slots)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"batch of {n} Kling 5 s 720p requests (time_scale {TIME_SCALE}, {slots} slots, "
          "shared rendering; includes the temporary Prefect server's start)")
    print(f"  done {result.done}, failed {result.failed}, provider 429s "
          f"{stats.get('429:kling', 0)}, peak in flight {result.peak_in_flight}")
    print(f"  makespan {makespan:8.1f} s   ideal {ideal:8.1f} s   ratio {makespan / ideal:5.2f}x")
    print(f"  slot utilisation {sum(latencies) / (slots * makespan):6.1%}   mean job latency "
          f"{sum(latencies) / len(latencies):.2f} s")
    print(f"  worker CPU {cpu:7.1f} s ({cpu / n * 1e3:.0f} ms a request)   peak RSS "
          f"{peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
