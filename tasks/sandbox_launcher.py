"""Find the sandbox serving a state folder, or start one in the background (REELFLOW_SANDBOX=auto).

Client code: it knows the sandbox only by its command line (`python -m sandbox`) and the
server.json it writes, never by importing it (the sandbox shares no code with its clients).

The server writes <state>/server.json once it listens; a live pid that answers /_admin/health
is reused, so every reelflow process of one home shares one sandbox — and its jobs and bill.
A lock file keeps two processes from starting two servers at once.
"""

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


class OtherSpeed(RuntimeError):
    """The sandbox serving this home runs at another time scale than the one asked for."""


def _health(info: dict) -> dict | None:
    """The live server's health answer (with its time_scale), or None."""
    try:
        os.kill(int(info["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return None
    verify = info.get("ca_file") or True
    try:
        answer = httpx.get(info["url"] + "/_admin/health", timeout=2, verify=verify)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def running(state: Path) -> dict | None:
    """The live server's info (url, pid, ca_file, and the time_scale it runs at), or None."""
    try:
        info = json.loads((state / "server.json").read_text())
    except (OSError, ValueError):
        return None
    health = _health(info)
    return {**info, "time_scale": health.get("time_scale", 1.0)} if health else None


def ensure_running(state: Path, *, time_scale: float | None = None, tls: bool = False,
                   timeout_s: float = 30.0, same_speed: bool = False) -> dict:
    """Reuse the sandbox serving `state`, or start one detached from this process. With
    `same_speed`, a running one at another time scale than `time_scale` is OtherSpeed — never
    reported as running at a speed it does not have."""
    state = state.resolve()
    state.mkdir(parents=True, exist_ok=True)
    with (state / "launch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        info = running(state)
        if info and same_speed and time_scale is not None \
                and float(info["time_scale"]) != time_scale:
            raise OtherSpeed(f"the sandbox of this home runs at time scale "
                             f"{info['time_scale']}, not {time_scale}")
        if info:
            return info
        (state / "server.json").unlink(missing_ok=True)
        args = [sys.executable, "-m", "sandbox", "--state", str(state), "--port", "0"]
        if time_scale is not None:
            args += ["--time-scale", str(time_scale)]
        if tls:
            args.append("--tls")
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
        # Started through a shell that exits at once, so the server is nobody's child:
        # it outlives this process and leaves no zombie behind.
        env["REELFLOW_SANDBOX_LOG"] = str(state / "server.log")
        subprocess.run(["sh", "-c", 'nohup "$@" >>"$REELFLOW_SANDBOX_LOG" 2>&1 &', "sh", *args],
                       env=env, cwd=root, start_new_session=True, check=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            info = running(state)
            if info:
                return info
            time.sleep(0.1)
        raise RuntimeError(f"the sandbox did not start; see {state / 'server.log'}")


def stop(state: Path) -> bool:
    """Stop the sandbox serving `state`; True if one was running."""
    info = running(state)
    if not info:
        return False
    os.kill(int(info["pid"]), 15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and running(state):
        time.sleep(0.05)
    return True
