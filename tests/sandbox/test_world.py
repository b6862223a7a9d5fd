"""The seed's world as knobs: failures, re-queues, flash frames, downgrades, expiry, faults,
time_scale, the injectable clock and seeded randomness — and the bill each one produces."""

import io
import random
from datetime import UTC, datetime

import av
import httpx
import numpy as np
import pytest

from sandbox.jobs import latency_s
from sandbox.knobs import Knobs
from sandbox.render import probe
from tests.sandbox.conftest import wait_until


def done(client, video_id):
    return wait_until(lambda: (v := client.get(f"/videos/{video_id}").json())["status"] in
                      ("completed", "failed") and v)


def kling_done(client, task_id):
    return wait_until(lambda: (t := client.get(f"/v1/videos/text2video/{task_id}").json()[
        "data"])["task_status"] in ("succeed", "failed") and t)


def test_a_failed_kling_job_bills_20_percent(kling_http, sandbox):
    sandbox.knobs(kling={"failure_rate": 1.0})
    task = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "x", "duration": "5"}).json()["data"]
    result = kling_done(kling_http, task["task_id"])
    assert result["task_status"] == "failed" and result["task_status_msg"]
    assert [(r["kind"], r["usd"]) for r in sandbox.usage(job_id=task["task_id"])] == [
        ("fail", "0.028000")]


def test_a_failed_sora_job_bills_nothing(openai_http, sandbox):
    sandbox.knobs(openai={"failure_rate": 1.0})
    video = openai_http.post("/videos", json={"prompt": "x", "seconds": "4"}).json()
    assert done(openai_http, video["id"])["error"]["code"] == "generation_failed"
    assert [float(r["usd"]) for r in sandbox.usage(job_id=video["id"])] == [0.0]


def test_a_requeue_goes_back_to_queued_and_bills_again(openai_http, sandbox):
    sandbox.knobs(openai={"requeue_rate": 1.0})
    video = openai_http.post("/videos", json={"prompt": "x", "seconds": "4"}).json()
    assert done(openai_http, video["id"])["status"] == "completed"
    assert [r["kind"] for r in sandbox.usage(job_id=video["id"])] == ["requeue", "complete"]


def test_flash_frame_makes_the_last_frame_white(openai_http, sandbox):
    sandbox.knobs(openai={"flash_frame_rate": 1.0})
    video = openai_http.post("/videos", json={"prompt": "x", "seconds": "4"}).json()
    done(openai_http, video["id"])
    data = openai_http.get(f"/videos/{video['id']}/content").content
    with av.open(io.BytesIO(data)) as container:
        luma = [f.to_ndarray(format="gray").mean() for f in container.decode(video=0)]
    assert luma[-1] > 200 and max(luma[:-1]) < 180


def test_silent_downgrade_delivers_fewer_pixels_and_openai_does_not_admit_it(openai_http,
                                                                              sandbox, tmp_path):
    sandbox.knobs(openai={"downgrade_rate": 1.0, "downgrade_load": 0.0})
    video = openai_http.post("/videos", json={"prompt": "x", "seconds": "4",
                                              "model": "sora-2-pro", "size": "1920x1080"}).json()
    meta = done(openai_http, video["id"])
    assert meta["size"] == "1920x1080"
    path = tmp_path / "d.mp4"
    path.write_bytes(openai_http.get(f"/videos/{video['id']}/content").content)
    info = probe(path)
    assert (info["width"], info["height"], info["seconds"]) == (1280, 720, 4.0)


def test_urls_expire_after_their_lifetime(kling_http, sandbox):
    task = kling_http.post("/v1/videos/text2video", json={"prompt": "x"}).json()["data"]
    url = kling_done(kling_http, task["task_id"])["task_result"]["videos"][0]["url"]
    assert httpx.get(url).status_code == 200
    sandbox.clock(advance_s=30 * 86400 * 0.001 + 1)  # 30 days, time-scaled
    assert httpx.get(url).status_code == 404


def test_sora_content_expires_after_24_hours(openai_http, sandbox):
    video = openai_http.post("/videos", json={"prompt": "x", "seconds": "4"}).json()
    meta = done(openai_http, video["id"])
    assert meta["expires_at"] - meta["completed_at"] in (86, 87)  # 86,400 s x 0.001
    sandbox.clock(advance_s=90)
    response = openai_http.get(f"/videos/{video['id']}/content")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "video_expired")


