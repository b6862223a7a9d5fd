"""The same batch through the stack twice (issue 24 item 6): (a) `scripts/stack.py up --workers 3`
— the Prefect server on SQLite, one shared home (folder journal and ledger); (b) `up --postgres
--s3 --own-homes --workers 3` — server and journal on PostgreSQL, ledger and archive on moto's
S3, a home per worker. Each half gets a fresh sandbox (`--calm --shared-render`, time scale
0.03: a Kling 5 s job takes ~1.5 s) and N text-only Kling 5 s 720p rows, sent as a user would:
`prefect deployment run run-batch/on-demand --watch` with chunk runs of 25 as deployments.

For each half: makespan (from the send to `--watch` returning) against the ideal bound,
max(longest job, sum of job latencies / the account's slots), from the sandbox's own job
timelines as `bench batch` computes it; Prefect API errors seen by the workers and their flow
runs (lines of the worker logs, which carry the flow runs' output, showing an HTTP 5xx, "database
is locked", PrefectHTTPStatusError or Crashed; the server log's 5xx and locks beside them);
CPU per request of the workers (each with its flow runs: utime+stime+cutime+cstime over the
process tree, the growth from the send to just before `down`) and of the server; charges on the
bill (one per job: exactly N), done clips, and the Kling slots still held after the batch.

A batch run that ends Failed (one Prefect API error can end it) is still a measurement: its
makespan is then the time to the failure, and the rows say how far it got. The server's, the
workers' (with their flow runs') and the cluster's logs are kept in a folder the output names.

`python -m bench fleet` (N=1000: longer than half an hour on 2 cores); REELFLOW_BENCH_FLEET=N
for another size. Ends with one line of JSON holding both halves' figures.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from scripts.local_services import alive, tree_cpu_seconds
from tests.sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIME_SCALE = 0.03
WORKERS, CHUNK = 3, 25
ACCOUNT = "provider:kling:standard"
SHAPES = {"sqlite": (), "postgres": ("--postgres", "--s3", "--own-homes")}
# what a worker log line shows when the Prefect API failed a worker or a flow run
API_ERRORS = {
    "http_5xx": re.compile(r"\b5\d\d (Internal Server Error|Service Unavailable|Bad Gateway|"
                           r"Gateway Timeout)|HTTP/1\.[01]\"? 5\d\d|status(_code)?[= ]5\d\d"),
    "database_locked": re.compile(r"database is locked"),
    "prefect_http_status_error": re.compile(r"PrefectHTTPStatusError"),
    "crashed": re.compile(r"Crashed"),
}
# the server's side of them: a request that failed inside the server
SERVER_ERRORS = API_ERRORS | {
    "asgi_exception": re.compile(r"Exception in ASGI application"),
}


def _environment(sandbox_url: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items()
               if not k.startswith(("PREFECT_", "REELFLOW_"))},
            "REELFLOW_SANDBOX": sandbox_url, "REELFLOW_POLL_DEADLINE_K": "50",
            "REELFLOW_SUBSCRIPTIONS": "kling:standard",
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(REPO)}


def _stack(state: Path, env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "scripts/stack.py", *args, "--state", str(state)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"stack.py {args[0]} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def _api_errors(logs: list[Path], patterns: dict[str, re.Pattern] = API_ERRORS) -> dict:
    """Lines of `logs` per kind of API error, lines showing any (`lines`) and the first few of
    them (`examples`)."""
    counts: dict = dict.fromkeys([*patterns, "lines"], 0) | {"examples": []}
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            kinds = [kind for kind, pattern in patterns.items() if pattern.search(line)]
            for kind in kinds:
                counts[kind] += 1
            counts["lines"] += bool(kinds)
            if kinds and len(counts["examples"]) < 3:
                counts["examples"].append(f"{log.name}: {line.strip()[:240]}")
    return counts


def _held_slots(api_url: str) -> int | None:
    """Slots of the Kling account still held (active) once the batch is over."""
    try:
        limits = httpx.post(f"{api_url}/v2/concurrency_limits/filter", json={},
                            timeout=30).json()
    except httpx.HTTPError:
        return None
    return next((limit["active_slots"] for limit in limits if limit["name"] == ACCOUNT), None)


def _flow_runs_left(state: Path) -> list[int]:
    """Flow-run processes of this stack still running (in sessions of their own, they may
    outlive their worker's `down`); each is SIGKILLed."""
    left = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"PREFECT_HOME={state}/".encode() in environ.read_bytes():
                left.append(int(environ.parent.name))
        except OSError:
            continue
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left


def _clip_states(journal_place: str, tag: str) -> Counter:
    from storage.journal import open_journal

    journal = open_journal(journal_place, connections=2)
    try:
        return Counter(r.state for r in journal.records() if r.request.prompt.endswith(tag))
    finally:
        if close := getattr(journal, "close", None):
            close()


def _half(name: str, n: int, scratch: Path, slots: int, logs: Path) -> dict:
    """One run of the batch through the stack of shape `name`; its figures. Its server's,
    workers' and cluster's logs are kept in `logs`/`name`."""
    started = time.monotonic()
    sandbox = start_sandbox(scratch / f"sandbox-{name}", "--calm", "--shared-render",
                            time_scale=TIME_SCALE)
    # the cluster's folder must be reachable by the postgres user: mkdtemp's are mode 700
    state = Path(tempfile.mkdtemp(prefix=f"reelflow-fleet-{name}-"))
    state.chmod(0o755)
    env = _environment(sandbox.url)
    info: dict = {}
    figures: dict = {"shape": name}
    try:
        _stack(state, env, "up", *SHAPES[name], "--workers", str(WORKERS))
        info = json.loads((state / "stack.json").read_text())
        figures["stack_up_s"] = time.monotonic() - started
        env["PREFECT_API_URL"] = info["api_url"]
        workers = {k: pid for k, pid in info["pids"].items() if k.startswith("worker-")}
        tag = uuid.uuid4().hex[:8]
        manifest = state / "batch.jsonl"
        manifest.write_text("\n".join(json.dumps({"prompt": f"Fleet bench {i} {tag}",
                                                  "duration": 5, "resolution": "720p"})
                                      for i in range(n)))
        cpu_before = {k: tree_cpu_seconds(pid) for k, pid in workers.items()}
        server_before = tree_cpu_seconds(info["pids"]["server"])
        sent = time.monotonic()
        batch = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "run-batch/on-demand", "--watch",
             "--watch-timeout", str(max(900, 4 * n)), "--param", "batch=" + json.dumps(
                 {"manifest": str(manifest), "fan_out": "deployments", "chunk_size": CHUNK})],
            cwd=REPO, env=env, capture_output=True, text=True)
        figures["makespan_s"] = time.monotonic() - sent
        # read before anything else runs: idle workers keep polling the server
        worker_cpu = sum(tree_cpu_seconds(pid) - cpu_before[k] for k, pid in workers.items())
        server_cpu = tree_cpu_seconds(info["pids"]["server"]) - server_before
        figures |= {"batch_exit": batch.returncode, "worker_cpu_s": worker_cpu,
                    "server_cpu_s": server_cpu,
                    "workers_alive": sum(alive(pid) for pid in workers.values())}
        if batch.returncode != 0:
            figures["batch_tail"] = (batch.stdout + batch.stderr)[-1500:]
        figures["held_slots"] = _held_slots(info["api_url"])
        figures["api_errors"] = _api_errors(sorted(state.glob("worker-*.log")))
        figures["server_log_errors"] = _api_errors([state / "server.log"], SERVER_ERRORS)
        journal = info["worker_env"].get("REELFLOW_JOURNAL", str(state / "home" / "journal"))
        figures["clip_states"] = dict(_clip_states(journal, tag))
        usage = sandbox.usage()
        figures["charges"] = len(usage)
        figures["charged_jobs"] = len({row["job_id"] for row in usage})
        latencies = []
        for row in usage:
            job = sandbox.admin.get(f"/jobs/{row['job_id']}").json()
            latencies.append(job["completes_at"] - job["created_at"])
        figures["latency_sum_s"] = sum(latencies)
        figures["ideal_s"] = max(max(latencies, default=0), sum(latencies) / slots)
        figures["provider_429s"] = sandbox.stats().get("429:kling", 0)
    except Exception as failed:  # still a measurement of the other half: say what failed
        figures["error"] = f"{type(failed).__name__}: {str(failed)[-1500:]}"
    finally:
        _take_down(state, env, sandbox, info, logs / name, figures)
        figures["half_s"] = time.monotonic() - started
    return figures


