"""Polling against webhooks (issue 25): the same batch twice, one half after the other, each
through a fresh `scripts/stack.py up --workers 2` (Prefect server on SQLite, the webhook relay,
REELFLOW_WEBHOOK_URL on the workers) on a fresh sandbox (`--calm --shared-render`): (a)
`prefect deployment run run-batch/on-demand --watch` with chunk runs of 25 as deployments and
wait=poll — each chunk run's process polls its jobs to the end; (b) the same with wait=suspend —
each chunk run submits its clips, suspends once on all of their jobs (its process exits), the
sandbox's signed fal webhooks reach the relay, and the relay resumes the run once all of them
are back, which collects and archives the clips from the journal and the provider.

Rows: N text-only `kling-v3-fal` 5 s 720p requests (fal's queue protocol: ED25519-signed
webhooks). The sandbox's fal world is the catalog's own figures (p50 38 s, p95 94 s at 1080p, so
the poll plan's prior is the provider's truth), time-scaled so that the median 5 s 720p job takes
`job_s` of wall time (the spread stays the catalog's lognormal: a p95 job ~2.5x the median).
The fal account's concurrency (the catalog's, read by `reelflow limits sync` and by the suspend
admission, and the sandbox's price file, which has no knob) is lifted to N in both halves alike
— a catalog copy (REELFLOW_CATALOG) and the sandbox started with a copy of its price file, as
`bench capacity` does — so all N jobs can be in flight at once. REELFLOW_POLL_DEADLINE_K=200, as
the e2e stack: a slow job is never left pending.

Per half, from the send to `--watch` returning:
  - requests per job: the provider API requests the sandbox received (fal submit, status,
    result; file-host downloads of the video) by its own counter (GET /_admin/requests, which
    never counts /_admin), divided by N;
  - CPU per clip: utime+stime+cutime+cstime of each worker's process tree (its flow runs are its
    children, reaped into its cutime), the growth over the batch, divided by N; the relay's and
    the server's beside it (not in the per-clip figure; the polling half's relay is not idle
    either: the workers send every job's callback URL whatever the wait, and the relay takes
    each delivery, finding no run waiting);
  - live flow-run processes: /proc sampled every 0.5 s for this stack's processes (PREFECT_HOME
    under its state folder) holding PREFECT__FLOW_RUN_ID, classified afterwards by their run's
    deployment (the batch's own run, a chunk run, anything else such as a scheduled sweep, shown
    apart); the peak and mean of the batch's (own + chunk runs) and the share of samples with no
    chunk-run process alive; and, job by job, the share of its time at the provider (created
    to completed, the sandbox's timeline) during which a process of the chunk run waiting on it
    was alive — polling holds a process for all of it, a suspended run only while it submits
    its chunk's other jobs or collects;
  - delay from the provider's completion to the archived file, p50 and p95 over done clips: the
    completion instant is the sandbox's own job timeline (`completes_at` of GET
    /_admin/jobs/{id}); the archive instant is the modification time of the archived original
    (the journal record's `archive.path`: its last byte written, which is when the download
    ended), falling back to the record's `updated_at` where the file cannot be read;
  - double charges (jobs with more than one row on /_admin/usage, and clips the journal shows
    with more than one job), lost clips (rows not `done` in the journal at the end), the
    ledger against the bill (the batch's jobs, job by job, to the cent), the makespan; chunk
    runs' suspensions and the webhook deliveries, for (b).

Ratios are webhooks / polling. What to expect: polling spends status requests and a live
process per chunk for the whole render; webhooks spend one status per job at the park and one
at the wake, with no process alive while the jobs render, but a clip waits for the last job of
its chunk before its run is woken, and the wake itself (reschedule, worker pick-up, process
start) adds seconds: the delay is the price paid.

`python -m bench webhooks` (N=100, job_s=20: minutes); REELFLOW_BENCH_WEBHOOKS=N,
REELFLOW_BENCH_WEBHOOKS_JOB_S=S and REELFLOW_BENCH_WEBHOOKS_CHUNK=C for other sizes (the
issue's done-when: N=1000, S=60 — then more chunk runs than the 2 workers' 8 flow-run slots
take turns in the polling half, while suspended ones hold none). The workers',
relay's and server's logs of both halves are kept in a folder the output names. Ends with one
line of JSON.
"""

