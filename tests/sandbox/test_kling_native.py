"""Kling's native protocol: JWT auth, the envelope, families, external ids, extension."""

import base64
import io
import time

import av
import httpx
import pytest
from PIL import Image

from sandbox.knobs import KLING_ACCESS_KEY
from sandbox.render import read_strip
from tests.sandbox.conftest import kling_token, wait_until


def finished(client, family, task_id):
    def done():
        body = client.get(f"/v1/videos/{family}/{task_id}").json()
        return body if body["data"]["task_status"] in ("succeed", "failed") else None
    return wait_until(done)


def video_bytes(task: dict) -> bytes:
    """The finished task's video: rendered as it is fetched, a 4K one takes seconds more than
    httpx's default 5 s on a loaded 2-core machine (the full suite timed out on it)."""
    return httpx.get(task["task_result"]["videos"][0]["url"], timeout=120).content


def test_a_token_signed_with_pyjwt_is_accepted_and_the_envelope_is_right(kling_http):
    body = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "a fox", "duration": "5", "mode": "pro"}).json()
    assert (body["code"], body["message"]) == (0, "SUCCEED") and body["request_id"]
    task = body["data"]
    assert task["task_id"].isdigit() and task["task_status"] == "submitted"
    assert task["created_at"] > 1e12  # milliseconds
    done = finished(kling_http, "text2video", task["task_id"])["data"]
    video = done["task_result"]["videos"][0]
    assert video["duration"] == "5" and video["id"] != task["task_id"]
    data = video_bytes(done)
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    assert (len(frames), frames[0].width, frames[0].height) == (120, 1920, 1080)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, 1001),
        (lambda: kling_token(secret="forged-secret-of-the-right-length-32b"), 1002),
        (lambda: kling_token(access="unknown-access"), 1002),
        (lambda: kling_token(exp_in=-10), 1004),
        (lambda: kling_token(nbf_ago=-600), 1003),
        (lambda: "not.a.jwt", 1002),
    ],
)
def test_bad_tokens_get_the_real_codes(sandbox, token, code):
    headers = {"Authorization": f"Bearer {token()}"} if token else {}
    response = httpx.post(sandbox.url + "/kling/v1/videos/text2video", headers=headers,
                          json={"prompt": "x"})
    assert response.status_code == 401 and response.json()["code"] == code


def test_external_task_id_repeat_answers_the_same_task_and_charges_once(kling_http, sandbox):
    request = {"model_name": "kling-v3", "prompt": "once", "duration": "5",
               "external_task_id": "clip-abc"}
    first = kling_http.post("/v1/videos/text2video", json=request).json()["data"]
    second = kling_http.post("/v1/videos/text2video", json=request).json()["data"]
    assert first["task_id"] == second["task_id"]
    by_external = kling_http.get("/v1/videos/text2video/clip-abc").json()["data"]
    assert by_external["task_id"] == first["task_id"]
    finished(kling_http, "text2video", first["task_id"])
    assert len(sandbox.usage(job_id=first["task_id"])) == 1


def test_concurrency_is_429_code_1303_without_retry_after(sandbox):
    sandbox.knobs(kling_keys={KLING_ACCESS_KEY: {"secret": "s" * 32, "tier": "free"}},
                  kling={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    headers = {"Authorization": f"Bearer {kling_token(secret='s' * 32)}"}
    with httpx.Client(base_url=sandbox.url + "/kling", headers=headers) as client:
        for _ in range(3):
            assert client.post("/v1/videos/text2video", json={"prompt": "x"}).status_code == 200
        response = client.post("/v1/videos/text2video", json={"prompt": "x"})
    assert response.status_code == 429 and response.json()["code"] == 1303
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(("status", "code", "http"),
                         [("suspended", 1100, 429), ("arrears", 1101, 429),
                          ("exhausted", 1102, 429), ("forbidden", 1103, 403),
                          ("ip_blocked", 1304, 429)])
def test_account_problems_get_their_codes(kling_http, sandbox, status, code, http):
    from sandbox.service import account_of

    account = account_of("kling:" + kling_http.access_key)
    sandbox.knobs(account_status={account: status})
    response = kling_http.post("/v1/videos/text2video", json={"prompt": "x"})
    assert (response.status_code, response.json()["code"]) == (http, code)


def _b64(width: int, height: int) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 80, 160)).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_image2video_enforces_16_9_9_16_1_1_with_400_code_1201(kling_http):
    """Code 1201 comes with HTTP 400 in Kling's error table, never 422."""
    bad = kling_http.post("/v1/videos/image2video", json={"image": _b64(1024, 768),
                                                          "prompt": "x"})
    assert (bad.status_code, bad.json()["code"]) == (400, 1201)
    ok = kling_http.post("/v1/videos/image2video", json={"image": _b64(720, 1280),
                                                         "prompt": "x", "mode": "std"})
    assert ok.status_code == 200
    prefixed = kling_http.post("/v1/videos/image2video", json={
        "image": "data:image/png;base64," + _b64(720, 720), "prompt": "x"})
    assert prefixed.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x", "duration": 5},
        {"prompt": "x", "model_name": "kling-v1", "duration": "7"},
        {"multi_shot": True, "multi_prompt": [{"index": 1, "prompt": "a", "duration": "2"}],
         "duration": "5", "model_name": "kling-v3"},
        {"prompt": "x", "camera_control": {"type": "simple", "config": {"pan": 3, "zoom": 2}}},
        {"prompt": "x", "camera_control": {"type": "simple", "config": {"pan": 11}}},
        {"prompt": "x", "aspect_ratio": "4:3"},
    ],
)
def test_invalid_parameters_are_400_code_1201(kling_http, body):
    response = kling_http.post("/v1/videos/text2video", json=body)
    assert (response.status_code, response.json()["code"]) == (400, 1201)


