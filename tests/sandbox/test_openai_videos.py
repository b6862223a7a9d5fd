"""The OpenAI Videos protocol, checked with the official SDK and raw HTTP."""

import io
from pathlib import Path

import av
import pytest
from openai import BadRequestError, OpenAI, RateLimitError
from PIL import Image

from sandbox.render import probe


@pytest.fixture
def sdk(sandbox, key):
    with OpenAI(base_url=sandbox.url + "/openai/v1", api_key=key, max_retries=0) as client:
        yield client


def test_sdk_create_and_poll_retrieve_list_download(sdk, sandbox, key, tmp_path):
    video = sdk.videos.create_and_poll(prompt="A paper boat drifts", seconds="8",
                                       size="1280x720")
    assert (video.status, video.seconds, video.size, video.progress) == ("completed", "8",
                                                                         "1280x720", 100)
    assert sdk.videos.retrieve(video.id).id == video.id
    assert [v.id for v in sdk.videos.list(limit=10)] == [video.id]
    path = tmp_path / "v.mp4"
    path.write_bytes(sdk.videos.download_content(video.id).read())
    info = probe(path)
    assert (info["seconds"], info["width"], info["height"]) == (8.0, 1280, 720)
    usage = sandbox.usage(job_id=video.id)
    assert [(r["kind"], r["usd"]) for r in usage] == [("complete", "0.568000")]


def test_sdk_extend_with_an_uploaded_video_bills_only_the_new_seconds(sdk, sandbox, tmp_path):
    video = sdk.videos.create_and_poll(prompt="A paper boat drifts", seconds="4",
                                       size="720x1280")
    source = tmp_path / "source.mp4"
    source.write_bytes(sdk.videos.download_content(video.id).read())
    extended = sdk.videos.extend(video=("source.mp4", source.read_bytes(), "video/mp4"),
                                 prompt="it sinks", seconds="8")
    extended = sdk.videos.poll(extended.id)
    assert (extended.status, extended.seconds) == ("completed", "12")
    out = tmp_path / "e.mp4"
    out.write_bytes(sdk.videos.download_content(extended.id).read())
    assert probe(out)["seconds"] == 12.0
    assert sandbox.usage(job_id=extended.id)[0]["seconds"] == 8


def test_extension_by_id_in_json_and_bracketed_multipart(openai_http, sandbox):
    created = openai_http.post("/videos", json={"prompt": "start", "seconds": "4",
                                                "size": "1280x720"}).json()
    from tests.sandbox.conftest import wait_until

    wait_until(lambda: openai_http.get(f"/videos/{created['id']}").json()["status"] ==
               "completed")
    as_json = openai_http.post("/videos/extensions", json={
        "video": {"id": created["id"]}, "prompt": "more", "seconds": "4"}).json()
    as_form = openai_http.post("/videos/extensions", files={"video[id]": (None, created["id"]),
                                                            "prompt": (None, "more"),
                                                            "seconds": (None, "8")}).json()
    assert (as_json["seconds"], as_form["seconds"]) == ("8", "12")


