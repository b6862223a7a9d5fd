"""run_batch against the sandbox: a 200-request batch under the provider limits, the budget
guard, duplicates, reruns, and a batch killed midway then run again — the sandbox's usage log
is the judge of what was charged."""

import asyncio
import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.batch import run_batch, run_batch_chunk
from models.batch import CHUNK_DEPLOYMENT, BatchRequest
from tasks.batch_summary import BatchIncomplete
from tasks.manifest import ManifestError
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def requests(n: int, tag: str, **fields) -> list[dict]:
    return [{"prompt": f"Batch clip {i} of {tag}", "duration": 5, "resolution": "720p",
             **fields} for i in range(n)]



@pytest.mark.slow
def test_a_200_request_batch_stays_under_the_provider_limits(home, sandbox, tmp_path):
    sandbox.knobs(shared_render=True)
    rows = requests(200, uuid.uuid4().hex[:8])
    rows += rows[:5]  # five duplicates: generated once
    manifest = tmp_path / "batch.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["prompt", "duration", "resolution"])
        writer.writeheader()
        writer.writerows(rows)
    before, paid = sandbox.stats(), len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert (result.rows, result.unique, result.done, result.failed) == (205, 200, 200, 0)
    assert result.items[0].duplicates == [201]
    assert result.peak_in_flight == {"provider:kling:standard": 10}
    assert sandbox.stats().get("429:kling", 0) == before.get("429:kling", 0)  # no 429 at all
    journal = journal_of(home)
    assert all(journal.read(i.clip_id).state == "done" for i in result.items)
    assert len(sandbox.usage()) - paid == 200 and result.spent_usd == pytest.approx(200 * 0.14)
    assert_reconciled(home, sandbox)

    again = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert again.already_done == 200 and again.done == 0
    assert len(sandbox.usage()) - paid == 200


def test_a_batch_s_task_runs_carry_their_row(home, sandbox, tmp_path, caplog):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    manifest, tag = tmp_path / "batch.jsonl", uuid.uuid4().hex[:8]
    manifest.write_text("\n".join(json.dumps(r) for r in requests(2, tag)))
    caplog.set_level("INFO")
    state = asyncio.run(run_batch(BatchRequest(manifest=str(manifest)), return_state=True))
    # a row's routine lines (plan, submit, archive) are DEBUG: the batch's tables hold them;
    # what each job cost is said
    said = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    assert sum(" succeeded after " in line and " charged" in line for line in said) == 2, said
    assert not [line for line in said if line.startswith(("plan: ", "submitted ", "archived "))]
    expected = {f"row {row} · clip · Batch clip {row - 1} of {tag} · 5s 720p" for row in (1, 2)}

    async def names() -> set[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
            return {r.name for r in runs}
    # the server records task runs from their events, a moment after the flow returns
    deadline = time.monotonic() + 20
    while not expected <= (found := asyncio.run(names())) and time.monotonic() < deadline:
        time.sleep(0.5)
    # one task run per row: submit, await, archive (its retries too: tasks/step_runs.py),
    # prompt and inspection run inside it
    assert {name for name in found if name.startswith("row ")} == expected, found


def test_a_download_that_fails_past_its_resumes_is_archived_on_the_row_s_retry(
        home, sandbox, tmp_path, monkeypatch):
    monkeypatch.setattr("providers.download.backoff_s", lambda *args: 0.0)
    # one archive attempt's download and its eight resumes answer 503; the retry gets the file
    sandbox.faults({"kind": "5xx", "protocol": "files", "method": "GET", "count": 9})
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text(json.dumps(requests(1, uuid.uuid4().hex[:8])[0]))
    paid = len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert (result.done, result.failed) == (1, 0), result.items
    assert journal_of(home).read(result.items[0].clip_id).state == "done"
    assert len(sandbox.usage()) - paid == 1  # one job, billed once
    assert_reconciled(home, sandbox)


def test_the_budget_guard_stops_before_the_cap_and_lists_what_was_left(home, sandbox,
                                                                          tmp_path):
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in requests(8, uuid.uuid4().hex[:8])))
    paid = len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest), budget_usd=0.50)))
    assert result.estimated_usd == pytest.approx(8 * 0.14)
    assert (result.done, result.left) == (3, 5)  # 3 x $0.14 fit in $0.50; a 4th would not
    assert [i.row for i in result.items if i.status == "left"] == [4, 5, 6, 7, 8]
    assert result.spent_usd == pytest.approx(0.42) and len(sandbox.usage()) - paid == 3
    assert_reconciled(home, sandbox)

    # the cap is for all runs
    more = asyncio.run(run_batch(BatchRequest(manifest=str(manifest), budget_usd=0.90)))
    assert (more.already_done, more.done, more.left) == (3, 3, 2)
    assert more.spent_usd == pytest.approx(0.84) and len(sandbox.usage()) - paid == 6


