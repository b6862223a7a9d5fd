"""Malformed requests get the provider's answer — 400 with the protocol's error body, 415 for a
body that is not JSON — never a 500, on all four protocols (issue 18's findings first)."""

import json

import httpx

from tests.sandbox.conftest import kling_token

FAL_APP = "fal-ai/kling-video/v3/standard/text-to-video"
# bodies malformed everywhere: the prompt of the wrong type
EVERYWHERE = [{"prompt": {"text": "a fox"}}, {"prompt": ["a", "fox"]}, {"prompt": 7}]
# bodies malformed on one protocol (its own fields of the wrong type)
OWN = {
    "/openai/v1/videos": [{"model": {}, "prompt": "a fox"}, {"model": ["sora-2"], "prompt": "x"},
                          {"prompt": "a fox", "size": {"w": 1}},
                          {"prompt": "a fox", "seconds": 4}],
    "/openai/v1/videos/extensions": [{"video": {"id": [None, None]}, "prompt": "more",
                                      "seconds": "4"}, {"video": "v", "prompt": "more"}],
    "/kling/v1/videos/text2video": [{"prompt": "a fox", "duration": {"x": 1}},
                                    {"prompt": "a fox", "model_name": []},
                                    {"prompt": "a fox", "multi_shot": True, "multi_prompt": "x"}],
    "/kling/v1/videos/image2video": [{"prompt": "a fox", "image": 12}],
    f"/fal/{FAL_APP}": [{"prompt": "a fox", "duration": {"x": 1}}],
    "/atlascloud/api/v1/model/generateVideo": [{"model": {}, "prompt": "a fox"},
                                               {"model": "kwaivgi/kling-v3.0-std/text-to-video",
                                                "prompt": "a fox", "duration": []}],
}


def clients(sandbox, key):
    """(name, client, create path) for each protocol's create endpoint."""
    headers = {"openai": {"Authorization": f"Bearer {key}"},
               "kling": {"Authorization": f"Bearer {kling_token()}"},
               "fal": {"Authorization": f"Key {key}"},
               "atlascloud": {"Authorization": f"Bearer {key}"}}
    paths = {"openai": ["/openai/v1/videos", "/openai/v1/videos/extensions"],
             "kling": ["/kling/v1/videos/text2video", "/kling/v1/videos/image2video",
                       "/kling/v1/videos/video-extend"],
             "fal": [f"/fal/{FAL_APP}"],
             "atlascloud": ["/atlascloud/api/v1/model/generateVideo"]}
    for name, routes in paths.items():
        for path in routes:
            yield name, headers[name], path


def test_a_malformed_json_body_is_a_4xx_with_the_protocol_s_error_body(sandbox, key):
    for name, headers, path in clients(sandbox, key):
        for body in [*EVERYWHERE, *OWN.get(path, [])]:
            response = httpx.post(sandbox.url + path, json=body, headers=headers, timeout=30)
            assert 400 <= response.status_code < 500, (name, path, body, response.status_code,
                                                       response.text[:300])
            assert response.json(), (name, path)  # an error body, in JSON


def test_a_body_that_is_not_json_is_415(sandbox, key):
    for name, headers, path in clients(sandbox, key):
        response = httpx.post(sandbox.url + path, content=json.dumps({"prompt": "a fox"}),
                              headers={**headers, "content-type": "text/plain"}, timeout=30)
        assert response.status_code == 415, (name, path, response.status_code,
                                             response.text[:300])
