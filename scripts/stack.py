"""A local Prefect stack for reelflow: server, work pool, provider limits, deployments, workers.

    python scripts/stack.py up [--workers N] [--port P] [--state DIR] [--postgres] [--s3]
                               [--own-homes] [--no-relay]
    python scripts/stack.py add-worker [--state DIR]
    python scripts/stack.py down [--state DIR]
    python scripts/stack.py status [--state DIR]

`up` starts a Prefect server on loopback (SQLite under the state folder by default; the
PostgreSQL server named by PREFECT_SERVER_DATABASE_CONNECTION_URL when that is set), creates the
`reelflow` process work pool, runs `reelflow limits sync`, `prefect deploy --all`, and starts N
workers; it writes each process's id to <state>/stack.json and prints the API URL to export.
The production shape on one machine: `--postgres` starts a PostgreSQL cluster in
<state>/postgres (kept between runs, like the SQLite file) for the Prefect server (database
`prefect`) and the workers' journal (database `reelflow`); `--s3` starts moto's S3 server with a
bucket `reelflow` for the workers' archive and ledger. `--own-homes` gives each worker an
empty REELFLOW_HOME of its own (the shape of workers on many machines: with --postgres and --s3
nothing durable is in a home) and one sandbox by URL for all of them; `add-worker` starts one
more worker, with a fresh home when the stack's workers have them (a replacement for one that
died). `up` starts the webhook relay (`reelflow relay`, with a secret made for the stack) and
gives the workers its URL as REELFLOW_WEBHOOK_URL, so runs may wait suspended (`--no-relay`: they
poll). `up` also creates the automation that marks a flow run Crashed when its heartbeats stop
(scripts/crash-zombie-runs.yaml), so a batch's chunk run lost with its worker is sent again.
`down` stops exactly those processes by their ids: a worker gets SIGTERM twice (a worker in
the background ignores SIGINT and its SIGTERM handler only forwards one, so the first does
nothing — Prefect 3.9's behaviour), then SIGKILL if it still runs; the server stops on the
first SIGTERM; and the sandbox that REELFLOW_SANDBOX=auto started for the stack's own home;
then the S3 server and the cluster (`pg_ctl stop`), which outlive everything that uses them.
Every step is timed and the times printed (CI reads them).
"""

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from local_services import (
    S3_ENVIRONMENT,
    LocalPostgres,
    ServiceFailed,
    alive,
    descendants,
    free_port,
    start_postgres,
    start_s3,
    stop_process,
)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOL = "reelflow"
ZOMBIE_RUNS = REPO / "scripts" / "crash-zombie-runs.yaml"
BUCKET = "reelflow"


def environment(state: Path, api_url: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(state / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PWD": str(REPO),
           "REELFLOW_HOME": os.environ.get("REELFLOW_HOME", str(state / "home")),
           "REELFLOW_SANDBOX": os.environ.get("REELFLOW_SANDBOX", "auto")}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({done.returncode}):\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}")