def test_a_row_no_model_can_serve_stops_the_batch_before_anything_is_paid(home, sandbox,
                                                                            tmp_path):
    from tasks.manifest import ManifestError

    rows = requests(3, uuid.uuid4().hex[:8])
    rows[1]["policy"] = "sora-2"
    rows[1]["duration"] = 90  # over Sora 2's 60 s maximum
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    paid = len(sandbox.usage())
    with pytest.raises(ManifestError, match="row 2: duration"):
        asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert len(sandbox.usage()) == paid


@pytest.mark.slow
def test_a_batch_killed_midway_completes_on_rerun_with_nothing_charged_twice(home, sandbox,
                                                                              tmp_path,
                                                                              monkeypatch):
    sandbox.knobs(shared_render=True, kling={"p50_5s": 400, "p95_5s": 600, "p50_30s": 600})
    # the catalog's prior says ~0.06 s at this scale; these jobs take ~0.5 s: no deadline here
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "100")
    rows = requests(30, uuid.uuid4().hex[:8])
    manifest = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pylist(rows), manifest)
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": PREFECT_API_URL.value()}
    first = subprocess.Popen([sys.executable, "-m", "cli.main", "batch", str(manifest),
                              "--json"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    journal = journal_of(home)
    paid = len(sandbox.usage())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = Counter(r.state for r in journal.records())
        if states["done"] >= 5:
            break
        time.sleep(0.05)
    else:
        first.kill()
        raise AssertionError("the first run never finished five clips")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert result.done + result.already_done == 30 and result.failed == 0
    assert result.already_done >= 5
    usage = sandbox.usage()[paid:]
    assert len(usage) == 30  # one charge per clip, whichever run paid it
    assert len({r["job_id"] for r in usage}) == 30
    assert_reconciled(home, sandbox)


def test_limits_sync_creates_then_updates_each_account_s_limit(prefect_server, capsys,
                                                                monkeypatch, tmp_path):
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from cli.main import main

    assert main(["limits", "sync", "--json"]) == 0
    first = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert first["provider:kling:standard"]["limit"] == 10
    assert first["provider:sora:api"]["limit"] == 5

    async def tamper():
        async with get_client() as client:
            await client.update_global_concurrency_limit(
                "provider:kling:standard", GlobalConcurrencyLimitUpdate(limit=99))

    asyncio.run(tamper())
    assert main(["limits", "sync", "--json"]) == 0
    second = {c["name"]: c["action"] for c in json.loads(capsys.readouterr().out)}
    assert second["provider:kling:standard"] == "updated"
    assert {a for n, a in second.items() if n != "provider:kling:standard"} == {"unchanged"}


def test_with_prefect_limits_a_batch_takes_slots_from_the_shared_limits(home, sandbox,
                                                                         tmp_path, monkeypatch):
    from cli.main import main

    assert main(["limits", "sync"]) == 0
    monkeypatch.setenv("REELFLOW_CONCURRENCY_LIMITS", "prefect")
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in requests(12, uuid.uuid4().hex[:8])))
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert result.done == 12 and result.peak_in_flight["provider:kling:standard"] <= 10
    assert_reconciled(home, sandbox)


def test_a_missing_shared_limit_fails_the_run_instead_of_not_limiting(home, sandbox,
                                                                       monkeypatch):
    from prefect import get_client

    from flows.generate import generate_clip
    from models import ClipRequest

    async def drop():
        async with get_client() as client:
            for limit in await client.read_global_concurrency_limits(limit=200):
                await client.delete_global_concurrency_limit_by_name(limit.name)

    asyncio.run(drop())
    monkeypatch.setenv("REELFLOW_CONCURRENCY_LIMITS", "prefect")
    paid = len(sandbox.usage())
    with pytest.raises(Exception, match="provider:kling:standard"):
        asyncio.run(generate_clip(ClipRequest(prompt=f"Unlimited {uuid.uuid4().hex[:6]}",
                                              duration=5, resolution="720p")))
    assert len(sandbox.usage()) == paid