import bisect
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.capacity_bench import _LAUNCH, _lifted
from bench.fleet_bench import _stack, _take_down
from scripts.local_services import tree_cpu_seconds
from tests.sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKERS, MODEL = 2, "kling-v3-fal"
# requests per chunk run; REELFLOW_BENCH_WEBHOOKS_CHUNK for another
CHUNK = int(os.environ.get("REELFLOW_BENCH_WEBHOOKS_CHUNK", "25"))
HALVES = {"polling": "poll", "webhooks": "suspend"}
SAMPLE_S = 0.5


def _median_s() -> float:
    """The catalog's median latency of a 5 s 720p kling-v3-fal job, unscaled."""
    from providers import latency
    from providers.catalog import load_catalog

    row = load_catalog().row(MODEL)
    return latency.estimate(row.latency, 5, "720p", datetime.now(UTC)).p50_s


def _world() -> dict:
    """The sandbox's fal world: the catalog's latency figures."""
    from providers.catalog import load_catalog

    prior = load_catalog().row(MODEL).latency
    return {"p50_5s": prior.p50_5s, "p95_5s": prior.p95_5s, "p50_30s": prior.p50_30s}


def _environment(sandbox_url: str, time_scale: float, catalog: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_", "REELFLOW_"))},
            "REELFLOW_SANDBOX": sandbox_url, "REELFLOW_SANDBOX_TIME_SCALE": str(time_scale),
            "REELFLOW_POLL_DEADLINE_K": "200", "REELFLOW_SUBSCRIPTIONS": "fal:standard",
            "REELFLOW_CATALOG": str(catalog),
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(REPO)}


class Sampler(threading.Thread):
    """This stack's flow-run processes, every SAMPLE_S: a list of {run id: processes}, with
    the wall-clock instant of each sample beside it (`instants`)."""

    def __init__(self, state: Path):
        super().__init__(daemon=True)
        self.marker = f"PREFECT_HOME={state}/".encode()
        self.samples: list[Counter] = []
        self.instants: list[float] = []
        self.halt = threading.Event()

    def sample(self) -> Counter:
        runs: Counter = Counter()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                values = environ.read_bytes().split(b"\0")
            except OSError:
                continue
            if not any(v.startswith(self.marker) for v in values):
                continue
            run = next((v.split(b"=", 1)[1].decode() for v in values
                        if v.startswith(b"PREFECT__FLOW_RUN_ID=")), None)
            if run:
                runs[run] += 1
        return runs

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.monotonic()
            self.instants.append(time.time())
            self.samples.append(self.sample())
            self.halt.wait(max(0.0, SAMPLE_S - (time.monotonic() - started)))


def _kinds_of_runs(api_url: str, runs: set[str]) -> dict[str, str]:
    """Each flow run's kind by its deployment: batch (run-batch/on-demand), chunk, other."""
    names: dict[str, str] = {}
    kinds = {}
    with httpx.Client(base_url=api_url, timeout=30) as api:
        for run in runs:
            try:
                deployment = api.get(f"/flow_runs/{run}").json().get("deployment_id")
                if deployment and deployment not in names:
                    names[deployment] = api.get(f"/deployments/{deployment}").json()["name"]
            except (httpx.HTTPError, KeyError, ValueError):
                deployment = None
            name = names.get(deployment or "")
            kinds[run] = {"on-demand": "batch", "chunk": "chunk"}.get(name or "", "other")
    return kinds


