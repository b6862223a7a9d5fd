"""Image-to-video through every protocol: the clip starts from the image as sent and moves the
way the request asked (Kling's camera_control, else the prompt's words)."""

import base64
import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.sandbox.conftest import wait_until
from tests.sandbox.test_render import difference, end_frames, pattern, png, view

WIDTH, HEIGHT = 1280, 720
CANDIDATES = [(z, dx, dy) for z in (1 / 1.3, 1.0, 1.3) for dx in (-0.25, 0.0, 0.25)
              for dy in (-0.25, 0.0, 0.25)]


def check(data: bytes, picture: np.ndarray, tmp_path: Path) -> tuple[float, float, float]:
    """Assert the clip starts from `picture`; the camera (zoom, dx, dy) its last frame shows."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    first, last = end_frames(path)
    assert first.shape[:2] == picture.shape[:2]
    assert difference(first, picture.astype(np.int16)) < 12
    return min(CANDIDATES, key=lambda c: difference(last, view(picture, *c)))


@pytest.fixture
def picture() -> np.ndarray:
    return pattern(WIDTH, HEIGHT, seed=3)


def test_kling_camera_control_zooms_into_the_sent_image(kling_http, picture, tmp_path):
    task = kling_http.post("/v1/videos/image2video", json={
        "model_name": "kling-v3", "mode": "std", "duration": "3", "prompt": "a quiet street",
        "image": base64.b64encode(png(picture)).decode(),
        "camera_control": {"type": "simple", "config": {"zoom": 5}}}).json()["data"]

    def done():
        data = kling_http.get(f"/v1/videos/image2video/{task['task_id']}").json()["data"]
        return data if data["task_status"] == "succeed" else None
    url = wait_until(done)["task_result"]["videos"][0]["url"]
    assert check(httpx.get(url, timeout=30).content, picture, tmp_path) == (1.3, 0.0, 0.0)


def test_fal_pans_the_way_the_prompt_words_it(sandbox, key, picture, tmp_path):
    app = "fal-ai/kling-video/v3/standard/image-to-video"
    uri = "data:image/png;base64," + base64.b64encode(png(picture)).decode()
    with httpx.Client(base_url=sandbox.url + "/fal", timeout=30,
                      headers={"Authorization": f"Key {key}"}) as fal:
        body = fal.post(f"/{app}", json={"prompt": "the camera pans left over the street",
                                         "duration": "3", "start_image_url": uri}).json()
        wait_until(lambda: fal.get(body["status_url"].split("/fal", 1)[1]).status_code == 200)
        url = fal.get(body["response_url"].split("/fal", 1)[1]).json()["video"]["url"]
    assert check(httpx.get(url, timeout=30).content, picture, tmp_path) == (1.0, -0.25, 0.0)


def test_atlascloud_renders_the_uploaded_image(sandbox, key, picture, tmp_path):
    with httpx.Client(base_url=sandbox.url + "/atlascloud", timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as atlas:
        url = atlas.post("/api/v1/model/uploadMedia", files={"file": (
            "a.png", png(picture), "image/png")}).json()["data"]["download_url"]
        started = atlas.post("/api/v1/model/generateVideo", json={
            "model": "kwaivgi/kling-v3.0-std/image-to-video", "prompt": "a still street",
            "duration": 3, "image_url": url}).json()
        prediction = (started.get("data") or started)["id"]
        done = wait_until(lambda: (r := atlas.get(f"/api/v1/model/prediction/{prediction}")
                                   ).json()["data"]["status"] in ("completed", "succeeded")
                          and r.json()["data"])
    assert check(httpx.get(done["outputs"][0], timeout=30).content, picture,
                 tmp_path) == (1.0, 0.0, 0.0)


def test_openai_input_reference_pulls_out_as_the_prompt_says(openai_http, picture, tmp_path):
    video = openai_http.post("/videos", data={
        "prompt": "a slow pull back from the street", "seconds": "4", "size": "1280x720"},
        files={"input_reference": ("ref.png", io.BytesIO(png(picture)), "image/png")}).json()
    wait_until(lambda: openai_http.get(f"/videos/{video['id']}").json()["status"] ==
               "completed")
    data = openai_http.get(f"/videos/{video['id']}/content").content
    assert check(data, picture, tmp_path) == (1 / 1.3, 0.0, 0.0)
