"""Cancelling stops the spending: a run cancelled mid-wait asks its provider job to stop, and
`reelflow cancel` does the same for a clip no run is waiting on. Judged by the sandbox's bill:
a stopped fal job bills no generation, a Kling job (no cancel in its API) runs on, is billed
and is still archived — nothing half-written, the ledger equal to the bill job by job."""

import asyncio
import os
import signal
import uuid
from collections.abc import Coroutine
from contextlib import suppress

import pytest
from prefect.exceptions import TerminationSignal

from flows.generate import generate_clip
from models import ClipRequest
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
SLOW = {"p50_5s": 20000, "p95_5s": 25000, "p50_30s": 40000}  # 20 s at the tests' time scale


def cancelled_mid_wait(home, request: ClipRequest) -> None:
    """Run the flow until its job is submitted, then cancel it (as Ctrl-C or the UI does)."""
    journal = journal_of(home)

    async def run() -> None:
        task = asyncio.create_task(generate_clip(request))
        for _ in range(1200):
            record = journal.read(request.clip_id)
            if record and record.steps and record.steps[0].handle:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # well inside the wait
        task.cancel()
        with suppress(BaseException):
            await task

    asyncio.run(run())


def reconcile_and_compare(home, sandbox) -> dict:
    from tasks.reconciling import reconcile_charges
    from tasks.runtime import build_runtime

    asyncio.run(reconcile_charges(build_runtime("test")))
    return assert_reconciled(home, sandbox)


async def not_polled_yet(*_args, **_kwargs):
    """The wait's task run not started: the worker still creating it when the cancel lands."""
    await asyncio.Event().wait()


async def terminated_in_our_code(*_args, **_kwargs):
    """The worker's SIGTERM (the UI's Cancel) landing while the run's own code executes:
    Prefect's handler raises TerminationSignal there, not a CancelledError at an await."""
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # the handler runs between two of these bytecodes
        pass


def terminated(run: Coroutine) -> None:
    """Run a flow that a SIGTERM ends; Prefect sends the signal on to the handler it replaced
    once the run is torn down (here a no-op, not pytest's death)."""
    before = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        with pytest.raises(TerminationSignal):
            asyncio.run(run)
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("landing", ["in the wait", "before the first poll",
                                     "as a SIGTERM in the run's code"])
def test_a_cancelled_run_stops_its_fal_job_and_pays_for_no_generation(home, sandbox,
                                                                        monkeypatch, landing):
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "200")
    if landing == "before the first poll":
        monkeypatch.setattr("tasks.awaiting.await_step", not_polled_yet)
    sandbox.knobs(fal=SLOW)
    request = ClipRequest(prompt=f"A kite on the wind {uuid.uuid4().hex[:6]}", duration=5,
                          resolution="720p", policy="kling-v3-fal")
    if landing == "as a SIGTERM in the run's code":
        monkeypatch.setattr("tasks.awaiting.await_step", terminated_in_our_code)
        terminated(generate_clip(request))
    else:
        cancelled_mid_wait(home, request)
    record = journal_of(home).read(request.clip_id)
    step = record.steps[0]
    assert (step.state, record.state) == ("cancelled", "failed")
    assert record.reason == f"cancelled: fal_queue stopped job {step.handle.job_id}"
    assert sandbox.admin.get(f"/jobs/{step.handle.job_id}").json()["cancelled_at"] is not None
    billed = [u for u in sandbox.usage() if u["job_id"] == step.handle.job_id]
    assert not any(u["kind"] == "complete" for u in billed), billed  # the sandbox's word
    reconcile_and_compare(home, sandbox)


def test_a_sigterm_in_one_batch_row_stops_every_row_s_fal_job(home, sandbox, monkeypatch,
                                                             tmp_path):
    """The worker's SIGTERM lands in one row's code: the other rows are cancelled too, not
    left to wait their jobs out (and pay for them) while the run is being torn down."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from flows.batch import run_batch
    from models.batch import BatchRequest
    from tasks import awaiting

    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "200")
    sandbox.knobs(fal=SLOW)
    tag = uuid.uuid4().hex[:6]
    rows = [{"prompt": f"A kite {i} over dunes {tag}", "duration": 5, "resolution": "720p",
             "policy": "kling-v3-fal"} for i in range(3)]
    manifest = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    journal = journal_of(home)
    waiting = awaiting.await_step

    def ours() -> list:
        return [r for r in journal.records() if tag in r.request.prompt]

    async def first_row_terminated(rt, request, *args, **kwargs):
        if "kite 0" not in request.prompt:
            return await waiting(rt, request, *args, **kwargs)
        while len([r for r in ours() if r.steps and r.steps[0].handle]) < 3:
            await asyncio.sleep(0.05)  # every row's job submitted
        await terminated_in_our_code()

    monkeypatch.setattr("tasks.awaiting.await_step", first_row_terminated)
    terminated(run_batch(BatchRequest(manifest=str(manifest))))
    records = ours()
    assert sorted((r.steps[0].state, r.state) for r in records) == [("cancelled", "failed")] * 3
    for record in records:
        job = record.steps[0].handle.job_id
        assert sandbox.admin.get(f"/jobs/{job}").json()["cancelled_at"] is not None
        assert not [u for u in sandbox.usage() if u["job_id"] == job
                    and u["kind"] == "complete"]
    reconcile_and_compare(home, sandbox)


def test_a_job_its_provider_cannot_stop_runs_on_and_is_still_archived(home, sandbox,
                                                                      monkeypatch):
    from flows.sweep import sweep_archive

    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "200")
    sandbox.knobs(kling=SLOW)
    request = ClipRequest(prompt=f"A gull on a post {uuid.uuid4().hex[:6]}", duration=5,
                          resolution="720p", policy="kling-v3")
    cancelled_mid_wait(home, request)
    journal = journal_of(home)
    record = journal.read(request.clip_id)
    assert (record.steps[0].state, record.state) == ("pending", "pending")
    assert "cannot stop job" in record.reason and "the sweep" in record.reason
    sandbox.clock(advance_s=60)  # the job ends at the provider, billed
    asyncio.run(sweep_archive())
    assert journal.read(request.clip_id).state == "done"
    reconcile_and_compare(home, sandbox)


def test_reelflow_cancel_stops_a_clip_no_run_waits_on(home, sandbox, monkeypatch, capsys):
    import json

    from cli.main import main
    from tasks.awaiting import PendingAtDeadline

    sandbox.knobs(fal=SLOW)
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "0.02")  # the run gives up waiting first
    request = ClipRequest(prompt=f"A lantern in fog {uuid.uuid4().hex[:6]}", duration=5,
                          resolution="720p", policy="kling-v3-fal")
    with pytest.raises(PendingAtDeadline):
        asyncio.run(generate_clip(request))
    assert main(["cancel", request.clip_id[:12], "--json"]) == 0
    (job,) = json.loads(capsys.readouterr().out)["jobs"]
    assert job["stopped"] and job["clip_id"] == request.clip_id
    assert journal_of(home).read(request.clip_id).steps[0].state == "cancelled"
    assert main(["cancel", request.clip_id[:12]]) == 0
    assert "nothing in flight" in capsys.readouterr().out
    assert main(["cancel", "0000"]) == 2 and "reelflow: target" in capsys.readouterr().err
    reconcile_and_compare(home, sandbox)
