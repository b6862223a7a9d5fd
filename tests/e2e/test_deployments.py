"""The path users take: a real Prefect server and process workers on loopback, deployments
from prefect.yaml, `prefect deployment run ... --watch` — then two workers sharing a 100-request
batch sent as chunk runs. The sandbox's usage log judges what was generated and charged.
Everything started here is stopped here. Times are printed (run with -s, as `make test` does).
"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from scripts.local_services import descendants
from storage.journal_folder import FolderJournal
from storage.ledger import read_ledger
from tests.sandbox_process import start_sandbox

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A sandbox, then server + pool + limits + deployments + two workers; all stopped after
    the module's tests."""
    tmp_path = tmp_path_factory.mktemp("stack")
    sandbox = start_sandbox(tmp_path / "sandbox", "--calm", "--shared-render")
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
           "REELFLOW_HOME": str(home), "REELFLOW_SANDBOX": sandbox.url,
           "REELFLOW_SANDBOX_TIME_SCALE": "0.001",
           # the catalog's p95 at this scale is a fraction of a second: a job the tests slow
           # down (knobs) would be left pending before they could cancel or watch it
           "REELFLOW_POLL_DEADLINE_K": "200",
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
    journal = FolderJournal(stack["home"] / "journal")
    (record,) = [r for r in journal.records() if r.request.prompt == prompt]
    assert record.state == "done" and Path(record.archive.path).exists()
    kinds = sorted(r["event_kind"] for r in read_ledger(stack["home"] / "ledger"))
    assert kinds == ["complete", "inspection", "submit"]
    artifacts = httpx.post(f"{stack['api']}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    keys = {a["key"] for a in artifacts}
    assert {f"clip-{record.clip_id[:16]}", f"clip-{record.clip_id[:16]}-file"} <= keys

    bad = deployment_run(stack, "generate-clip/on-demand",
                         'request={"prompt": "x", "duration": 5, "resolution": "8k"}')
    assert bad.returncode != 0  # refused by the server against the form, before any run
    assert "Validation failed for field 'request'" in bad.stdout + bad.stderr

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


def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing under CI: .ci/run installs Debian's chromium")
        pytest.skip("Chromium not installed here (CI installs it)")
    return binary


def test_the_ui_opens_a_finished_run_with_its_name_summary_and_forms(stack, tmp_path):
    """What a person sees in a real browser (Playwright driving Debian's Chromium): the run
    a deployment made, by its name; its clip summary with cost, jobs and a thumbnail that
    loads; the Custom run form with no internal field and the policy a choice. Screenshots
    go to the test's folder (and UI_SCREENSHOT_DIR when set)."""
    from playwright.sync_api import sync_playwright

    binary = chromium()
    prompt = f"A heron lands {uuid.uuid4().hex[:6]}"
    done = deployment_run(stack, "generate-clip/on-demand", "request=" + json.dumps(
        {"prompt": prompt, "duration": 5, "resolution": "720p"}))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_id = re.search(r"UUID: ([0-9a-f-]{36})", done.stdout).group(1)
    (record,) = [r for r in FolderJournal(stack["home"] / "journal").records()
                 if r.request.prompt == prompt]
    api, ui = stack["api"], stack["api"].removesuffix("/api")
    summary = next(a for a in httpx.post(f"{api}/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
        if a["key"] == f"clip-{record.clip_id[:16]}")
    deployment = httpx.get(f"{api}/deployments/name/generate-clip/on-demand").json()
    shots = []

    def shot(page, name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        shots.append(path)
        if folder := os.environ.get("UI_SCREENSHOT_DIR"):
            shutil.copy(path, Path(folder) / path.name)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        page.goto(f"{ui}/runs/flow-run/{run_id}", wait_until="networkidle")
        name = f"clip · {prompt} · 5s 720p"
        page.get_by_text(name).first.wait_for(timeout=30_000)
        assert page.title().startswith(f"Flow Run: {name}")
        shot(page, "ui-run")

        page.goto(f"{ui}/artifacts/artifact/{summary['id']}", wait_until="networkidle")
        page.get_by_role("heading", name="Jobs").wait_for(timeout=30_000)
        heading = page.get_by_role("heading", level=1).first.inner_text()
        assert heading.endswith("Kling v3 · standard · $0.14"), heading
        text = page.inner_text("body")
        assert record.job_ids[0] in text and "succeeded" in text and record.archive.path in text
        width = page.eval_on_selector(f"img[alt='a frame of clip {record.clip_id[:12]}']",
                                      "img => img.complete ? img.naturalWidth : 0")
        assert width > 100  # the thumbnail loaded in the browser
        shot(page, "ui-clip-summary")

        page.goto(f"{ui}/deployments/deployment/{deployment['id']}/run", wait_until="networkidle")
        page.get_by_text("Text to video").first.wait_for(timeout=30_000)
        form = page.inner_text("body")
        for internal in ("Image Sha256", "Storyboard Id", "Batch Id", "Source Clip"):
            assert internal not in form, internal
        assert 'Property is type "None"' not in form
        labels = page.locator(".schema-form-property__label").all_inner_texts()
        assert {"Prompt", "Duration (s)"} <= set(labels), labels  # required: no "(Optional)"
        policy = page.locator(".schema-form-property").filter(  # the innermost: Policy's own
            has=page.get_by_text("Policy (Optional)", exact=True)).last
        # a choice (the UI's select, its values the schema's enum), not free text
        assert policy.locator(".p-select").count() == 1
        assert policy.locator("textarea, input").count() == 0
        assert policy.locator(".p-select-button__value").inner_text() == "cheapest"
        shot(page, "ui-custom-run-form")
        browser.close()
    print("screenshots: " + ", ".join(str(p) for p in shots))


def test_cancelling_a_run_stops_its_provider_job(stack):
    """The UI's Cancel (the API call it makes): the worker's run is terminated, and its fal job
    is asked to stop first — the journal says so and the sandbox's job is cancelled, unbilled
    for a generation."""
    sandbox = stack["sandbox"]
    sandbox.knobs(fal={"p50_5s": 40000, "p95_5s": 50000, "p50_30s": 60000})
    prompt = f"A kite over dunes {uuid.uuid4().hex[:6]}"
    try:
        sent = subprocess.run([str(BIN / "prefect"), "deployment", "run",
                               "generate-clip/on-demand", "--param", "request=" + json.dumps(
                                   {"prompt": prompt, "duration": 5, "resolution": "720p",
                                    "policy": "kling-v3-fal"})],
                              cwd=REPO, env=stack["env"], capture_output=True, text=True,
                              timeout=120)
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", sent.stdout).group(1)
        journal = FolderJournal(stack["home"] / "journal")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            records = [r for r in journal.records() if r.request.prompt == prompt]
            if records and records[0].steps and records[0].steps[0].handle:
                break
            time.sleep(0.2)
        httpx.post(f"{stack['api']}/flow_runs/{run_id}/set_state", json={
            "state": {"type": "CANCELLING", "message": "cancelled in the UI"}, "force": True}
                   ).raise_for_status()
        while time.monotonic() < deadline:
            state = httpx.get(f"{stack['api']}/flow_runs/{run_id}").json()["state"]["type"]
            if state in ("CANCELLED", "CRASHED", "FAILED", "COMPLETED"):
                break
            time.sleep(0.5)
        assert state == "CANCELLED"
        (record,) = [r for r in journal.records() if r.request.prompt == prompt]
        job = record.steps[0].handle.job_id
        assert (record.state, record.steps[0].state) == ("failed", "cancelled")
        assert sandbox.admin.get(f"/jobs/{job}").json()["cancelled_at"] is not None
        assert not [u for u in sandbox.usage() if u["job_id"] == job
                    and u["kind"] == "complete"]
    finally:
        sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143})


def _processes_of_run(run_id: str) -> list[int]:
    """The processes running flow run `run_id` (their PREFECT__FLOW_RUN_ID), on this machine."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"PREFECT__FLOW_RUN_ID={run_id}".encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def _suspended_run(stack, prompt: str, via: str) -> tuple[str, Callable[[], dict]]:
    """A generate-clip deployment run with wait=suspend, started by `reelflow generate --wait
    suspend` or `prefect deployment run`, once it is Suspended: (its id, its state's reader)."""
    request = {"prompt": prompt, "duration": 5, "resolution": "720p", "policy": "kling-v3-fal"}
    args = [str(BIN / "reelflow"), "generate", "--prompt", prompt, "--duration", "5",
            "--resolution", "720p", "--policy", "kling-v3-fal", "--wait", "suspend", "--json"] \
        if via == "reelflow" else [str(BIN / "prefect"), "deployment", "run",
                                   "generate-clip/on-demand", "--param", "wait=suspend",
                                   "--param", "request=" + json.dumps(request)]
    sent = subprocess.run(args, cwd=REPO, env=stack["env"], capture_output=True, text=True,
                          timeout=120)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    run_id = json.loads(sent.stdout)["flow_run_id"] if via == "reelflow" else re.search(
        r"UUID: ([0-9a-f-]{36})", sent.stdout).group(1)

    def state() -> dict:
        return httpx.get(f"{stack['api']}/flow_runs/{run_id}").json()["state"]

    _until(lambda: state()["name"] == "Suspended", 180, state)
    return run_id, state


def _until(done: Callable[[], bool], timeout: float, said: Callable[[], object]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, said()
        time.sleep(0.3)


def _billed_once_and_done(stack, prompt: str) -> str:
    """The clip is done, one job made it, and the sandbox billed it once: the job's id."""
    (record,) = [r for r in FolderJournal(stack["home"] / "journal").records()
                 if r.request.prompt == prompt]
    assert record.state == "done" and len(record.job_ids) == 1
    job = record.job_ids[0]
    billed = [u for u in stack["sandbox"].usage() if u["job_id"] == job]
    assert [u["kind"] for u in billed] == ["complete"], json.dumps(billed)
    return job


def test_a_suspended_run_waits_with_no_process_and_the_relay_wakes_it(stack):
    """wait=suspend (issue 25), from `reelflow generate --wait suspend`: after its submit the
    deployment's run suspends — no process of it is left
    while the provider renders — and the sandbox's signed fal delivery, through the stack's
    relay, resumes it; the resumed run sends nothing again, archives the clip once, and the
    sandbox billed one generation."""
    sandbox = stack["sandbox"]
    sandbox.knobs(fal={"p50_5s": 15000, "p95_5s": 18000, "p50_30s": 30000})
    prompt = f"A heron lifts off {uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    try:
        run_id, state = _suspended_run(stack, prompt, via="reelflow")
        suspended_at = time.monotonic()
        _until(lambda: not _processes_of_run(run_id), 20, lambda: "its process still runs")
        exited_s = time.monotonic() - suspended_at
        idle = []  # no process of the run, sampled while it is suspended
        while state()["name"] == "Suspended" and time.monotonic() < suspended_at + 120:
            idle.append(not _processes_of_run(run_id))
            time.sleep(0.5)
        woken_at = time.monotonic()
        _until(lambda: state()["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"), 120,
               state)
        assert state()["type"] == "COMPLETED", state()
        print(f"suspend: submitted and suspended in {suspended_at - started:.1f} s, its "
              f"process gone {exited_s:.1f} s later, suspended "
              f"{woken_at - suspended_at:.1f} s ({sum(idle)} of {len(idle)} samples with no "
              f"process), done {time.monotonic() - woken_at:.1f} s after the wake")
        assert idle and all(idle)
        job = _billed_once_and_done(stack, prompt)
        deliveries = sandbox.admin.get("/webhooks", params={"job_id": job}).json()["deliveries"]
        assert [a["status_code"] for d in deliveries for a in d["attempts"]] == [200]
        assert f"woke run {run_id}" in (stack["state"] / "relay.log").read_text()
    finally:
        sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143})


def test_a_lost_webhook_delays_a_suspended_clip_and_the_sweep_collects_it(stack):
    """The provider's delivery never comes (dropped), and a worker is SIGKILLed while the run
    is suspended (no process of the run to lose; another worker takes its place): the run
    stays suspended until the sweep, the backstop, collects the clip and resumes the run, which
    finds it done — one job, one charge, one archive."""
    sandbox = stack["sandbox"]
    sandbox.knobs(fal={"p50_5s": 4000, "p95_5s": 5000, "p50_30s": 8000},
                  webhooks={"drop_rate": 1.0})
    prompt = f"A heron in the reeds {uuid.uuid4().hex[:6]}"
    try:
        run_id, state = _suspended_run(stack, prompt, via="prefect")
        journal = FolderJournal(stack["home"] / "journal")
        (record,) = [r for r in journal.records() if r.request.prompt == prompt]
        job = record.steps[0].handle.job_id
        def billed() -> bool:  # reading the job settles its charges as of now
            sandbox.admin.get(f"/jobs/{job}")
            return bool(sandbox.usage(job_id=job))

        worker = json.loads((stack["state"] / "stack.json").read_text())["pids"]["worker-0"]
        for victim in [worker, *descendants(worker)]:  # a worker lost while nothing runs
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        added = subprocess.run([sys.executable, "scripts/stack.py", "add-worker", "--state",
                                str(stack["state"])], cwd=REPO, env=stack["env"],
                               capture_output=True, text=True, timeout=120)
        assert added.returncode == 0, added.stdout + added.stderr
        _until(billed, 60, lambda: f"job {job} never ended")
        time.sleep(2)
        assert state()["name"] == "Suspended", run_id  # no callback came, nothing woke it
        done = deployment_run(stack, "sweep-archive/hourly", timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        _until(lambda: state()["type"] in ("COMPLETED", "FAILED", "CRASHED"), 120, state)
        assert state()["type"] == "COMPLETED", state()
        assert _billed_once_and_done(stack, prompt) == job
        assert [d["state"] for d in sandbox.admin.get(
            "/webhooks", params={"job_id": job}).json()["deliveries"]] == ["dropped"]
    finally:
        sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143},
                      webhooks={"drop_rate": 0.0})