def _processes(samples: list[Counter], kinds: dict[str, str]) -> dict:
    batch = [sum(n for run, n in s.items() if kinds.get(run) in ("batch", "chunk"))
             for s in samples]
    chunks = [sum(n for run, n in s.items() if kinds.get(run) == "chunk") for s in samples]
    other = [sum(n for run, n in s.items() if kinds.get(run) == "other") for s in samples]
    runs = [sum(kinds.get(run) in ("batch", "chunk") for run in s) for s in samples]
    return {"samples": len(samples), "peak": max(batch, default=0),
            "mean": statistics.fmean(batch) if batch else 0.0,
            "peak_runs_alive": max(runs, default=0),
            "no_chunk_share": (sum(c == 0 for c in chunks) / len(chunks)) if chunks else None,
            "peak_other": max(other, default=0),
            "chunk_runs_seen": sum(k == "chunk" for k in kinds.values())}


def _chunk_runs_of_prompts(api_url: str) -> dict[str, set[str]]:
    """Each request's prompt and the chunk runs that carried it (a chunk sent again after a
    crash is a second run with the same rows)."""
    owners: dict[str, set[str]] = {}
    with httpx.Client(base_url=api_url, timeout=60) as api:
        offset = 0
        while page := api.post("/flow_runs/filter", json={
                "deployments": {"name": {"any_": ["chunk"]}}, "offset": offset,
                "limit": 200}).json():
            for run in page:
                for row in run["parameters"]["chunk"]["rows"]:
                    owners.setdefault(row["request"]["prompt"], set()).add(run["id"])
            offset += len(page)
    return owners


def _held_share(sampler: Sampler, waits: list[tuple[set[str], float, float]]) -> float | None:
    """Of the jobs' time at the provider (created to completed, the sandbox's timeline), the
    share during which a process of the chunk run that waits on the job was alive: every
    sample inside each job's window counts as held or not, weighted alike."""
    held = total = 0
    instants = sampler.instants[:len(sampler.samples)]
    for owners, created, completes in waits:
        first, last = bisect.bisect_left(instants, created), bisect.bisect_right(
            instants, completes)
        for sample in sampler.samples[first:last]:
            total += 1
            held += any(sample.get(run) for run in owners)
    return held / total if total else None


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _clips(journal_place: str, tag: str) -> list:
    from storage.journal import open_journal

    journal = open_journal(journal_place, connections=2)
    try:
        return [r for r in journal.records() if r.request.prompt.endswith(tag)]
    finally:
        if close := getattr(journal, "close", None):
            close()


def _archived_at(record) -> float:
    """When the clip's original was archived: its file's last write, else the record's
    last transition."""
    if record.archive:
        with contextlib.suppress(OSError, ValueError):
            return Path(record.archive.path.removeprefix("file://")).stat().st_mtime
    return record.updated_at.timestamp()


def _suspensions(api_url: str) -> dict:
    """Chunk runs of the batch (the stack ran no other) and how often each was suspended."""
    with httpx.Client(base_url=api_url, timeout=30) as api:
        chunks = api.post("/flow_runs/filter", json={
            "deployments": {"name": {"any_": ["chunk"]}}}).json()
        counts = []
        for chunk in chunks:
            states = api.get("/flow_run_states/", params={"flow_run_id": chunk["id"]}).json()
            counts.append(sum(s["name"] == "Suspended" for s in states))
    return {"chunk_runs": len(chunks), "suspensions": sorted(counts),
            "chunk_states": dict(Counter(c["state_type"] for c in chunks))}


