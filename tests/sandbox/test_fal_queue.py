"""The fal queue protocol, checked with the official fal_client over TLS, and raw HTTP."""

import base64
import io
import json
import os
import subprocess
import sys

import httpx
import pytest
from PIL import Image

from tests.sandbox_process import REPO, start_sandbox

APP = "fal-ai/kling-video/v3/standard/text-to-video"

FAL_SCRIPT = """
import json, time, fal_client
app = "fal-ai/kling-video/v3/standard/text-to-video"
handle = fal_client.submit(app, arguments={"prompt": "a fox in snow", "duration": "5"})
status = fal_client.status(app, handle.request_id, with_logs=True)
result = handle.get()
slow = fal_client.submit(app, arguments={"prompt": "slow", "duration": "15"})
fal_client.cancel(app, slow.request_id)
print(json.dumps({"id": handle.request_id, "status": type(status).__name__,
                  "result": result, "same": fal_client.result(app, handle.request_id) == result}))
"""


@pytest.fixture(scope="module")
def tls_sandbox(tmp_path_factory):
    server = start_sandbox(tmp_path_factory.mktemp("tls-state"), "--calm", "--tls")
    yield server
    server.stop()


def test_official_fal_client_runs_unchanged_over_tls(tls_sandbox):
    host = tls_sandbox.url.removeprefix("https://") + "/fal"
    env = {**os.environ, "FAL_QUEUE_RUN_HOST": host, "SSL_CERT_FILE": tls_sandbox.ca_file,
           "FAL_KEY": "fal-test-key", "PYTHONPATH": str(REPO)}
    # the 5 s job as fast as ever; the 15 s one lasts ~100 s at this time scale, so the cancel
    # always finds it running (on a loaded machine it had finished first: 400)
    tls_sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 250_000})
    out = subprocess.run([sys.executable, "-c", FAL_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    video = report["result"]["video"]
    assert video["content_type"] == "video/mp4" and video["file_name"] == "output.mp4"
    assert video["url"].startswith(tls_sandbox.url + "/files/") and report["same"]
    data = httpx.get(video["url"], verify=tls_sandbox.verify).content
    assert len(data) == video["file_size"]
    kinds = {(r["job_id"], r["kind"]) for r in tls_sandbox.usage()}
    assert (report["id"], "complete") in kinds
    assert len(kinds) == 1  # the cancelled request is not billed


@pytest.fixture
def fal(sandbox, key):
    with httpx.Client(base_url=sandbox.url + "/fal", timeout=30,
                      headers={"Authorization": f"Key {key}"}) as client:
        yield client


def test_urls_are_built_on_owner_and_app(fal):
    body = fal.post(f"/{APP}", json={"prompt": "x"}).json()
    assert body["status"] in ("IN_QUEUE", "IN_PROGRESS")
    assert body["status_url"].endswith(f"/fal/fal-ai/kling-video/requests/{body['request_id']}"
                                       "/status")


def test_status_is_202_until_completed_then_200(fal, sandbox):
    sandbox.knobs(fal={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    slow = fal.post(f"/{APP}", json={"prompt": "x"}).json()
    pending = fal.get(slow["status_url"].split("/fal", 1)[1], params={"logs": 1})
    assert pending.status_code == 202 and pending.json()["status"] == "IN_QUEUE"
    assert pending.json()["queue_position"] == 0
    early = fal.get(slow["response_url"].split("/fal", 1)[1])
    assert early.status_code == 400
    sandbox.knobs(fal={"p50_5s": 38, "p95_5s": 94, "p50_30s": 143})
    fast = fal.post(f"/{APP}", json={"prompt": "x"}).json()
    from tests.sandbox.conftest import wait_until

    done = wait_until(lambda: (r := fal.get(fast["status_url"].split("/fal", 1)[1]))
                      .status_code == 200 and r)
    assert done.json()["status"] == "COMPLETED" and "inference_time" in done.json()["metrics"]
    cancel = fal.put(fast["cancel_url"].split("/fal", 1)[1])
    assert (cancel.status_code, cancel.json()["status"]) == (400, "ALREADY_COMPLETED")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "x", "multi_prompt": [{"prompt": "a", "duration": "5"}]}, "prompt"),
        ({}, "prompt"),
        ({"prompt": "x", "duration": 5}, "duration"),
        ({"prompt": "x", "duration": "20"}, "duration"),
        ({"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio"),
    ],
)
def test_invalid_arguments_are_422_with_fastapi_detail(fal, body, field):
    response = fal.post(f"/{APP}", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]


def test_multi_prompt_makes_one_clip_of_the_summed_shots(fal, sandbox):
    body = fal.post(f"/{APP}", json={"multi_prompt": [{"prompt": "a", "duration": "3"},
                                                      {"prompt": "b", "duration": "4"}]}).json()
    from tests.sandbox.conftest import wait_until

    wait_until(lambda: fal.get(body["status_url"].split("/fal", 1)[1]).status_code == 200)
    assert sandbox.usage(job_id=body["request_id"])[0]["seconds"] == 7


def _data_uri(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 100, 50)).save(out, "JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def test_image_to_video_takes_a_data_uri_and_refuses_4_3(fal):
    app = "fal-ai/kling-video/v3/pro/image-to-video"
    ok = fal.post(f"/{app}", json={"prompt": "x", "start_image_url": _data_uri(1280, 720)})
    assert ok.status_code == 200
    bad = fal.post(f"/{app}", json={"prompt": "x", "start_image_url": _data_uri(1024, 768)})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body",
                                                                         "start_image_url"]


def test_key_auth_is_required(sandbox):
    response = httpx.post(sandbox.url + f"/fal/{APP}", json={"prompt": "x"},
                          headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and "detail" in response.json()


def test_unknown_app_is_404(fal):
    assert fal.post("/fal-ai/veo/v3/text-to-video", json={"prompt": "x"}).status_code == 404
