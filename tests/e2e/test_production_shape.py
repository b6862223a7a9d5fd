"""The production shape on one machine (issue 24): the Prefect server and the journal on
PostgreSQL, the archive and the ledger on an S3 server on loopback, three process workers each
with its own empty REELFLOW_HOME and no folder shared between them, one sandbox by URL. A
300-request batch is sent as chunk runs; mid-batch one worker is SIGKILLed with every flow run
it was running (a pod lost) and a fresh one takes its place. Judged by the sandbox's bill: one
charge per job, no clip generated twice, every clip in the bucket with its checksum, the
ledger in the bucket equal to the bill to the cent; the Prefect server's own tables in
PostgreSQL, no SQLite file; `down` leaves no process behind. Timings are printed (run -s).

The manifest is in the bucket too (s3://reelflow/inputs/...), as on machines that share no
disk."""

import contextlib
import hashlib
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
import psycopg
import pytest

from scripts.local_services import alive, descendants
from storage.journal_postgres import PostgresJournal
from storage.places import open_place
from tests.flows.conftest import assert_reconciled
from tests.sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROWS, CHUNK = 300, 50  # 6 chunk runs and the batch's: every worker runs some at once


def _stack(state: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "scripts/stack.py", *args, "--state", str(state)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _flow_runs_under(pid: int) -> set[str]:
    """The flow run ids of the processes under a worker (their PREFECT__FLOW_RUN_ID)."""
    runs = set()
    for child in descendants(pid):
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        runs |= {e.split(b"=", 1)[1].decode() for e in environ
                 if e.startswith(b"PREFECT__FLOW_RUN_ID=")}
    return runs


def _kill_worker(pid: int) -> int:
    """SIGKILL a worker and everything under it at once, as a lost machine would end them."""
    victims = [pid, *descendants(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):  # ended on its own meanwhile
            os.kill(victim, signal.SIGKILL)
    return len(victims)


@pytest.mark.timeout(1500)  # ~6 min on a quiet 2-core machine; a loaded one takes twice that
def test_a_batch_survives_a_lost_worker_with_nothing_paid_twice_and_nothing_lost(
        tmp_path, postgres_cluster):  # postgres_cluster: skipped where none is installed
    started = time.monotonic()
    sandbox = start_sandbox(tmp_path / "sandbox", "--calm", "--shared-render",
                            time_scale=0.005)
    # the cluster's folder must be reachable by the postgres user: pytest's are mode 700
    state = Path(tempfile.mkdtemp(prefix="reelflow-stack-"))
    state.chmod(0o755)
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("PREFECT_", "REELFLOW_"))},
           "REELFLOW_SANDBOX": sandbox.url, "REELFLOW_POLL_DEADLINE_K": "50",
           "REELFLOW_SUBSCRIPTIONS": "kling:standard,fal:standard,sora:api,atlascloud:payg",
           "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PYTHONPATH": str(REPO)}
    try:
        _stack(state, env, "up", "--postgres", "--s3", "--own-homes", "--workers", "3")
        info = json.loads((state / "stack.json").read_text())
        up_s = time.monotonic() - started
        env["PREFECT_API_URL"] = info["api_url"]
        options = json.loads(info["worker_env"]["REELFLOW_LEDGER_OPTIONS"])
        ledger = info["worker_env"]["REELFLOW_LEDGER"]
        os.environ.update({k: info["worker_env"][k] for k in info["worker_env"]
                           if k.startswith("AWS_")})
        _batch_with_a_worker_lost(tmp_path, state, env, info, sandbox, ledger, options)
        _server_on_postgresql(state, info)
        print(f"production shape: stack up {up_s:.1f} s, whole test "
              f"{time.monotonic() - started:.1f} s")
    finally:
        down = subprocess.run([sys.executable, "scripts/stack.py", "down", "--state",
                               str(state)], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=180)
        print(down.stdout)
        sandbox.stop()
        left = [pid for pid in [*json.loads((state / "stack.json").read_text())["pids"].values(),
                                *(s["pid"] for s in info["services"].values())] if alive(pid)]
        shutil.rmtree(state, ignore_errors=True)
    assert {"server: stopped", "postgres: stopped", "s3: stopped"} <= set(
        down.stdout.splitlines())
    assert left == []


def _server_on_postgresql(state: Path, info: dict) -> None:
    """The Prefect server kept its runs in the cluster's `prefect` database, no SQLite."""
    prefect_db = info["services"]["postgres"]["url"].rsplit("/", 1)[0] + "/prefect"
    with psycopg.connect(prefect_db) as con:
        runs = con.execute("SELECT count(*) FROM flow_run").fetchone()[0]
    assert runs > ROWS // CHUNK  # the batch and its chunk runs, there
    assert not list((state / "prefect").glob("*.db"))


