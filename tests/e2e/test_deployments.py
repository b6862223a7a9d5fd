"""The path users take: a real Prefect server and process workers on loopback, deployments
from prefect.yaml, `prefect deployment run ... --watch` — then two workers sharing a 100-request
batch sent as chunk runs. The sandbox's usage log judges what was generated and charged.
Everything started here is stopped here. Times are printed (run with -s, as `make test` does).
"""

import json
import os
import re
import shutil
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
    (record,) = [r for r in Journal(stack["home"] / "journal").records()
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
        journal = Journal(stack["home"] / "journal")
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
                    and u["kind"] == "generation"]
    finally:
        sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143})