def chunks_run_here(monkeypatch, crash: str | None = None, api_fails: str | None = None,
                    worker_home: Path | None = None) -> list[str]:
    """fan_out=deployments without a server's workers: run_deployment runs each chunk here,
    as a worker would, except the run whose key ends with `crash`, reported Crashed (as a
    worker does when the server answers 503 before the run starts), and the first call for
    the key ending with `api_fails`, which raises the 500 Prefect's client raises when the
    server fails reading a run. `worker_home`: the chunks' REELFLOW_HOME (a worker on another
    machine, whose home is not the batch's). Returns the keys sent."""
    import uuid as uuid_
    from types import SimpleNamespace

    import httpx
    import prefect.deployments

    sent = []

    async def run_deployment(name, idempotency_key, parameters, as_subflow):
        assert name == CHUNK_DEPLOYMENT and as_subflow  # polling chunks are subflows
        sent.append(idempotency_key)
        if crash and idempotency_key.endswith(crash):
            return SimpleNamespace(id=uuid_.uuid4(), state=SimpleNamespace(name="Crashed"))
        if api_fails and idempotency_key.endswith(api_fails) and sent.count(idempotency_key) == 1:
            request = httpx.Request("GET", "http://127.0.0.1/api/flow_runs/x")
            raise httpx.HTTPStatusError("500 Internal Server Error", request=request,
                                        response=httpx.Response(500, request=request))
        if worker_home:
            monkeypatch.setenv("REELFLOW_HOME", str(worker_home))
        state = await run_batch_chunk(**parameters, return_state=True)
        return SimpleNamespace(id=state.state_details.flow_run_id,
                               state=SimpleNamespace(name=state.name))

    monkeypatch.setattr(prefect.deployments, "run_deployment", run_deployment)
    return sent


def six_rows_in_two_chunk_runs(home, sandbox, tmp_path, sent: list[str]) -> list[str]:
    """Six requests as chunk runs of three, all done, each paid once by the bill; the chunk
    runs' keys sent, without the parent run's id."""
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in requests(6, uuid.uuid4().hex[:8])))
    paid = len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest), fan_out="deployments",
                                                chunk_size=3)))
    assert result.done == 6 and result.failed == 0
    assert len(sandbox.usage()) - paid == 6
    assert_reconciled(home, sandbox)
    return sorted(k.split(":", 1)[1] for k in sent)


def test_a_chunk_run_that_crashed_is_sent_again_and_nothing_is_paid_twice(home, sandbox,
                                                                           tmp_path,
                                                                           monkeypatch):
    sent = chunks_run_here(monkeypatch, crash=":0:0")
    assert six_rows_in_two_chunk_runs(home, sandbox, tmp_path, sent) == ["0:0", "0:1", "1:0"]


def test_a_chunk_run_the_prefect_api_failed_under_is_awaited_again_not_sent_again(
        home, sandbox, tmp_path, monkeypatch):
    """One API error while a chunk run is awaited used to fail the whole batch (bench fleet,
    N=600): now the same call is made again, with the same key — the same run."""
    monkeypatch.setattr("tasks.fan_out_deployments.API_RETRY_WAITS_S", (0.0,))
    sent = chunks_run_here(monkeypatch, api_fails=":1:0")
    assert six_rows_in_two_chunk_runs(home, sandbox, tmp_path, sent) == ["0:0", "1:0", "1:0"]


