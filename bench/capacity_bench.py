"""Capacity: N jobs in flight at once on one worker, every limit lifted, each job lasting
`--job-seconds` of wall time (issue 22, item 7). Done when 1,000 jobs are in flight at once,
no submit ends unknown, the worker's peak RSS is at most 1 GB and the makespan at most 1.2x
the ideal.

Limits lifted: a catalog copy (REELFLOW_CATALOG) and a copy of the sandbox's price file (its
tiers' concurrency; the sandbox has no knob for it, so its process starts with PRICES_FILE
pointing at the copy) both allow N jobs per account; the world is calm and without latency
spread (Kling's p95 = p50), its time scale set so a 5 s 720p Kling clip takes `--job-seconds`.
REELFLOW_HTTP_CONNECTIONS stays at its default: the pool is what is being measured.

Baseline, in the same run on the same sandbox: a bare asyncio + httpx script doing the same N
submits, polls (every poll hint, 2 s x time scale) and downloads, on a pool of as many sockets.
Ideal makespan = the longest job's latency (the sandbox's own timeline) + the bare run's submit
span (N submits at the sandbox's rate). Measured: one run_batch flow (fan_out=tasks) of N unique
rows in this process, against a temporary Prefect server in a subprocess whose CPU is read from
/proc. Peak in flight is counted from the sandbox's timelines (created -> completes).

`python -m bench capacity [--jobs 1000] [--job-seconds 45] [--profile]`. At the default size it
takes several minutes (two ~45 s waves of 1,000 jobs plus set-up and read-back), so it is not
in the default `python -m bench` set; the last line printed is one JSON object.
"""

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import re
import resource
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from sandbox.knobs import KLING_ACCESS_KEY, PRICES_FILE
from tests.sandbox.conftest import kling_token
from tests.sandbox_process import SandboxProcess, start_sandbox

# the seed's median of a 5 s 1080p Kling clip, scaled to 720p as the sandbox and catalog do
MEDIAN_720P_5S = 38 * ((1280 * 720) / (1920 * 1080)) ** 0.5
POLL_HINT_S = 2.0
TICKS = os.sysconf("SC_CLK_TCK")
# the sandbox with its price file swapped for the copy named by argv[1]
_LAUNCH = ("import sys; from pathlib import Path; import sandbox.knobs as k; "
           "k.PRICES_FILE = Path(sys.argv.pop(1)); from sandbox.server import main; "
           "sys.exit(main())")


def _lifted(text: str, n: int) -> str:
    """Every `concurrency = K` of a TOML file raised to at least n."""
    return re.sub(r"(?m)^(\s*(?:tiers\.\w+ = \{.*)?concurrency = )(\d+)",
                  lambda m: f"{m.group(1)}{max(n, int(m.group(2)))}", text)


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU of a process and its live descendants, from /proc."""
    total, todo = 0.0, [pid]
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        todo.extend(children.get(current, []))
    return total


def _rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """The highest RSS of this process seen while it runs (sampled every 0.2 s)."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, _rss_mib())

    def __enter__(self) -> "PeakRss":
        self.peak = _rss_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