def _take_down(state: Path, env: dict[str, str], sandbox, info: dict, kept: Path,
               figures: dict) -> None:
    """A half's end, whatever happened in it: its stack down (what `down` said, the flow runs
    it had to kill), its sandbox stopped, its logs kept in `kept`, what was left running
    (which must be nothing), and its state folder removed."""
    if (state / "stack.json").exists():
        try:
            figures["down"] = _stack(state, env, "down").split()
        except RuntimeError as failed:
            figures["down"] = str(failed)
    figures["flow_runs_left_after_down"] = len(_flow_runs_left(state))
    sandbox.stop()
    kept.mkdir(parents=True, exist_ok=True)
    for log in [*state.glob("*.log"), *state.glob("postgres/*.log")]:
        shutil.copy(log, kept / log.name)
    figures["left_running"] = [
        pid for pid in [*info.get("pids", {}).values(),
                        *(s["pid"] for s in info.get("services", {}).values())]
        if alive(pid)] + ([sandbox.proc.pid] if sandbox.proc.poll() is None else [])
    shutil.rmtree(state, ignore_errors=True)


def _row(label: str, a: float | None, b: float | None, unit: str = "") -> str:
    ratio = f"{b / a:6.2f}x" if a and b is not None else "     -"

    def show(v: float | None) -> str:
        return ("-" if v is None else f"{v:,.1f}{unit}" if isinstance(v, float)
                else f"{v:,}{unit}")

    return f"  {label:<34} {show(a):>14} {show(b):>14} {ratio:>9}"