def _batch_with_a_worker_lost(tmp_path, state, env, info, sandbox, ledger, options):
    tag = uuid.uuid4().hex[:8]
    manifest = f"s3://reelflow/inputs/{tag}/batch.jsonl"
    open_place(manifest, options).fs.pipe_file(manifest, "\n".join(
        json.dumps({"prompt": f"Fleet batch {i} {tag}", "duration": 5, "resolution": "720p"})
        for i in range(ROWS)).encode())
    journal = PostgresJournal(info["services"]["postgres"]["url"], connections=2)
    out = tmp_path / "batch.out"
    sent = time.monotonic()
    with out.open("w") as log:
        batch = subprocess.Popen(
            [str(BIN / "prefect"), "deployment", "run", "run-batch/on-demand", "--watch",
             "--watch-timeout", "900", "--param", "batch=" + json.dumps(
                 {"manifest": manifest, "fan_out": "deployments", "chunk_size": CHUNK})],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        parent = _wait(lambda: re.search(r"UUID: ([0-9a-f-]{36})", out.read_text()), 120,
                       "the batch run's id").group(1)
        _wait(lambda: _done(journal, tag) >= ROWS // 10, 600, "a tenth of the batch done")
        done_before = _done(journal, tag)
        victim = _wait(lambda: _busy_worker(info["pids"], parent), 120,
                       "a worker running chunks but not the batch")
        chunks_lost = _flow_runs_under(info["pids"][victim])
        killed = _kill_worker(info["pids"][victim])
        lost_at = time.monotonic()
        print(f"killed {victim} ({killed} processes, chunk runs {sorted(chunks_lost)}) "
              f"with {done_before} clips done, {time.monotonic() - sent:.1f} s into the batch")
        _stack(state, env, "add-worker")
        assert batch.wait(timeout=900) == 0, out.read_text()[-4000:]
    finally:
        if batch.poll() is None:
            batch.kill()
    finished = time.monotonic()
    print(f"batch of {ROWS}: {finished - sent:.1f} s; {finished - lost_at:.1f} s after the "
          f"worker was lost")
    states = _run_states(env["PREFECT_API_URL"], chunks_lost)
    print(f"the lost chunk runs ended: {states}")
    assert set(states.values()) == {"Crashed"}  # marked by the automation, then sent again

    usage = [r for r in sandbox.usage() if r["job_id"] in _jobs(journal, tag)]
    assert len(usage) == ROWS and len({r["job_id"] for r in usage}) == ROWS  # once per job
    records = [r for r in journal.records() if r.request.prompt.endswith(tag)]
    assert len(records) == ROWS and all(r.state == "done" for r in records)
    assert Counter(len(r.job_ids) for r in records) == {1: ROWS}  # no clip generated twice
    fs = open_place(records[0].archive.path, options).fs
    for record in records:
        assert record.archive.path.startswith("s3://")
        assert hashlib.sha256(fs.cat_file(record.archive.path)).hexdigest() == \
            record.archive.sha256
    assert assert_reconciled(Path("/nonexistent"), sandbox, ledger, options)
    assert len(list(state.glob("worker-*.log"))) == 4  # three, and the lost one's successor
    for home in state.glob("worker-*/home"):  # scratch only, when made at all
        assert not {p.name for p in home.iterdir()} & {"journal", "ledger", "clips",
                                                        "capabilities", "refused_prompts"}
    journal.close()


def _wait(probe, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.5)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def _done(journal: PostgresJournal, tag: str) -> int:
    return sum(r.state == "done" for r in journal.records() if r.request.prompt.endswith(tag))


def _jobs(journal: PostgresJournal, tag: str) -> set[str]:
    return {job for r in journal.records() if r.request.prompt.endswith(tag)
            for job in r.job_ids}


def _busy_worker(pids: dict[str, int], parent: str) -> str | None:
    for name, pid in sorted(pids.items()):
        runs = _flow_runs_under(pid) if name.startswith("worker-") else set()
        if runs and parent not in runs:
            return name
    return None


def _run_states(api: str, runs: set[str]) -> dict[str, str]:
    found = httpx.post(f"{api}/flow_runs/filter", json={
        "flow_runs": {"id": {"any_": sorted(runs)}}}, timeout=30).json()
    return {run["id"]: run["state"]["name"] for run in found}