def test_a_request_the_prefect_api_failed_under_goes_on_from_the_journal(home, sandbox,
                                                                         tmp_path, monkeypatch):
    """The failure of the N=1000 bench: an overloaded Prefect server answered 503 while a task
    took its concurrency slots. Here the API "fails" after two clips' jobs were paid and
    polled to the end (the worst moment), and for every attempt of a third: the first two go
    on from the journal — no second charge, no second job — the third is reported failed,
    and a rerun finishes it, paying it once."""
    import httpx
    from prefect.concurrency.asyncio import ConcurrencySlotAcquisitionError
    from prefect.exceptions import PrefectHTTPStatusError

    import tasks.awaiting
    import tasks.fan_out_tasks

    def api_503(names: str) -> ConcurrencySlotAcquisitionError:
        request = httpx.Request("POST", "http://prefect/api/v2/concurrency_limits/increment")
        cause = PrefectHTTPStatusError("503 Service Unavailable", request=request,
                                       response=httpx.Response(503, request=request))
        try:
            raise cause
        except PrefectHTTPStatusError as http:
            try:
                raise ConcurrencySlotAcquisitionError(f"Unable to acquire concurrency slots on "
                                                      f"{names}: 503") from http
            except ConcurrencySlotAcquisitionError as err:
                return err

    real_await = tasks.awaiting.await_step  # inside the row's task run (tasks/step_runs.py)
    rows = requests(5, uuid.uuid4().hex[:8])
    failed_once: set[str] = set()

    async def flaky_await(rt, request, decision, index, handle, on_progress=None):
        outcome = await real_await(rt, request, decision, index, handle, on_progress)
        prompt = request.prompt
        if prompt == rows[4]["prompt"]:
            raise api_503("['tag:always']")
        if prompt in (rows[0]["prompt"], rows[1]["prompt"]) and prompt not in failed_once:
            failed_once.add(prompt)
            raise api_503("['tag:once']")
        return outcome

    monkeypatch.setattr(tasks.awaiting, "await_step", flaky_await)
    monkeypatch.setattr(tasks.fan_out_tasks, "API_BACKOFF_S", 0.01)
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows))
    paid = len(sandbox.usage())
    with pytest.raises(BatchIncomplete) as raised:
        asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    result = raised.value.result
    assert (result.done, result.failed) == (4, 1) and failed_once == {
        rows[0]["prompt"], rows[1]["prompt"]}
    assert [i.row for i in result.items if i.status == "failed"] == [5]
    assert "ConcurrencySlotAcquisitionError" in result.items[4].error
    usage = sandbox.usage()[paid:]
    assert len(usage) == 5 and len({r["job_id"] for r in usage}) == 5  # the failed one paid too

    monkeypatch.setattr(tasks.awaiting, "await_step", real_await)
    again = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert (again.already_done, again.done, again.failed) == (4, 1, 0)
    assert len(sandbox.usage()) - paid == 5  # its job was resumed, not paid again
    assert_reconciled(home, sandbox)


def test_failure_charges_and_retries_count_against_the_budget_before_each_submit(
        home, sandbox, tmp_path):
    """Every Kling job fails (a 20% failure charge each); each request retries, then falls
    back to Kling on fal. Admitted on their estimates alone, 3 x $0.14 fit a $0.45 budget and
    the batch would pay $0.59. Asked before each submit, the guard sees the failure charges
    and stops: what the provider billed stays within the budget, and the rest is left."""
    sandbox.knobs(kling={"failure_rate": 1.0})
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in requests(3, uuid.uuid4().hex[:8])))
    paid = len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest), budget_usd=0.45)))
    billed = sum(Decimal(r["usd"]) for r in sandbox.usage()[paid:])
    # all three submitted (0.42 fits); the first retry fits (0.028 + 0.14 + 2 x 0.14 owed =
    # 0.448); the next would not (0.476): the batch stops with 4 failure charges paid
    assert billed == Decimal("0.112") and result.spent_usd == pytest.approx(0.112)
    assert [i.status for i in result.items] == ["left"] * 3
    assert sorted(i.cost_usd for i in result.items) == pytest.approx([0.028, 0.028, 0.056])
    assert all(i.error.startswith("not submitted:") and "past the $0.45 budget" in i.error
               for i in result.items)
    assert_reconciled(home, sandbox)


def test_each_chunk_run_keeps_within_its_share_of_the_budget(home, sandbox, tmp_path,
                                                             monkeypatch):
    """fan_out=deployments, every Kling job failing: the parent admits 3 x $0.14 of a $0.45
    budget and sends chunks of one; each chunk run gets its $0.14 share and its own guard,
    which stops the retry that would cross it. The bill stays within the budget and the rows
    come back as left, not failed, and are not sent again."""
    sandbox.knobs(kling={"failure_rate": 1.0})
    sent = chunks_run_here(monkeypatch)
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in requests(3, uuid.uuid4().hex[:8])))
    paid = len(sandbox.usage())
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest), budget_usd=0.45,
                                                fan_out="deployments", chunk_size=1)))
    billed = sum(Decimal(r["usd"]) for r in sandbox.usage()[paid:])
    assert billed == Decimal("0.084")  # one failure charge each: a retry would owe 0.168
    assert [i.status for i in result.items] == ["left"] * 3 and len(sent) == 3
    assert all("past the $0.14 budget" in i.error for i in result.items)
    assert result.spent_usd == pytest.approx(0.084)
    assert_reconciled(home, sandbox)