def _half(name: str, wait: str, n: int, job_s: float, scratch: Path, logs: Path) -> dict:
    """One run of the batch with `wait`, through a stack and a sandbox of its own."""
    started = time.monotonic()
    time_scale = job_s / _median_s()
    from providers.catalog import DEFAULT_CATALOG
    from sandbox.knobs import PRICES_FILE

    catalog, prices = scratch / f"catalog-{name}.toml", scratch / f"prices-{name}.toml"
    catalog.write_text(_lifted(DEFAULT_CATALOG.read_text(encoding="utf-8"), n),
                       encoding="utf-8")
    prices.write_text(_lifted(PRICES_FILE.read_text(encoding="utf-8"), n), encoding="utf-8")
    sandbox = start_sandbox(scratch / f"sandbox-{name}", "--calm", "--shared-render",
                            time_scale=time_scale, launcher=("-c", _LAUNCH, str(prices)))
    state = Path(tempfile.mkdtemp(prefix=f"reelflow-webhooks-{name}-"))
    env = _environment(sandbox.url, time_scale, catalog)
    info: dict = {}
    figures: dict = {"half": name, "wait": wait, "time_scale": time_scale}
    sampler = Sampler(state)
    try:
        sandbox.knobs(fal=_world())
        _stack(state, env, "up", "--workers", str(WORKERS))
        info = json.loads((state / "stack.json").read_text())
        figures["stack_up_s"] = time.monotonic() - started
        env["PREFECT_API_URL"] = api_url = info["api_url"]
        workers = {k: pid for k, pid in info["pids"].items() if k.startswith("worker-")}
        tag = uuid.uuid4().hex[:8]
        manifest = state / "batch.jsonl"
        manifest.write_text("\n".join(json.dumps(
            {"prompt": f"Webhooks bench {i} {tag}", "duration": 5, "resolution": "720p",
             "policy": MODEL}) for i in range(n)))
        requests_before = sandbox.admin.get("/requests").json()
        cpu_before = {k: tree_cpu_seconds(pid) for k, pid in workers.items()}
        relay_before = tree_cpu_seconds(info["pids"]["relay"])
        server_before = tree_cpu_seconds(info["pids"]["server"])
        sampler.start()
        sent, sent_at = time.monotonic(), time.time()
        batch = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "run-batch/on-demand", "--watch",
             "--watch-timeout", str(int(max(600, 40 * job_s + 3 * n))), "--param",
             "batch=" + json.dumps({"manifest": str(manifest), "fan_out": "deployments",
                                    "chunk_size": CHUNK, "wait": wait})],
            cwd=REPO, env=env, capture_output=True, text=True)
        figures["makespan_s"] = time.monotonic() - sent
        worker_cpu = sum(tree_cpu_seconds(pid) - cpu_before[k] for k, pid in workers.items())
        relay_cpu = tree_cpu_seconds(info["pids"]["relay"]) - relay_before
        server_cpu = tree_cpu_seconds(info["pids"]["server"]) - server_before
        sampler.halt.set()
        sampler.join()
        requests_after = sandbox.admin.get("/requests").json()
        figures |= {"batch_exit": batch.returncode, "worker_cpu_s": worker_cpu,
                    "relay_cpu_s": relay_cpu, "server_cpu_s": server_cpu}
        if run := re.search(r"UUID: ([0-9a-f-]{36})", batch.stdout):
            figures["batch_run_id"] = run.group(1)
        if batch.returncode != 0:
            # the watch's last lines (heartbeats, mostly) and its error
            figures["batch_tail"] = "\n".join((batch.stdout + batch.stderr).splitlines()[-30:])
        figures["requests"] = {
            key: requests_after["by_method"].get(key, 0) - requests_before["by_method"].get(
                key, 0) for key in requests_after["by_method"]}
        figures["requests_total"] = requests_after["total"] - requests_before["total"]
        kinds = _kinds_of_runs(api_url, {run for s in sampler.samples for run in s})
        figures["processes"] = _processes(sampler.samples, kinds)

        journal = info["worker_env"].get("REELFLOW_JOURNAL", str(state / "home" / "journal"))
        clips = _clips(journal, tag)
        figures["clip_states"] = dict(Counter(r.state for r in clips))
        figures["lost_clips"] = n - figures["clip_states"].get("done", 0)
        figures["clips_with_more_jobs"] = sum(
            len([s for s in r.every_step() if s.handle]) > 1 for r in clips)
        usage = sandbox.usage()
        rows_per_job = Counter(row["job_id"] for row in usage)
        figures["charges"] = len(usage)
        figures["double_charged_jobs"] = sum(count > 1 for count in rows_per_job.values())
        figures["jobs_created"] = len(sandbox.jobs(tag))
        figures |= _reconciled(info["worker_env"].get("REELFLOW_LEDGER",
                                                     str(state / "home" / "ledger")),
                               usage, {job for r in clips for job in r.job_ids})
        delays, latencies, waits = [], [], []
        owners = _chunk_runs_of_prompts(api_url)
        for record in clips:
            if record.state != "done" or not record.job_ids:
                continue
            job = sandbox.admin.get(f"/jobs/{record.job_ids[-1]}").json()
            latencies.append(job["completes_at"] - job["created_at"])
            delays.append(_archived_at(record) - job["completes_at"])
            waits.append((owners.get(record.request.prompt, set()), job["created_at"],
                          job["completes_at"]))
        figures["waiting_held_share"] = _held_share(sampler, waits)
        figures["delays_s"] = delays
        figures["job_latency_s"] = {"p50": _quantile(latencies, 0.5),
                                    "p95": _quantile(latencies, 0.95),
                                    "max": max(latencies, default=None)}
        figures["first_send_to_last_completion_s"] = max(
            (sandbox.admin.get(f"/jobs/{r.job_ids[-1]}").json()["completes_at"]
             for r in clips if r.job_ids), default=sent_at) - sent_at
        deliveries = sandbox.admin.get("/webhooks").json()["deliveries"]
        figures["webhooks"] = {
            "deliveries": len(deliveries),
            "states": dict(Counter(d["state"] for d in deliveries)),
            "attempt_codes": dict(Counter(str(a["status_code"]) for d in deliveries
                                          for a in d["attempts"]))}
        if wait == "suspend":
            figures |= _suspensions(api_url)
        relay_log = state / "relay.log"
        figures["relay_wakes"] = relay_log.read_text(errors="replace").count("woke run") \
            if relay_log.exists() else 0
    except Exception as failed:  # still a measurement of the other half: say what failed
        figures["error"] = f"{type(failed).__name__}: {str(failed)[-1500:]}"
    finally:
        sampler.halt.set()
        if sampler.is_alive():
            sampler.join()
        _take_down(state, env, sandbox, info, logs / name, figures)
        figures["half_s"] = time.monotonic() - started
    return figures


