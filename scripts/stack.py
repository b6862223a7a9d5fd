"""A local Prefect stack for reelflow: server, work pool, provider limits, deployments, workers.

    python scripts/stack.py up [--workers N] [--port P] [--state DIR]
    python scripts/stack.py down [--state DIR]
    python scripts/stack.py status [--state DIR]

`up` starts a Prefect server on loopback (SQLite under the state folder by default; the
PostgreSQL server named by PREFECT_API_DATABASE_CONNECTION_URL when that is set), creates the
`reelflow` process work pool, runs `reelflow limits sync`, `prefect deploy --all`, and starts N
workers; it writes each process's id to <state>/stack.json and prints the API URL to export.
`down` stops exactly those processes by their ids: a worker gets SIGTERM twice (a worker in
the background ignores SIGINT and its SIGTERM handler only forwards one, so the first does
nothing — Prefect 3.9's behaviour), then SIGKILL if it still runs; the server stops on the
first SIGTERM; and the sandbox that REELFLOW_SANDBOX=auto started for the stack's own home.
Every step is timed and the times printed (CI reads them).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOL = "reelflow"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        if not _alive(pid):
            raise SystemExit("the Prefect server exited; see server.log")
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"the Prefect server did not answer within {timeout:.0f} s")


def up(state: Path, workers: int, port: int | None) -> dict:
    state.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = environment(state, api_url)
    info: dict = {"api_url": api_url, "pids": {}, "times": {}}
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
    _timed("deploy", info["times"], _run, [str(BIN / "prefect"), "deploy", "--all",
                                           "--no-prompt"], env)
    for n in range(workers):
        info["pids"][f"worker-{n}"] = _spawn(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name",
             f"reelflow-worker-{n}", "--limit", "4"], env, state / f"worker-{n}.log")
    _save(state, info)
    print(f"the Prefect UI: http://127.0.0.1:{port}/  (runs, forms, artifacts)", flush=True)
    print(f"export PREFECT_API_URL={api_url}")
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _stop(pid: int, signals: list[int], grace: float = 10.0) -> str:
    for sig in signals:
        if not _alive(pid):
            return "stopped"
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return "stopped"
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        return "killed"
    return "stopped"


def down(state: Path) -> dict[str, str]:
    info = _load(state)
    outcome = {}
    for name, pid in sorted(info.get("pids", {}).items(), key=lambda kv: kv[0] == "server"):
        twice = [signal.SIGTERM, signal.SIGTERM] if name.startswith("worker") else \
            [signal.SIGTERM]
        outcome[name] = _stop(pid, twice)
    info["pids"] = {}
    _save(state, info)
    from tasks import sandbox_launcher as launcher

    if launcher.stop(state / "home" / "sandbox"):  # the sandbox `auto` started for the stack
        outcome["sandbox"] = "stopped"
    return outcome


def _save(state: Path, info: dict) -> None:
    (state / "stack.json").write_text(json.dumps(info, indent=2))


def _load(state: Path) -> dict:
    path = state / "stack.json"
    return json.loads(path.read_text()) if path.exists() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument("--state", default=str(REPO / ".reelflow" / "stack"))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    state = Path(args.state).resolve()
    if args.action == "up":
        up(state, args.workers, args.port)
    elif args.action == "down":
        for name, how in down(state).items():
            print(f"{name}: {how}")
    else:
        info = _load(state)
        for name, pid in info.get("pids", {}).items():
            print(f"{name} {pid} {'running' if _alive(pid) else 'gone'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