def test_sdk_thumbnail_variant_is_webp(sdk):
    video = sdk.videos.create_and_poll(prompt="thumb", seconds="4", size="1280x720")
    data = sdk.videos.download_content(video.id, variant="thumbnail").read()
    assert Image.open(io.BytesIO(data)).format == "WEBP"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"prompt": "x", "seconds": 4}, "seconds", "Invalid type"),
        ({"prompt": "x", "seconds": "5"}, "seconds", "Supported values are: 4, 8, 12"),
        ({"prompt": "x", "size": "1920x1080"}, "size", "Invalid size"),
        ({"prompt": "", "seconds": "4"}, "prompt", "required"),
        ({"prompt": "x", "model": "sora-3"}, "model", "Invalid model"),
    ],
)
def test_invalid_create_requests_get_the_error_envelope(openai_http, sandbox, body, param,
                                                        fragment):
    response = openai_http.post("/videos", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and fragment in error["message"]
    assert error["type"] == "invalid_request_error"
    assert sandbox.usage() == [] or all(r["kind"] != "complete" or r["job_id"] for r in
                                        sandbox.usage())


def test_sora_2_pro_takes_1080p(openai_http):
    response = openai_http.post("/videos", json={"prompt": "x", "model": "sora-2-pro",
                                                 "size": "1920x1080", "seconds": "4"})
    assert response.status_code == 200 and response.json()["size"] == "1920x1080"


def test_missing_bearer_is_401(sandbox):
    import httpx

    response = httpx.post(sandbox.url + "/openai/v1/videos", json={"prompt": "x"})
    assert response.status_code == 401 and "error" in response.json()


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_input_reference_must_match_the_size(sdk):
    with pytest.raises(BadRequestError, match="must match the requested width and height"):
        sdk.videos.create(prompt="x", size="1280x720", seconds="4",
                          input_reference=("ref.png", _png(1024, 768), "image/png"))
    video = sdk.videos.create(prompt="x", size="1280x720", seconds="4",
                              input_reference=("ref.png", _png(1280, 720), "image/png"))
    assert video.status in ("queued", "in_progress", "completed")


def test_poll_hint_header_is_scaled(openai_http):
    response = openai_http.post("/videos", json={"prompt": "x", "seconds": "4"})
    assert response.headers["openai-poll-after-ms"] == "2"  # 2 s hint x time_scale 0.001


def test_concurrency_beyond_the_tier_is_429_with_retry_after(openai_http, sandbox):
    sandbox.knobs(openai={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    for _ in range(5):
        assert openai_http.post("/videos", json={"prompt": "x"}).status_code == 200
    response = openai_http.post("/videos", json={"prompt": "x"})
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert float(response.headers["retry-after-ms"]) == pytest.approx(10)


def test_sdk_maps_429_to_rate_limit_error(sdk, sandbox):
    sandbox.knobs(openai={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    for _ in range(5):
        sdk.videos.create(prompt="x")
    with pytest.raises(RateLimitError):
        sdk.videos.create(prompt="x")


def test_list_pages_with_a_cursor(openai_http):
    ids = [openai_http.post("/videos", json={"prompt": f"v{i}"}).json()["id"] for i in range(5)]
    first = openai_http.get("/videos", params={"limit": 2, "order": "asc"}).json()
    assert [v["id"] for v in first["data"]] == ids[:2] and first["has_more"]
    second = openai_http.get("/videos", params={"limit": 2, "order": "asc",
                                                "after": first["last_id"]}).json()
    assert [v["id"] for v in second["data"]] == ids[2:4]


def test_delete_only_when_finished_and_content_only_when_ready(openai_http, sandbox):
    sandbox.knobs(openai={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    video = openai_http.post("/videos", json={"prompt": "slow"}).json()
    assert openai_http.delete(f"/videos/{video['id']}").status_code == 409
    content = openai_http.get(f"/videos/{video['id']}/content")
    assert content.status_code == 400 and content.json()["error"]["code"] == "video_not_ready"


def test_a_content_policy_hit_fails_the_job_and_is_not_charged(sdk, sandbox):
    video = sdk.videos.create_and_poll(prompt="a violent shooting in the street")
    assert video.status == "failed" and video.error.code == "policy"
    assert sandbox.usage(job_id=video.id) == []


def test_remix_points_at_its_source(sdk):
    video = sdk.videos.create_and_poll(prompt="original", seconds="4")
    remix = sdk.videos.remix(video.id, prompt="in watercolour")
    assert remix.remixed_from_video_id == video.id


def test_downloaded_video_decodes_fully(sdk, tmp_path):
    video = sdk.videos.create_and_poll(prompt="decode me", seconds="12", size="720x1280")
    path = Path(tmp_path / "d.mp4")
    path.write_bytes(sdk.videos.download_content(video.id).read())
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 12 * 24


def test_every_answer_carries_a_request_id_and_the_rate_limit_headers(openai_http):
    """OpenAI's answers carry `x-request-id` and `x-ratelimit-*` headers, errors too."""
    ok = openai_http.post("/videos", json={"prompt": "a heron", "seconds": "4"})
    bad = openai_http.post("/videos", json={"prompt": "a heron", "seconds": "5"})
    for response in (ok, bad):
        assert response.headers["x-request-id"].startswith("req_")
        assert int(response.headers["x-ratelimit-limit-requests"]) >= int(
            response.headers["x-ratelimit-remaining-requests"]) >= 0
    assert ok.headers["x-request-id"] != bad.headers["x-request-id"]