def _reconciled(ledger: str, usage: list[dict], jobs: set[str]) -> dict:
    """The batch's jobs on the ledger against the sandbox's bill, job by job, to the cent:
    the sums and how many jobs differ."""
    from decimal import Decimal

    from storage.ledger import read_ledger

    ours: Counter = Counter()
    for row in read_ledger(ledger, columns=["job_id", "cost_usd"]):
        if row["job_id"] in jobs:
            ours[row["job_id"]] += row["cost_usd"]
    billed: Counter = Counter()
    for row in usage:
        if row["job_id"] in jobs:
            billed[row["job_id"]] += Decimal(row["usd"])
    cents = Decimal("0.01")
    return {"ledger_usd": float(sum(ours.values(), Decimal(0))),
            "billed_usd": float(sum(billed.values(), Decimal(0))),
            "unreconciled_jobs": sum(ours[job].quantize(cents) != billed[job].quantize(cents)
                                     for job in jobs)}


def _row(label: str, a: float | None, b: float | None) -> str:
    ratio = f"{b / a:6.2f}x" if a and b is not None else "     -"

    def show(v: float | None) -> str:
        return "-" if v is None else f"{v:,.2f}" if isinstance(v, float) else f"{v:,}"

    return f"  {label:<40} {show(a):>12} {show(b):>12} {ratio:>9}"