def _spawn(args: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return process.pid


def _timed(label: str, times: dict[str, float], fn, *args):
    started = time.monotonic()
    result = fn(*args)
    times[label] = round(time.monotonic() - started, 2)
    print(f"{label}: {times[label]:.1f} s", flush=True)
    return result


def _wait_healthy(api_url: str, pid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise SystemExit("the Prefect server exited; see server.log")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"the Prefect server did not answer within {timeout:.0f} s")


def _postgres(state: Path, info: dict) -> dict[str, str]:
    """The cluster's databases for the Prefect server and the journal, as settings."""
    cluster = start_postgres(state / "postgres")
    info["services"]["postgres"] = {"url": cluster.url, "pid": cluster.pid, "port": cluster.port,
                                    "folder": str(cluster.folder), "bindir": str(cluster.bindir)}
    _save(state, info)
    prefect = cluster.create_database("prefect")
    return {"PREFECT_SERVER_DATABASE_CONNECTION_URL":
            prefect.replace("postgresql://", "postgresql+asyncpg://", 1),
            "REELFLOW_JOURNAL": cluster.url}


def _s3(state: Path, info: dict) -> dict[str, str]:
    """The S3 server's bucket for the archive and the ledger, as settings."""
    s3 = start_s3(state / "s3")
    info["services"]["s3"] = {"endpoint_url": s3.endpoint_url, "pid": s3.pid}
    _save(state, info)
    s3.create_bucket(BUCKET)
    options = json.dumps({"client_kwargs": {"endpoint_url": s3.endpoint_url}})
    return {"REELFLOW_ARCHIVE": f"s3://{BUCKET}/archive", "REELFLOW_ARCHIVE_OPTIONS": options,
            "REELFLOW_LEDGER": f"s3://{BUCKET}/ledger", "REELFLOW_LEDGER_OPTIONS": options,
            "REELFLOW_INPUTS_OPTIONS": options,  # manifests and their images in the bucket
            **S3_ENVIRONMENT}


def _sandbox(state: Path, env: dict[str, str]) -> dict[str, str]:
    """One sandbox every worker reaches by URL (own homes would each start one)."""
    if env["REELFLOW_SANDBOX"] != "auto":
        return {}
    from tasks import sandbox_launcher as launcher

    scale = env.get("REELFLOW_SANDBOX_TIME_SCALE")
    info = launcher.ensure_running(state / "home" / "sandbox",
                                   time_scale=float(scale) if scale else None)
    return {"REELFLOW_SANDBOX": info["url"]}


def _relay(state: Path, info: dict, env: dict[str, str]) -> dict[str, str]:
    """The webhook relay every worker's callbacks go to, with a secret made for the stack; it
    shares the workers' journal and resumes runs through the stack's server."""
    secret = secrets.token_hex(16)
    url = f"http://127.0.0.1:{free_port()}"
    pid = _spawn([str(BIN / "reelflow"), "relay", "--port", url.rsplit(":", 1)[1]],
                 {**env, "REELFLOW_WEBHOOK_SECRET": secret}, state / "relay.log")
    info["pids"]["relay"] = pid
    _save(state, info)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and alive(pid):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return {"REELFLOW_WEBHOOK_URL": url, "REELFLOW_WEBHOOK_SECRET": secret}
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("the relay did not answer within 60 s; see relay.log")


def _start_worker(state: Path, info: dict, env: dict[str, str]) -> str:
    """One more worker of the pool, named by its number; its own empty home if the stack's
    workers have them."""
    name = f"worker-{info['workers_started']}"
    info["workers_started"] += 1
    if info.get("own_homes"):
        env = {**env, "REELFLOW_HOME": str(state / name / "home")}
    info["pids"][name] = _spawn(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name",
         f"reelflow-{name}", "--limit", "4"], env, state / f"{name}.log")
    _save(state, info)
    return name


def up(state: Path, workers: int, port: int | None, postgres: bool = False,
       s3: bool = False, own_homes: bool = False, relay: bool = True) -> dict:
    state.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = environment(state, api_url)
    info: dict = {"api_url": api_url, "pids": {}, "services": {}, "times": {},
                  "own_homes": own_homes, "workers_started": 0}
    if postgres:
        env |= _timed("postgres start", info["times"], _postgres, state, info)
    if s3:
        env |= _timed("s3 start", info["times"], _s3, state, info)
    if own_homes or relay:  # the relay reads the sandbox's keys at its URL
        env |= _timed("sandbox start", info["times"], _sandbox, state, env)
    # with its UI: the run links the CLI prints open there, and the flows' forms are its. The
    # UI asks the API at PREFECT_SERVER_UI_API_URL, which `--port` does not set (it defaults to
    # port 4200: the UI loaded and could reach nothing)
    server_env = {**{k: v for k, v in env.items() if k != "PREFECT_API_URL"},
                  "PREFECT_SERVER_UI_API_URL": api_url}
    server = _spawn([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                     str(port)], server_env, state / "server.log")
    info["pids"]["server"] = server
    _save(state, info)
    _timed("server start", info["times"], _wait_healthy, api_url, server)
    _timed("work pool", info["times"], _run, [str(BIN / "prefect"), "work-pool", "create", POOL,
                                              "--type", "process", "--overwrite"], env)
    _timed("limits sync", info["times"], _run, [str(BIN / "reelflow"), "limits", "sync"], env)
    _timed("automation", info["times"], _run, [str(BIN / "prefect"), "automation", "create",
                                               "--from-file", str(ZOMBIE_RUNS)], env)
    _timed("deploy", info["times"], _run, [str(BIN / "prefect"), "deploy", "--all",
                                           "--no-prompt"], env)
    if relay:
        env |= _timed("relay start", info["times"], _relay, state, info, env)
    # what a worker added later needs that the caller's environment does not hold
    info["worker_env"] = {k: v for k, v in env.items() if os.environ.get(k) != v}
    for _ in range(workers):
        _start_worker(state, info, env)
    print(f"the Prefect UI: http://127.0.0.1:{port}/  (runs, forms, artifacts)", flush=True)
    print(f"export PREFECT_API_URL={api_url}")
    if relay:
        print(f"export REELFLOW_WEBHOOK_URL={env['REELFLOW_WEBHOOK_URL']}  (the relay; "
              "runs with wait=suspend need it)")
    return info


