"""A worker killed mid-poll, and secrets that must never leave the credential object."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def reelflow(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_worker_killed_mid_poll_is_resumed_and_charged_once(home, sandbox, monkeypatch):
    sandbox.knobs(kling={"p50_5s": 4000, "p95_5s": 4200, "p50_30s": 4200})  # ~4 s
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "200")  # the prior says 0.04 s; allow ~19 s
    from prefect.settings import PREFECT_API_URL

    # the harness's server, so the child starts no temporary server of its own
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": PREFECT_API_URL.value()}
    prompt = f"Killed while waiting {uuid.uuid4().hex[:6]}"
    args = ("generate", "--prompt", prompt, "--duration", "5", "--json")
    first = reelflow(*args, env=env)
    journal = journal_of(home)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        records = journal.records()
        if records and records[0].steps and records[0].steps[0].handle:
            break
        time.sleep(0.1)
    else:
        first.kill()
        raise AssertionError("the first run never submitted")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    first.stdout.close()
    first.stderr.close()
    job_id = records[0].steps[0].handle.job_id
    second = reelflow(*args, env=env)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err[-2000:]
    result = json.loads(out[out.index("{"):])
    assert result["job_ids"] == [job_id] and Path(result["path"]).exists()
    assert [r["job_id"] for r in sandbox.usage() if r["job_id"] == job_id] == [job_id]
    assert_reconciled(home, sandbox)


def test_a_recognisable_key_appears_in_no_output(home, sandbox, monkeypatch, caplog):
    import asyncio

    from flows.generate import generate_clip
    from models import ClipRequest

    secret = f"sk-FAKE-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with caplog.at_level("DEBUG"):
        result = asyncio.run(generate_clip(ClipRequest(
            prompt=f"Secret keeper {uuid.uuid4().hex[:6]}", duration=4, policy="sora-2",
            resolution="720p")))
    assert result.model == "sora-2"
    assert secret not in caplog.text
    for path in home.rglob("*"):
        if path.is_file() and path.suffix != ".mp4":
            assert secret.encode() not in path.read_bytes(), path
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import ArtifactSort

    async def artifacts():  # this run's are the newest (the session's server holds hundreds)
        async with get_client() as client:
            return await client.read_artifacts(sort=ArtifactSort.CREATED_DESC, limit=50)

    stored = json.dumps([a.model_dump(mode="json") for a in asyncio.run(artifacts())])
    assert result.clip_id[:12] in stored and secret not in stored
