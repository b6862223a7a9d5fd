"""The sandbox answers in the providers' documented shapes: for each documented response
example (tests/fixtures/wire/, with sources), the sandbox's answer to the same call has every
field the example shows, with the same JSON type (tests/wire.py). The adapters are held to the
same examples in tests/providers/test_wire_fixtures.py."""

import httpx
import pytest

from sandbox.knobs import KLING_ACCESS_KEY
from tests.sandbox.conftest import kling_token, wait_until
from tests.wire import documented, shape_errors

FAL_APP = "fal-ai/kling-video/v3/standard/text-to-video"


def assert_documented(protocol: str, name: str, response: httpx.Response) -> None:
    example = documented(protocol, name)
    assert response.status_code == example.get("status", 200), response.text
    assert shape_errors(example["body"], response.json()) == []


def test_openai_answers_in_the_documented_shapes(openai_http, sandbox):
    created = openai_http.post("/videos", json={"model": "sora-2-pro", "prompt": "a teal coupe",
                                                "size": "1280x720", "seconds": "8"})
    assert_documented("openai_videos", "create-response-guide.json", created)
    video_id = created.json()["id"]
    # a retrieve has the same fields in every state (the example is in_progress)
    assert_documented("openai_videos", "retrieve-in-progress.json",
                      openai_http.get(f"/videos/{video_id}"))
    assert_documented("openai_videos", "list-response.json", openai_http.get("/videos"))
    wrong_type = openai_http.post("/videos", files={"prompt": (None, "a cat"),
                                                    "input_reference": (None, "not-a-file")})
    assert_documented("openai_videos", "error-400-invalid-type-input-reference.json",
                      wrong_type)
    sandbox.knobs(api_keys={"sk-only-this-one": "api"})
    assert_documented("openai_videos", "error-401-invalid-api-key.json",
                      openai_http.get("/videos"))


def test_fal_answers_in_the_documented_shapes(sandbox, key):
    with httpx.Client(base_url=sandbox.url + "/fal", timeout=30,
                      headers={"Authorization": f"Key {key}"}) as fal:
        submitted = fal.post(f"/{FAL_APP}", json={"prompt": "ruins at golden hour",
                                                  "duration": "5", "generate_audio": False})
        assert_documented("fal_queue", "submit-response.json", submitted)
        status_url = submitted.json()["status_url"]
        seen = {}

        def state():
            answer = fal.get(status_url, params={"logs": 1})
            seen.setdefault(answer.json()["status"], answer)
            return answer.json()["status"] == "COMPLETED"

        wait_until(state)
        for status, name in (("IN_QUEUE", "status-in-queue.json"),
                             ("IN_PROGRESS", "status-in-progress-with-logs.json"),
                             ("COMPLETED", "status-completed.json")):
            if status in seen:
                assert_documented("fal_queue", name, seen[status])
        assert "COMPLETED" in seen
        assert_documented("fal_queue", "result-kling-v3-t2v.json",
                          fal.get(submitted.json()["response_url"]))


def test_kling_answers_in_the_documented_shapes(kling_http, sandbox):
    created = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "a calm woman smiles", "duration": "5",
        "mode": "std", "aspect_ratio": "16:9", "external_task_id": "shape-check"})
    assert_documented("kling_native", "text2video-create-response.json", created)
    task_id = created.json()["data"]["task_id"]
    done = wait_until(lambda: (r := kling_http.get(f"/v1/videos/text2video/{task_id}")).json()[
        "data"]["task_status"] == "succeed" and r)
    assert_documented("kling_native", "text2video-query-succeed.json", done)
    # the free plan's 3 slots taken by slow jobs: the fourth is 1303
    sandbox.knobs(kling_keys={KLING_ACCESS_KEY: {"secret": "s" * 32, "tier": "free"}},
                  kling={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    headers = {"Authorization": f"Bearer {kling_token(secret='s' * 32)}"}
    with httpx.Client(base_url=sandbox.url + "/kling", headers=headers) as free:
        answers = [free.post("/v1/videos/text2video", json={"prompt": f"slot {i}"})
                   for i in range(4)]
    assert_documented("kling_native", "error-1303-concurrency.json", answers[-1])


def test_atlascloud_answers_in_the_documented_shapes(sandbox, key):
    sandbox.knobs(atlascloud_response="data")  # the shape its own skills docs show
    with httpx.Client(base_url=sandbox.url + "/atlascloud", timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as atlas:
        started = atlas.post("/api/v1/model/generateVideo", json={
            "model": "kwaivgi/kling-v3.0-std/text-to-video", "prompt": "a rocket launching",
            "duration": 5, "aspect_ratio": "16:9"})
        assert_documented("atlascloud", "submit-response-starting.json", started)
        prediction = started.json()["data"]["id"]
        done = wait_until(lambda: (r := atlas.get(f"/api/v1/model/prediction/{prediction}")
                                   ).json()["data"]["status"] in ("completed", "succeeded")
                          and r)
        assert_documented("atlascloud", "prediction-completed.json", done)
        refused = atlas.post("/api/v1/model/generateVideo", json={
            "model": "kwaivgi/kling-v3.0-std/text-to-video", "prompt": "pure gore",
            "duration": 5})
        failed_id = refused.json()["data"]["id"]
        failed = wait_until(lambda: (r := atlas.get(f"/api/v1/model/prediction/{failed_id}")
                                     ).json()["data"]["status"] == "failed" and r)
        assert_documented("atlascloud", "prediction-failed-moderation-1039.json", failed)
    sandbox.knobs(api_keys={"only-this-one": "payg"})
    with httpx.Client(base_url=sandbox.url + "/atlascloud", timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as stranger:
        assert_documented("atlascloud", "error-401.json",
                          stranger.get("/api/v1/model/prediction/x"))


@pytest.mark.parametrize("token", [lambda: kling_token(exp_in=-10)])
def test_kling_auth_errors_carry_the_envelope(sandbox, token):
    response = httpx.post(sandbox.url + "/kling/v1/videos/text2video",
                          headers={"Authorization": f"Bearer {token()}"}, json={"prompt": "x"})
    example = documented("kling_native", "error-1303-concurrency.json")["body"]
    assert response.status_code == 401 and shape_errors(example, response.json()) == []