def test_range_requests_resume_a_download(kling_http):
    task = kling_http.post("/v1/videos/text2video", json={"prompt": "x"}).json()["data"]
    url = kling_done(kling_http, task["task_id"])["task_result"]["videos"][0]["url"]
    whole = httpx.get(url).content
    tail = httpx.get(url, headers={"Range": "bytes=1000-"})
    assert tail.status_code == 206 and tail.content == whole[1000:]
    assert tail.headers["content-range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"


def test_a_truncated_download_ends_before_its_content_length(kling_http, sandbox):
    task = kling_http.post("/v1/videos/text2video", json={"prompt": "x"}).json()["data"]
    url = kling_done(kling_http, task["task_id"])["task_result"]["videos"][0]["url"]
    sandbox.faults({"kind": "truncate", "protocol": "files"})
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert len(httpx.get(url).content) > 0


def test_a_5xx_burst_hits_the_next_calls_only(openai_http, sandbox):
    sandbox.faults({"kind": "5xx", "protocol": "openai", "count": 2, "status": 503})
    codes = [openai_http.get("/videos").status_code for _ in range(3)]
    assert codes == [503, 503, 200]


def test_a_reset_after_submit_leaves_a_job_the_client_never_saw(kling_http, sandbox):
    sandbox.faults({"kind": "reset", "protocol": "kling", "method": "POST"})
    with pytest.raises(httpx.RemoteProtocolError):
        kling_http.post("/v1/videos/text2video", json={"prompt": "x",
                                                       "external_task_id": "lost-1"})
    found = kling_http.get("/v1/videos/text2video/lost-1").json()["data"]
    assert found["task_info"]["external_task_id"] == "lost-1"


def test_a_slow_answer_times_a_client_out_after_the_job_exists(openai_http, sandbox):
    sandbox.faults({"kind": "slow", "protocol": "openai", "method": "POST", "delay_s": 1.0})
    with pytest.raises(httpx.ReadTimeout):
        openai_http.post("/videos", json={"prompt": "ambiguous"}, timeout=0.3)
    listed = openai_http.get("/videos").json()["data"]
    assert [v["prompt"] for v in listed] == ["ambiguous"]


def test_an_injected_429_carries_retry_after(openai_http, sandbox):
    sandbox.faults({"kind": "429", "protocol": "openai"})
    response = openai_http.get("/videos")
    assert response.status_code == 429 and response.headers["retry-after-ms"] == "10"


def test_the_clock_is_injectable(sandbox):
    now = sandbox.clock(now="2026-11-25T03:00:00+00:00")
    assert now.startswith("2026-11-25T03:00:0")


def test_sora_spike_widens_latency_between_two_and_four_utc():
    world = Knobs().openai
    def p95(hour):
        rng = random.Random(7)
        draws = sorted(latency_s(world, 5, 1920 * 1080, hour, rng) for _ in range(4000))
        return draws[int(0.95 * len(draws))]
    assert p95(3) == pytest.approx(340, rel=0.08)
    assert p95(12) == pytest.approx(187, rel=0.08)


def test_latency_follows_the_seed_medians_and_resolution():
    world = Knobs().kling
    def median(seconds, pixels):
        rng = random.Random(3)
        return float(np.median([latency_s(world, seconds, pixels, 12, rng) for _ in range(3001)]))
    assert median(5, 1920 * 1080) == pytest.approx(38, rel=0.05)
    assert median(30, 1920 * 1080) == pytest.approx(143, rel=0.05)
    assert median(5, 3840 * 2160) == pytest.approx(76, rel=0.05)


def test_time_scale_multiplies_emitted_durations(openai_http, sandbox):
    sandbox.knobs(time_scale=0.01)
    response = openai_http.post("/videos", json={"prompt": "x"})
    assert response.headers["openai-poll-after-ms"] == "20"


def test_seeded_worlds_repeat_exactly(tmp_path):
    from sandbox.jobs import Shot
    from sandbox.service import Sandbox

    def completions(state):
        box = Sandbox(state, Knobs(seed=42, time_scale=0.001))
        jobs = [box.submit(protocol="kling", family="text2video", account=f"a{i}",
                           tier="standard", model="kling-v3", kind="generate", prompt="x",
                           shots=[Shot(text="x", seconds=5)], seconds=5, total_seconds=5,
                           width=1280, height=720, resolution="720p") for i in range(5)]
        return [round(j.completes_at - j.created_at, 9) for j in jobs]

    assert completions(tmp_path / "a") == completions(tmp_path / "b")


def test_knob_patches_are_validated(sandbox):
    response = sandbox.admin.post("/knobs", json={"time_scale": -1})
    assert response.status_code == 422


def test_renders_are_cached_by_content(openai_http, sandbox):
    ids = [openai_http.post("/videos", json={"prompt": "same", "seconds": "4"}).json()["id"]
           for _ in range(2)]
    for video_id in ids:
        done(openai_http, video_id)
    before = sandbox.stats().get("renders", 0)
    bodies = [openai_http.get(f"/videos/{i}/content").content for i in ids]
    assert bodies[0] == bodies[1]
    assert sandbox.stats().get("renders", 0) - before <= 1


def test_clock_set_moves_sandbox_time(sandbox):
    target = datetime(2026, 12, 1, 3, 30, tzinfo=UTC)
    assert sandbox.clock(now=target.isoformat()).startswith("2026-12-01T03:30")


def test_a_configured_key_list_restricts_credentials_and_sets_tiers(sandbox):
    sandbox.knobs(api_keys={"sk-enterprise": "enterprise"})
    refused = httpx.post(sandbox.url + "/openai/v1/videos", json={"prompt": "x"},
                         headers={"Authorization": "Bearer sk-other"})
    assert refused.status_code == 401
    accepted = httpx.post(sandbox.url + "/openai/v1/videos", json={"prompt": "x"},
                          headers={"Authorization": "Bearer sk-enterprise"}).json()
    done_video = wait_until(lambda: (v := httpx.get(
        sandbox.url + f"/openai/v1/videos/{accepted['id']}",
        headers={"Authorization": "Bearer sk-enterprise"}).json())["status"] == "completed"
        and v)
    assert done_video and sandbox.usage(job_id=accepted["id"])[0]["tier"] == "enterprise"


def test_shared_render_encodes_once_per_duration_and_size(openai_http, sandbox):
    sandbox.knobs(shared_render=True)
    ids = [openai_http.post("/videos", json={"prompt": f"different {i}", "seconds": "4"})
           .json()["id"] for i in range(3)]
    for video_id in ids:
        done(openai_http, video_id)
    before = sandbox.stats().get("renders", 0)
    bodies = {openai_http.get(f"/videos/{i}/content").content for i in ids}
    assert len(bodies) == 1 and sandbox.stats().get("renders", 0) - before <= 1
