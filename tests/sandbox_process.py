"""Start and stop a sandbox process for tests, and talk to its admin endpoints."""

import json
import os
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


@dataclass
class SandboxProcess:
    url: str
    state: Path
    ca_file: str | None
    proc: subprocess.Popen
    admin: httpx.Client = field(init=False)
    started_time_scale: float = field(init=False, default=0.0)  # set by the session fixture

    def __post_init__(self) -> None:
        self.admin = httpx.Client(base_url=self.url + "/_admin", verify=self.verify,
                                  timeout=30)

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client needs to trust this sandbox."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    def reset(self, calm: bool = True) -> None:
        self.admin.post("/reset", params={"calm": "1" if calm else "0"}).raise_for_status()

    def knobs(self, **patch: Any) -> dict:
        response = self.admin.post("/knobs", json=patch)
        response.raise_for_status()
        return response.json()

    def faults(self, *faults: dict) -> None:
        self.admin.post("/faults", json=list(faults)).raise_for_status()

    def usage(self, **filters: str) -> list[dict]:
        return self.admin.get("/usage", params=filters).json()["rows"]

    def jobs(self, prompt: str = "") -> list[dict]:
        return self.admin.get("/jobs", params={"prompt": prompt}).json()["jobs"]

    def clear_faults(self) -> None:
        self.admin.delete("/faults").raise_for_status()

    def stats(self) -> dict[str, int]:
        return self.admin.get("/stats").json()

    def clock(self, **body: Any) -> str:
        return self.admin.post("/clock", json=body).json()["now"]

    def stop(self, kill: bool = False) -> None:
        self.admin.close()
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            self.proc.wait(timeout=15)
        if self.proc.stdout:
            self.proc.stdout.close()


def start_sandbox(state: Path, *args: str, time_scale: float = 0.001,
                  launcher: tuple[str, ...] = ("-m", "sandbox")) -> SandboxProcess:
    """A sandbox on a free loopback port, calm by default; returns once it answers.
    `launcher`: what python runs instead of `-m sandbox` (a bench's patched start)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, *launcher, "--port", "0", "--state", str(state),
         "--time-scale", str(time_scale), *args],
        stdout=subprocess.PIPE, stderr=None, text=True, cwd=REPO, env=env,
    )
    line = proc.stdout.readline()
    if not line:
        proc.stdout.close()
        raise RuntimeError(f"the sandbox did not start (exit {proc.wait()})")
    info = json.loads(line)
    deadline = time.monotonic() + 20
    verify = ssl.create_default_context(cafile=info["ca_file"]) if info["ca_file"] else True
    while True:
        try:
            httpx.get(info["url"] + "/_admin/health", verify=verify, timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    return SandboxProcess(url=info["url"], state=state, ca_file=info["ca_file"], proc=proc)