def test_a_model_name_kling_does_not_document_is_not_found(kling_http):
    """The documented model_name values only (provider-protocols.md §3.3): a typo is Kling's
    404 code 1203 (resource not found), never a video."""
    response = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v9-ultra", "prompt": "a fox", "duration": "5"})
    assert (response.status_code, response.json()["code"]) == (404, 1203)
    assert "kling-v3" in response.json()["message"]


def test_4k_is_asked_with_mode_4k_on_v3_and_a_resolution_field_means_nothing(kling_http):
    four_k = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "a fox", "duration": "3", "mode": "4k"})
    assert four_k.status_code == 200
    done = finished(kling_http, "text2video", four_k.json()["data"]["task_id"])["data"]
    with av.open(io.BytesIO(video_bytes(done))) as c:
        assert c.streams.video[0].height == 2160
    old = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v1", "prompt": "a fox", "duration": "5", "mode": "4k"})
    assert (old.status_code, old.json()["code"]) == (400, 1201)
    spelled = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "a fox", "duration": "3", "mode": "std",
        "resolution": "4k"})
    done = finished(kling_http, "text2video", spelled.json()["data"]["task_id"])["data"]
    with av.open(io.BytesIO(video_bytes(done))) as c:
        assert c.streams.video[0].height == 720


def test_multi_shot_storyboard_has_cuts_at_shot_boundaries(kling_http):
    body = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "multi_shot": True, "shot_type": "customize",
        "duration": "6", "mode": "std",
        "multi_prompt": [{"index": 1, "prompt": "a", "duration": "2"},
                         {"index": 2, "prompt": "b", "duration": "4"}]}).json()["data"]
    done = finished(kling_http, "text2video", body["task_id"])["data"]
    data = video_bytes(done)
    with av.open(io.BytesIO(data)) as container:
        scenes = [read_strip(f.to_ndarray(format="gray"))[1] for f in container.decode(video=0)]
    assert scenes[:48] == [0] * 48 and scenes[48:] == [1] * 96


def test_video_extend_adds_five_seconds_continuing_the_frames(kling_http, sandbox):
    first = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "start", "duration": "3"}).json()["data"]
    video = finished(kling_http, "text2video", first["task_id"])["data"]["task_result"][
        "videos"][0]
    ext = kling_http.post("/v1/videos/video-extend", json={
        "video_id": video["id"], "prompt": "go on"}).json()["data"]
    done = finished(kling_http, "video-extend", ext["task_id"])["data"]
    assert done["task_info"]["parent_video"]["id"] == video["id"]
    assert done["task_result"]["videos"][0]["duration"] == "8"
    data = video_bytes(done)
    with av.open(io.BytesIO(data)) as container:
        strip = [read_strip(f.to_ndarray(format="gray")) for f in container.decode(video=0)]
    assert [f for f, _ in strip] == list(range(8 * 24))
    assert strip[71][1] == 0 and strip[72][1] == 1
    assert sandbox.usage(job_id=ext["task_id"])[0]["seconds"] == 5


def test_list_returns_the_family_s_tasks(kling_http):
    ids = {kling_http.post("/v1/videos/text2video", json={"prompt": f"t{i}"}).json()["data"][
        "task_id"] for i in range(3)}
    listed = kling_http.get("/v1/videos/text2video", params={"pageNum": 1, "pageSize": 2})
    assert len(listed.json()["data"]) == 2
    everything = kling_http.get("/v1/videos/text2video").json()["data"]
    assert {t["task_id"] for t in everything} == ids


def test_content_policy_is_refused_before_generation_and_not_billed(kling_http, sandbox):
    response = kling_http.post("/v1/videos/text2video", json={"prompt": "gore everywhere"})
    assert (response.status_code, response.json()["code"]) == (400, 1301)
    before = len(sandbox.usage())
    time.sleep(0.05)
    assert len(sandbox.usage()) == before