def _suspensions(stack, run_id: str) -> int:
    states = httpx.get(f"{stack['api']}/flow_run_states/",
                       params={"flow_run_id": run_id}).json()
    return sum(s["name"] == "Suspended" for s in states)


def test_a_suspended_batch_resumes_each_chunk_run_once_racing_the_backstop(stack, tmp_path):
    """wait=suspend on a batch (issue 25 item 4): its chunks go out as top-level runs of the
    chunk deployment; each submits its clips, suspends once on all of their jobs, and is
    resumed once — by the relay, or by the sweep's backstop, whichever comes first: the
    webhooks are held back, and the sweep is run as the jobs end, so the two race. Judged by
    the sandbox's bill: one charge per job, no clip generated twice, each chunk run
    suspended once, the ledger reconciled."""
    sandbox = stack["sandbox"]
    sandbox.knobs(fal={"p50_5s": 4000, "p95_5s": 5000, "p50_30s": 8000},
                  webhooks={"delay_s": 4.0})
    tag = uuid.uuid4().hex[:8]
    manifest = tmp_path / "suspended.jsonl"
    manifest.write_text("\n".join(json.dumps({
        "prompt": f"A suspended batch {i} {tag}", "duration": 5, "resolution": "720p",
        "policy": "kling-v3-fal"}) for i in range(6)))
    paid = len(sandbox.usage())
    started = time.monotonic()
    since = datetime.now(UTC).isoformat()
    try:
        batch = subprocess.Popen(
            [str(BIN / "prefect"), "deployment", "run", "run-batch/on-demand", "--watch",
             "--watch-timeout", "600", "--param", "batch=" + json.dumps(
                 {"manifest": str(manifest), "fan_out": "deployments", "chunk_size": 3,
                  "wait": "suspend"})],
            cwd=REPO, env=stack["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        journal = FolderJournal(stack["home"] / "journal")

        def clips():
            return [r for r in journal.records() if r.request.prompt.endswith(tag)]

        def all_billed() -> bool:
            jobs = [s.handle.job_id for r in clips() for s in r.steps if s.handle]
            for job in jobs:  # reading a job settles its charges as of now
                sandbox.admin.get(f"/jobs/{job}")
            return len(jobs) == 6 and all(sandbox.usage(job_id=job) for job in jobs)

        _until(all_billed, 240, lambda: [(r.state, len(r.steps)) for r in clips()])
        sweep = deployment_run(stack, "sweep-archive/hourly", timeout=300)
        assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
        out, _ = batch.communicate(timeout=600)
        assert batch.returncode == 0, out[-4000:]
    finally:
        if batch.poll() is None:
            batch.kill()
        sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143},
                      webhooks={"delay_s": 0.0})
    usage = sandbox.usage()[paid:]
    assert len(usage) == 6 and len({u["job_id"] for u in usage}) == 6, usage
    assert {u["kind"] for u in usage} == {"complete"}
    assert all(r.state == "done" and len(r.job_ids) == 1 for r in clips())
    chunks = httpx.post(f"{stack['api']}/flow_runs/filter", json={
        "deployments": {"name": {"any_": ["chunk"]}},
        "flow_runs": {"expected_start_time": {"after_": since}}}).json()
    chunks = [c for c in chunks if c["parameters"]["chunk"]["wait"] == "suspend"]
    suspensions = {c["id"]: _suspensions(stack, c["id"]) for c in chunks}
    relay_log = (stack["state"] / "relay.log").read_text()
    woken_by_relay = sum(f"woke run {c}" in relay_log for c in suspensions)
    print(f"suspended batch: 6 clips in {time.monotonic() - started:.1f} s, chunk runs "
          f"suspended {sorted(suspensions.values())} times, {woken_by_relay} woken by the "
          "relay, the others by the backstop")
    assert len(chunks) == 2 and all(c["state_type"] == "COMPLETED" for c in chunks), chunks
    assert all(c["parent_task_run_id"] is None for c in chunks)  # top-level, so suspendable
    assert sorted(suspensions.values()) == [1, 1], suspensions