async def bare(url: str, out: Path, n: int, tag: str, poll_s: float,
               connections: int) -> dict[str, float]:
    """N Kling submits, polls and downloads at once on one pool, as a short script would."""
    headers = {"Authorization": f"Bearer {kling_token(KLING_ACCESS_KEY, exp_in=7200)}"}
    limits = httpx.Limits(max_connections=connections,
                          max_keepalive_connections=max(1, connections // 2))
    timeout = httpx.Timeout(60, pool=None)
    gate = asyncio.Semaphore(connections)
    submitted: list[float] = []
    polls = 0
    started = time.perf_counter()

    async with httpx.AsyncClient(base_url=url + "/kling", headers=headers, timeout=timeout,
                                 limits=limits) as client:
        async def one(i: int) -> None:
            nonlocal polls
            async with gate:
                response = await client.post("/v1/videos/text2video", json={
                    "model_name": "kling-v3", "prompt": f"bare capacity {i} {tag}",
                    "duration": "5", "mode": "std"})
            task = response.raise_for_status().json()["data"]
            submitted.append(time.perf_counter() - started)
            while True:
                await asyncio.sleep(poll_s)
                async with gate:
                    body = (await client.get(
                        f"/v1/videos/text2video/{task['task_id']}")).json()
                polls += 1
                if body["data"]["task_status"] == "succeed":
                    break
                if body["data"]["task_status"] == "failed":
                    raise RuntimeError(f"bare job {task['task_id']} failed")
            video = body["data"]["task_result"]["videos"][0]["url"]
            async with gate, client.stream("GET", video) as stream:
                with (out / f"{i}.mp4").open("wb") as sink:
                    async for chunk in stream.aiter_bytes():
                        sink.write(chunk)

        await asyncio.gather(*(one(i) for i in range(n)))
    return {"submit_span_s": max(submitted), "makespan_s": time.perf_counter() - started,
            "polls_per_job": polls / n}


def _timelines(server: SandboxProcess, prefix: str, tag: str,
               limit: int | None = None) -> list[tuple[float, float]]:
    """(created, completes) of the jobs whose prompt starts with `prefix` and holds `tag`."""
    jobs = [j for j in server.jobs(prompt=tag) if j["prompt"].startswith(prefix)]
    spans = []
    for job in jobs[:limit]:
        timeline = server.admin.get(f"/jobs/{job['id']}").json()
        spans.append((timeline["created_at"], timeline["completes_at"]))
    return spans


def _peak_in_flight(spans: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    peak = held = 0
    for _, step in events:
        held += step
        peak = max(peak, held)
    return peak


def _start_prefect_server():
    """The temporary Prefect server a run without PREFECT_API_URL uses, started before the
    clock does."""
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return server


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    n, time_scale = args.jobs, args.job_seconds / MEDIAN_720P_5S
    prices = tmp / "prices.toml"
    prices.write_text(_lifted(PRICES_FILE.read_text(encoding="utf-8"), n), encoding="utf-8")
    from providers.catalog import DEFAULT_CATALOG

    catalog = tmp / "catalog.toml"
    catalog.write_text(_lifted(DEFAULT_CATALOG.read_text(encoding="utf-8"), n),
                       encoding="utf-8")
    server = start_sandbox(tmp / "sandbox", "--calm", "--shared-render",
                           time_scale=time_scale, launcher=("-c", _LAUNCH, str(prices)))
    prefect = None
    try:
        world = server.knobs()["kling"]
        server.knobs(kling={"p95_5s": world["p50_5s"]})  # every job the median: no spread
        os.environ.update({"REELFLOW_HOME": str(tmp / "home"), "REELFLOW_SANDBOX": server.url,
                           "REELFLOW_SANDBOX_TIME_SCALE": str(time_scale),
                           "REELFLOW_CATALOG": str(catalog),
                           "REELFLOW_SUBSCRIPTIONS": "kling:standard"})
        tag = uuid.uuid4().hex[:8]

        (tmp / "bare").mkdir()
        sandbox_cpu = _proc_cpu_s(server.proc.pid)
        cpu = time.process_time()
        base = asyncio.run(bare(server.url, tmp / "bare", n, tag, POLL_HINT_S * time_scale,
                                int(os.environ.get("REELFLOW_HTTP_CONNECTIONS", "32"))))
        base["cpu_s"] = time.process_time() - cpu
        base["sandbox_cpu_s"] = _proc_cpu_s(server.proc.pid) - sandbox_cpu
        base["longest_s"] = max(end - start for start, end in
                                _timelines(server, "bare capacity", tag, 50))

        manifest = tmp / "capacity.jsonl"
        manifest.write_text("\n".join(json.dumps(
            {"prompt": f"capacity clip {i} {tag}", "duration": 5, "resolution": "720p"})
            for i in range(n)))
        from flows.batch import run_batch
        from models.batch import BatchRequest
        from tasks.batch_summary import BatchIncomplete

        prefect = _start_prefect_server()
        server_cpu, sandbox_cpu = _proc_cpu_s(prefect.server_process.pid), \
            _proc_cpu_s(server.proc.pid)
        profile = cProfile.Profile() if args.profile else None
        failures = ""
        epoch, started, cpu = time.time(), time.perf_counter(), time.process_time()
        with PeakRss() as rss:
            if profile:
                profile.enable()
            try:
                result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
            except BatchIncomplete as err:  # still a measurement: say what failed
                result, failures = err.result, str(err)
            finally:
                if profile:
                    profile.disable()
        makespan, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_cpu = _proc_cpu_s(prefect.server_process.pid) - server_cpu
        sandbox_cpu = _proc_cpu_s(server.proc.pid) - sandbox_cpu
        server_rss = _rss_mib(prefect.server_process.pid)
        spans = _timelines(server, "capacity clip", tag)
        from storage.journal_folder import FolderJournal
        records = FolderJournal(tmp / "home" / "journal").records()
        unknown = sum(1 for r in records for s in r.steps if s.state == "unknown")
        stats = server.stats()
    finally:
        server.stop()
        if prefect is not None:
            prefect.stop()
    if profile:
        text = io.StringIO()  # own time first: an await's cumulative time is not CPU
        stats_ = pstats.Stats(profile, stream=text)
        stats_.sort_stats("tottime").print_stats(30)
        stats_.sort_stats("cumulative").print_stats(20)
        print(text.getvalue())
    longest = max(end - start for start, end in spans)
    ideal = longest + base["submit_span_s"]
    return {
        "jobs": n, "job_seconds": args.job_seconds, "time_scale": round(time_scale, 4),
        "peak_in_flight": _peak_in_flight(spans), "provider_jobs": len(spans),
        "slot_peak": result.peak_in_flight, "done": result.done, "failed": result.failed,
        "left": result.left, "unknown_submits": unknown,
        "provider_429s": stats.get("429:kling", 0), "failures": failures[:600],
        "first_submit_s": round(min(start for start, _ in spans) - epoch, 1),
        "last_submit_s": round(max(start for start, _ in spans) - epoch, 1),
        "last_completion_s": round(max(end for _, end in spans) - epoch, 1),
        "tail_s": round(makespan - (max(end for _, end in spans) - epoch), 1),
        "makespan_s": round(makespan, 1), "ideal_s": round(ideal, 1),
        "makespan_ratio": round(makespan / ideal, 3), "longest_job_s": round(longest, 1),
        "worker_cpu_ms_per_job": round(cpu / n * 1e3, 1),
        "server_cpu_ms_per_job": round(server_cpu / n * 1e3, 1),
        "sandbox_cpu_ms_per_job": round(sandbox_cpu / n * 1e3, 1),
        "worker_rss_mib": round(rss.peak, 0),
        "worker_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "server_rss_mib": round(server_rss, 0),
        "bare_makespan_s": round(base["makespan_s"], 1),
        "bare_makespan_ratio": round(base["makespan_s"] / ideal, 3),
        "bare_submit_span_s": round(base["submit_span_s"], 1),
        "bare_cpu_ms_per_job": round(base["cpu_s"] / n * 1e3, 1),
        "bare_sandbox_cpu_ms_per_job": round(base["sandbox_cpu_s"] / n * 1e3, 1),
        "bare_polls_per_job": round(base["polls_per_job"], 1),
        "load": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--job-seconds", type=float, default=45.0,
                        help="wall seconds a 5 s 720p Kling job lasts")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the measured run and print its top functions (slows it)")
    args = parser.parse_args(argv)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args, Path(tmp))
    print(f"capacity: {r['jobs']} Kling 5 s 720p jobs of ~{r['job_seconds']:.0f} s "
          f"(time_scale {r['time_scale']}), limits lifted; load {load[0]:.2f} at start, "
          f"{r['load']:.2f} at end (2 shared cores)")
    print(f"  done {r['done']}, failed {r['failed']}, left {r['left']}, unknown submits "
          f"{r['unknown_submits']}, provider 429s {r['provider_429s']}; peak in flight "
          f"{r['peak_in_flight']} at the provider (slots held {r['slot_peak']})")
    if r["failures"]:
        print(f"  FAILED: {r['failures']}")
    print(f"  ideal {r['ideal_s']:7.1f} s (longest job {r['longest_job_s']:.1f} s + "
          f"{r['bare_submit_span_s']:.1f} s of submits at the sandbox's rate)")
    print(f"  run_batch  makespan {r['makespan_s']:7.1f} s  ratio {r['makespan_ratio']:5.2f}x   "
          f"worker CPU {r['worker_cpu_ms_per_job']:6.1f} ms/job  server CPU "
          f"{r['server_cpu_ms_per_job']:6.1f} ms/job  sandbox CPU "
          f"{r['sandbox_cpu_ms_per_job']:6.1f} ms/job")
    print(f"             submits from +{r['first_submit_s']:.1f} s to +{r['last_submit_s']:.1f}"
          f" s, the last job done at the provider at +{r['last_completion_s']:.1f} s, then "
          f"{r['tail_s']:.1f} s to the end (detection, downloads, archive, inspection, "
          "reconciliation)")
    print(f"  bare httpx makespan {r['bare_makespan_s']:7.1f} s  ratio "
          f"{r['bare_makespan_ratio']:5.2f}x   CPU {r['bare_cpu_ms_per_job']:6.1f} ms/job "
          f"({r['bare_polls_per_job']:.0f} polls a job)  sandbox CPU "
          f"{r['bare_sandbox_cpu_ms_per_job']:6.1f} ms/job")
    bare_cpu = max(r["bare_cpu_ms_per_job"], 0.1)
    ours = r["worker_cpu_ms_per_job"] + r["server_cpu_ms_per_job"]
    print(f"  ratio      worker CPU {r['worker_cpu_ms_per_job'] / bare_cpu:5.1f}x bare, "
          f"worker + server {ours / bare_cpu:5.1f}x bare")
    print(f"  worker peak RSS {r['worker_rss_mib']:.0f} MiB (process max {r['worker_maxrss_mib']}"
          f" MiB)   Prefect server RSS at the end {r['server_rss_mib']:.0f} MiB")
    met = (r["peak_in_flight"] >= r["jobs"] and r["unknown_submits"] == 0 and r["failed"] == 0
           and r["worker_rss_mib"] <= 1024 and r["makespan_ratio"] <= 1.2)
    print(f"  targets (all {r['jobs']} in flight, 0 unknown, RSS <= 1 GB, makespan <= 1.2x): "
          f"{'met' if met else 'NOT met'}")
    print(json.dumps({k: v for k, v in r.items() if k != "failures"}, sort_keys=True))


if __name__ == "__main__":
    main()