def _summary(half: dict, n: int) -> dict:
    """The figures of one half the table and the JSON line show."""
    processes = half.get("processes", {})
    requests = half.get("requests", {})
    delays = half.get("delays_s", [])
    return {
        "requests_per_job": half["requests_total"] / n if "requests_total" in half else None,
        "submits_per_job": requests.get("POST /fal", 0) / n if "requests" in half else None,
        "fal_gets_per_job": requests.get("GET /fal", 0) / n if "requests" in half else None,
        "downloads_per_job": requests.get("GET /files", 0) / n if "requests" in half
        else None,
        "cpu_ms_per_clip": half["worker_cpu_s"] / n * 1e3 if "worker_cpu_s" in half else None,
        "relay_cpu_ms_per_clip": half["relay_cpu_s"] / n * 1e3 if "relay_cpu_s" in half
        else None,
        "server_cpu_ms_per_clip": half["server_cpu_s"] / n * 1e3 if "server_cpu_s" in half
        else None,
        "peak_live_flow_run_processes": processes.get("peak"),
        "mean_live_flow_run_processes": processes.get("mean"),
        "no_chunk_process_share": processes.get("no_chunk_share"),
        "waiting_held_share": half.get("waiting_held_share"),
        "peak_other_flow_run_processes": processes.get("peak_other"),
        "delay_p50_s": _quantile(delays, 0.5), "delay_p95_s": _quantile(delays, 0.95),
        "delay_max_s": max(delays, default=None),
        "job_latency_p50_s": half.get("job_latency_s", {}).get("p50"),
        "job_latency_max_s": half.get("job_latency_s", {}).get("max"),
        "makespan_s": half.get("makespan_s"),
        "double_charged_jobs": half.get("double_charged_jobs"),
        "clips_with_more_jobs": half.get("clips_with_more_jobs"),
        "jobs_created": half.get("jobs_created"),
        "charges": half.get("charges"),
        "lost_clips": half.get("lost_clips", n),
        "ledger_usd": half.get("ledger_usd"),
        "billed_usd": half.get("billed_usd"),
        "unreconciled_jobs": half.get("unreconciled_jobs"),
        "batch_exit": half.get("batch_exit"),
        # every clip done by a batch run that completed: otherwise the figures describe a
        # failure (requests and CPU per job of clips that were never made)
        "valid": half.get("batch_exit") == 0 and half.get("lost_clips", n) == 0
        and "error" not in half,
    }


def main() -> None:
    n = int(os.environ.get("REELFLOW_BENCH_WEBHOOKS", "100"))
    job_s = float(os.environ.get("REELFLOW_BENCH_WEBHOOKS_JOB_S", "20"))
    # a SIGTERM unwinds as an exit does: each half's `finally` brings its stack down
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logs = Path(tempfile.mkdtemp(prefix="reelflow-webhooks-logs-"))
    print(f"logs of both halves kept in {logs}", flush=True)
    halves = {}
    with tempfile.TemporaryDirectory(prefix="reelflow-webhooks-") as scratch:
        for name, wait in HALVES.items():
            halves[name] = _half(name, wait, n, job_s, Path(scratch), logs)
            shown = {k: v for k, v in halves[name].items() if k not in ("delays_s",
                                                                        "batch_tail")}
            print(f"{name}: half took {halves[name]['half_s']:.0f} s (stack up "
                  f"{halves[name].get('stack_up_s', 0):.0f} s): {json.dumps(shown)}",
                  flush=True)
    _report(halves, n, job_s, logs)