def test_a_credit_limited_account_takes_rows_until_its_credits_are_used(home, monkeypatch):
    """A Kling key on the Free plan ($0, 66 s a month) is the cheapest. Each 5 s row alone
    fits; the batch does not: 13 rows (65 s) go to Free, the rest elsewhere (the key holds no
    other Kling plan), each saying why — planned before anything is paid."""
    from models.batch import ManifestRow
    from tasks.batch_plan import plan_all
    from tasks.runtime import build_runtime

    monkeypatch.setenv("REELFLOW_SUBSCRIPTIONS", "kling:free")
    rows = [ManifestRow(row=i + 1, request=r)
            for i, r in enumerate(requests(15, uuid.uuid4().hex[:8]))]
    rt = build_runtime("plan-test")
    try:
        planned = plan_all(rt, rows)
        plans = [planned[row.request.clip_id] for row in rows]
    finally:
        asyncio.run(rt.aclose())
    assert [(p.model, p.tier) for p in plans[:13]] == [("kling-v3", "free")] * 13
    assert all(p.provider != "kling" for p in plans[13:])  # a gateway: the key is on Free
    assert sum(p.seconds_billed for p in plans[:13]) == 65
    why = next(c.reason for c in plans[13].rejected if (c.model, c.tier) == ("kling-v3", "free"))
    assert why == "its 66 credits a month (66 s) are taken by earlier rows of this batch"


def test_post_processing_keeps_to_its_own_bounds(home, sandbox, tmp_path, monkeypatch):
    """A burst of completions is archived and inspected a few at a time (settings), so the
    thread pool keeps room for the journal's writes and polling goes on."""
    import tasks.archiving
    import tasks.inspection

    monkeypatch.setenv("REELFLOW_INSPECTION_CONCURRENCY", "1")
    monkeypatch.setenv("REELFLOW_ARCHIVE_CONCURRENCY", "2")
    sandbox.knobs(shared_render=True)
    busy, peak = Counter(), Counter()

    @contextlib.contextmanager
    def held(name):
        busy[name] += 1
        peak[name] = max(peak[name], busy[name])
        try:
            yield
        finally:
            busy[name] -= 1

    inspect, fetch = tasks.inspection.inspect_and_trim, tasks.archiving._fetch

    def slow_inspect(*args):
        with held("inspect"):
            time.sleep(0.3)
            return inspect(*args)

    async def slow_fetch(*args):
        with held("archive"):
            await asyncio.sleep(0.3)
            return await fetch(*args)

    monkeypatch.setattr(tasks.inspection, "inspect_and_trim", slow_inspect)
    monkeypatch.setattr(tasks.archiving, "_fetch", slow_fetch)
    manifest = tmp_path / "burst.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in requests(8, uuid.uuid4().hex[:8])))
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert result.done == 8
    assert peak == {"inspect": 1, "archive": 2}
    assert_reconciled(home, sandbox)


def test_a_batch_row_refused_on_policy_is_sent_once_and_refused_before_paying_when_run_again(
        home, sandbox, tmp_path):
    """The cost bench's refused prompts: one job each (AtlasCloud's, the only provider no
    pre-flight rule rules out), not one per AtlasCloud model; the rest of the batch is made;
    the same manifest run again pays nothing and sends nothing for the refused row."""
    tag = uuid.uuid4().hex[:8]
    rows = [*requests(1, tag), {"prompt": f"A gore scene {tag}", "duration": 5,
                                "resolution": "720p"}]
    manifest = tmp_path / "refused.jsonl"
    manifest.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    with pytest.raises(BatchIncomplete) as raised:
        asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    items = sorted(raised.value.result.items, key=lambda item: item.row)
    assert [item.status for item in items] == ["done", "failed"]
    assert "atlascloud's content policy refused this prompt" in items[1].error
    assert [j["protocol"] for j in sandbox.jobs(f"gore scene {tag}")] == ["atlascloud"]
    paid = len(sandbox.usage())
    with pytest.raises(ManifestError) as again:  # planned before paying: the row is named
        asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    assert again.value.field == "row 2: prompt" and "routed around" in again.value.message
    assert len(sandbox.jobs(f"gore scene {tag}")) == 1 and len(sandbox.usage()) == paid
    assert_reconciled(home, sandbox)