def main() -> None:
    n = int(os.environ.get("REELFLOW_BENCH_FLEET", "1000"))
    from providers.catalog import load_catalog
    from tasks.limits import catalog_limits

    slots = catalog_limits(load_catalog())[ACCOUNT]
    halves = {}
    logs = Path(tempfile.mkdtemp(prefix="reelflow-fleet-logs-"))
    print(f"logs of both halves kept in {logs}", flush=True)
    with tempfile.TemporaryDirectory(prefix="reelflow-fleet-") as scratch:
        for name in SHAPES:
            halves[name] = _half(name, n, Path(scratch), slots, logs)
            print(f"{name}: half took {halves[name]['half_s']:.0f} s (stack up "
                  f"{halves[name].get('stack_up_s', 0):.0f} s): {json.dumps(halves[name])}",
                  flush=True)
    a, b = halves["sqlite"], halves["postgres"]
    ideal = max(a.get("ideal_s", 0), b.get("ideal_s", 0))

    def per_request_ms(half: dict, key: str) -> float | None:
        return half[key] / n * 1e3 if key in half else None

    print(f"\nfleet: {n} Kling 5 s 720p requests, {WORKERS} workers, chunks of {CHUNK} as "
          f"deployments, time_scale {TIME_SCALE}, {slots} slots; (a) SQLite, shared home; "
          f"(b) PostgreSQL + S3, own homes")
    print(f"  {'':<34} {'(a) sqlite':>14} {'(b) postgres':>14} {'(b)/(a)':>9}")
    rows = [
        ("makespan s", a.get("makespan_s"), b.get("makespan_s")),
        ("ideal s", a.get("ideal_s"), b.get("ideal_s")),
        ("makespan / ideal", a.get("makespan_s", 0) / a["ideal_s"] if a.get("ideal_s")
         else None, b.get("makespan_s", 0) / b["ideal_s"] if b.get("ideal_s") else None),
        ("API error lines (workers)", a.get("api_errors", {}).get("lines"),
         b.get("api_errors", {}).get("lines")),
        *((f"  {kind}", a.get("api_errors", {}).get(kind), b.get("api_errors", {}).get(kind))
          for kind in API_ERRORS),
        ("server log 5xx / locked lines", a.get("server_log_errors", {}).get("lines"),
         b.get("server_log_errors", {}).get("lines")),
        ("worker CPU ms / request", per_request_ms(a, "worker_cpu_s"),
         per_request_ms(b, "worker_cpu_s")),
        ("server CPU ms / request", per_request_ms(a, "server_cpu_s"),
         per_request_ms(b, "server_cpu_s")),
        ("charges (must be N)", a.get("charges"), b.get("charges")),
        ("done clips", a.get("clip_states", {}).get("done"),
         b.get("clip_states", {}).get("done")),
        ("Kling slots held after", a.get("held_slots"), b.get("held_slots")),
        ("flow runs left after down", a.get("flow_runs_left_after_down"),
         b.get("flow_runs_left_after_down")),
        ("provider 429s", a.get("provider_429s"), b.get("provider_429s")),
        ("stack up s", a.get("stack_up_s"), b.get("stack_up_s")),
        ("half s (up, batch, down)", a.get("half_s"), b.get("half_s")),
    ]
    for label, x, y in rows:
        print(_row(label, x, y))
    for name, half in halves.items():
        if half.get("clip_states", {}).keys() - {"done"}:
            print(f"  {name}: clips not done: {half['clip_states']}")
        if half.get("batch_exit"):
            print(f"  {name}: the batch run exited {half['batch_exit']}:\n"
                  f"{half.get('batch_tail', '')}")
        for where in ("api_errors", "server_log_errors"):
            for example in half.get(where, {}).get("examples", []):
                print(f"  {name} {where}: {example}")
        if half.get("error"):
            print(f"  {name}: FAILED: {half['error']}")
        if half.get("left_running"):
            print(f"  {name}: LEFT RUNNING after down: {half['left_running']}")
        if half.get("charges") != n or half.get("charged_jobs") != n:
            print(f"  {name}: {half.get('charges')} charges for {half.get('charged_jobs')} "
                  f"jobs, not {n}")
    summary = {"n": n, "ideal_s": round(ideal, 1), "slots": slots, "time_scale": TIME_SCALE}
    for name, half in halves.items():
        summary |= {
            f"{name}_makespan_s": round(half.get("makespan_s", 0), 1),
            f"{name}_ideal_s": round(half.get("ideal_s", 0), 1),
            f"{name}_api_errors": half.get("api_errors", {}).get("lines"),
            f"{name}_api_errors_by_kind": {k: v for k, v in half.get("api_errors", {}).items()
                                           if k not in ("lines", "examples")},
            f"{name}_server_log_errors": half.get("server_log_errors", {}).get("lines"),
            f"{name}_worker_cpu_ms_per_request": round(per_request_ms(half, "worker_cpu_s")
                                                       or 0, 1),
            f"{name}_server_cpu_ms_per_request": round(per_request_ms(half, "server_cpu_s")
                                                       or 0, 1),
            f"{name}_charges": half.get("charges"),
            f"{name}_done": half.get("clip_states", {}).get("done", 0),
            f"{name}_held_slots": half.get("held_slots"),
            f"{name}_flow_runs_left_after_down": half.get("flow_runs_left_after_down"),
            f"{name}_batch_exit": half.get("batch_exit"),
            f"{name}_half_s": round(half.get("half_s", 0), 1),
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
