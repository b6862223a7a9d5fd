"""The path users take: a real Prefect server and process workers on loopback, deployments
from prefect.yaml, `prefect deployment run ... --watch` — then two workers sharing a 100-request
batch sent as chunk runs. The sandbox's usage log judges what was generated and charged.
Everything started here is stopped here. Times are printed (run with -s, as `make test` does).
"""

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from storage.journal import Journal
from storage.ledger import read_ledger
from tests.sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def stack(tmp_path):
    """A sandbox, then server + pool + limits + deployments + two workers; all stopped after."""
    sandbox = start_sandbox(tmp_path / "sandbox", "--calm", "--shared-render")
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
           "REELFLOW_HOME": str(home), "REELFLOW_SANDBOX": sandbox.url,
           "REELFLOW_SANDBOX_TIME_SCALE": "0.001",
           "REELFLOW_SUBSCRIPTIONS": "kling:standard,fal:standard,sora:api,atlascloud:payg",
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PYTHONPATH": str(REPO)}
    state = tmp_path / "stack"
    try:
        up = subprocess.run([sys.executable, "scripts/stack.py", "up", "--state", str(state),
                             "--workers", "2"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
        print(up.stdout)
        assert up.returncode == 0, up.stdout + up.stderr
        info = json.loads((state / "stack.json").read_text())
        env["PREFECT_API_URL"] = info["api_url"]
        yield {"env": env, "home": home, "sandbox": sandbox, "state": state,
               "api": info["api_url"]}
    finally:
        down = subprocess.run([sys.executable, "scripts/stack.py", "down", "--state",
                               str(state)], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120)
        print(down.stdout)
        sandbox.stop()
        for line in down.stdout.splitlines():
            assert line.endswith(("stopped", "killed")), down.stdout


def deployment_run(stack, name: str, *params: str, timeout: int = 600):
    args = [str(BIN / "prefect"), "deployment", "run", name, "--watch", "--watch-timeout",
            str(timeout)]
    for param in params:
        args += ["--param", param]
    started = time.monotonic()
    done = subprocess.run(args, cwd=REPO, env=stack["env"], capture_output=True, text=True,
                          timeout=timeout + 60)
    print(f"{name}: rc {done.returncode} in {time.monotonic() - started:.1f} s")
    return done


def test_deployments_run_on_workers_and_share_a_batch(stack, tmp_path):
    prompt = f"Deployed clip {uuid.uuid4().hex[:8]}"
    request = json.dumps({"prompt": prompt, "duration": 5, "resolution": "720p"})
    done = deployment_run(stack, "generate-clip/on-demand", f"request={request}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
    journal = Journal(stack["home"] / "journal")
    (record,) = journal.records()
    assert record.state == "done" and Path(record.archive.path).exists()
    kinds = sorted(r["event_kind"] for r in read_ledger(stack["home"] / "ledger"))
    assert kinds == ["complete", "inspection", "submit"]
    artifacts = httpx.post(f"{stack['api']}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    keys = {a["key"] for a in artifacts}
    assert {f"clip-{record.clip_id[:16]}", f"clip-{record.clip_id[:16]}-file"} <= keys

    bad = deployment_run(stack, "generate-clip/on-demand",
                         'request={"prompt": "x", "duration": 5, "resolution": "8k"}')
    assert bad.returncode != 0
    assert "request.resolution" in bad.stdout + bad.stderr

    manifest = tmp_path / "batch.jsonl"
    tag = uuid.uuid4().hex[:8]
    manifest.write_text("\n".join(json.dumps({"prompt": f"Shared batch {i} {tag}",
                                              "duration": 5, "resolution": "720p"})
                                  for i in range(100)))
    paid = len(stack["sandbox"].usage())
    batch = deployment_run(stack, "run-batch/on-demand", "batch=" + json.dumps(
        {"manifest": str(manifest), "fan_out": "deployments", "chunk_size": 20}))
    assert batch.returncode == 0, batch.stdout[-3000:] + batch.stderr[-3000:]
    usage = stack["sandbox"].usage()[paid:]
    assert len(usage) == 100 and len({r["job_id"] for r in usage}) == 100
    done_clips = [r for r in journal.records() if r.request.prompt.endswith(tag)]
    assert len(done_clips) == 100 and all(r.state == "done" for r in done_clips)
    jobs_per_clip = Counter(len([s for s in r.steps if s.handle]) for r in done_clips)
    assert jobs_per_clip == {1: 100}  # no clip generated twice
    runs_by_worker = {log.name: log.read_text().count(" submitting flow run ")
                      for log in stack["state"].glob("worker-*.log")}
    print(f"flow runs per worker: {runs_by_worker}")
    assert len(runs_by_worker) == 2 and all(n > 0 for n in runs_by_worker.values())