def down(state: Path) -> dict[str, str]:
    info = _load(state)
    outcome = {}
    # a worker's flow runs start sessions of their own: stopped with it, they would go on
    # alone, ignoring SIGTERM (bench fleet found them half an hour later, reparented to init)
    runs = [run for name, pid in info.get("pids", {}).items() if name.startswith("worker")
            for run in descendants(pid)]
    for name, pid in sorted(info.get("pids", {}).items(), key=lambda kv: kv[0] == "server"):
        twice = (signal.SIGTERM, signal.SIGTERM) if name.startswith("worker") else \
            (signal.SIGTERM,)
        outcome[name] = stop_process(pid, twice)
    left = [run for run in runs if alive(run)]
    for run in left:
        stop_process(run, (signal.SIGKILL,))
    if left:
        outcome[f"flow runs left by the workers ({len(left)})"] = "killed"
    info["pids"] = {}
    _save(state, info)
    from tasks import sandbox_launcher as launcher

    if launcher.stop(state / "home" / "sandbox"):  # the sandbox `auto` started for the stack
        outcome["sandbox"] = "stopped"
    outcome |= _stop_services(info.get("services", {}))
    info["services"] = {}
    _save(state, info)
    return outcome


def _stop_services(services: dict) -> dict[str, str]:
    """S3 by its id; the cluster through pg_ctl, which waits for its checkpoint."""
    outcome = {}
    if s3 := services.get("s3"):
        outcome["s3"] = stop_process(s3["pid"])
    if postgres := services.get("postgres"):
        LocalPostgres(folder=Path(postgres["folder"]), port=postgres["port"],
                      pid=postgres["pid"], bindir=Path(postgres["bindir"])).stop()
        outcome["postgres"] = "stopped"
    return outcome


def status(state: Path) -> None:
    info = _load(state)
    for name, pid in info.get("pids", {}).items():
        print(f"{name} {pid} {'running' if alive(pid) else 'gone'}")
    for name, service in info.get("services", {}).items():
        where = service.get("url") or service["endpoint_url"]
        print(f"{name} {service['pid']} {'running' if alive(service['pid']) else 'gone'} "
              f"{where}")


def _save(state: Path, info: dict) -> None:
    (state / "stack.json").write_text(json.dumps(info, indent=2))


def _load(state: Path) -> dict:
    path = state / "stack.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status", "add-worker"])
    parser.add_argument("--state", default=str(REPO / ".reelflow" / "stack"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int)
    parser.add_argument("--postgres", action="store_true",
                        help="the Prefect server and the journal on a local PostgreSQL cluster")
    parser.add_argument("--s3", action="store_true",
                        help="the archive and the ledger on a local S3 server (moto)")
    parser.add_argument("--own-homes", action="store_true",
                        help="each worker an empty home of its own; one sandbox by URL")
    parser.add_argument("--no-relay", action="store_true",
                        help="no webhook relay: runs poll, none can wait suspended")
    args = parser.parse_args(argv)
    state = Path(args.state).resolve()
    try:
        if args.action == "up":
            up(state, args.workers, args.port, args.postgres, args.s3, args.own_homes,
               relay=not args.no_relay)
        elif args.action == "add-worker":
            info = _load(state)
            print(_start_worker(state, info, {**os.environ, **info["worker_env"]}))
        elif args.action == "down":
            for name, how in down(state).items():
                print(f"{name}: {how}")
        else:
            status(state)
    except ServiceFailed as failed:  # PostgreSQL or S3 would not start or stop
        raise SystemExit(str(failed)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