def _report(halves: dict[str, dict], n: int, job_s: float, logs: Path) -> None:
    """The table, what went wrong, and the JSON line."""
    a, b = (_summary(halves[name], n) for name in HALVES)
    time_scale = halves["polling"]["time_scale"]
    print(f"\nwebhooks: {n} {MODEL} 5 s 720p text-only rows, {WORKERS} workers, chunk runs of "
          f"{CHUNK} as deployments, median job {job_s:g} s (time_scale {time_scale:.3f}), fal "
          f"concurrency lifted to {n}; (a) wait=poll, (b) wait=suspend (webhooks, relay)")
    print(f"  {'':<40} {'(a) polling':>12} {'(b) webhooks':>12} {'(b)/(a)':>9}")
    labels = [
        ("provider requests / job", "requests_per_job"),
        ("  fal submits / job", "submits_per_job"),
        ("  fal status+result / job", "fal_gets_per_job"),
        ("  file downloads / job", "downloads_per_job"),
        ("worker CPU ms / clip (with flow runs)", "cpu_ms_per_clip"),
        ("relay CPU ms / clip", "relay_cpu_ms_per_clip"),
        ("server CPU ms / clip", "server_cpu_ms_per_clip"),
        ("peak live flow-run processes", "peak_live_flow_run_processes"),
        ("mean live flow-run processes", "mean_live_flow_run_processes"),
        ("share of samples, no chunk process", "no_chunk_process_share"),
        ("share of jobs' wait, own run alive", "waiting_held_share"),
        ("peak other flow-run processes (sweep)", "peak_other_flow_run_processes"),
        ("completion -> archive p50 s", "delay_p50_s"),
        ("completion -> archive p95 s", "delay_p95_s"),
        ("completion -> archive max s", "delay_max_s"),
        ("job latency p50 s (sandbox)", "job_latency_p50_s"),
        ("job latency max s (sandbox)", "job_latency_max_s"),
        ("makespan s", "makespan_s"),
        ("jobs created (must be N)", "jobs_created"),
        ("charges (must be N)", "charges"),
        ("jobs billed more than once", "double_charged_jobs"),
        ("clips with more than one job", "clips_with_more_jobs"),
        ("lost clips (not done)", "lost_clips"),
        ("ledger USD", "ledger_usd"),
        ("billed USD (the sandbox's usage)", "billed_usd"),
        ("jobs whose ledger differs from the bill", "unreconciled_jobs"),
        ("batch run exit", "batch_exit"),
    ]
    for label, key in labels:
        print(_row(label, a[key], b[key]))
    for name, figures in (("polling", a), ("webhooks", b)):
        if not figures["valid"]:
            print(f"  {name}: NOT VALID: the batch run did not complete with every clip done "
                  f"(its logs: {logs / name})")
    w = halves["webhooks"]
    if "suspensions" in w:
        print(f"  webhooks: {w['chunk_runs']} chunk runs, suspended {w['suspensions']} times "
              f"(states {w['chunk_states']}); {w.get('relay_wakes', 0)} wakes in relay.log; "
              f"deliveries {w['webhooks']['states']}, attempts {w['webhooks']['attempt_codes']}")
    for name, half in halves.items():
        if half.get("batch_exit"):
            print(f"  {name}: the batch run exited {half['batch_exit']}:\n"
                  f"{half.get('batch_tail', '')}")
        if half.get("error"):
            print(f"  {name}: FAILED: {half['error']}")
        if half.get("left_running"):
            print(f"  {name}: LEFT RUNNING after down: {half['left_running']}")
        if half.get("flow_runs_left_after_down"):
            print(f"  {name}: {half['flow_runs_left_after_down']} flow runs left after down "
                  "(killed)")
    summary: dict = {"n": n, "job_s": job_s, "time_scale": round(time_scale, 4),
                     "chunk_size": CHUNK, "workers": WORKERS}
    for name, figures in (("polling", a), ("webhooks", b)):
        for key, value in figures.items():
            summary[f"{key}_{name}"] = round(value, 3) if isinstance(value, float) else value
    summary["double_charges"] = sum((f["double_charged_jobs"] or 0) + (
        f["clips_with_more_jobs"] or 0) for f in (a, b))
    summary["lost_clips"] = a["lost_clips"] + b["lost_clips"]
    summary["unreconciled_jobs"] = sum(f["unreconciled_jobs"] or 0 for f in (a, b))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
