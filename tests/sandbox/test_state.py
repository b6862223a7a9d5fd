"""A sandbox process keeps jobs, files and the bill on disk across a kill and restart."""

import httpx

from tests.sandbox.conftest import kling_token
from tests.sandbox_process import start_sandbox


def test_restart_keeps_jobs_and_usage(tmp_path):
    state = tmp_path / "state"
    first = start_sandbox(state, "--calm")
    try:
        headers = {"Authorization": f"Bearer {kling_token()}"}
        task = httpx.post(first.url + "/kling/v1/videos/text2video", headers=headers,
                          json={"prompt": "survive", "external_task_id": "keep-me"}).json()
        task_id = task["data"]["task_id"]
    finally:
        first.stop(kill=True)
    second = start_sandbox(state, "--calm")
    try:
        headers = {"Authorization": f"Bearer {kling_token()}"}
        again = httpx.get(second.url + f"/kling/v1/videos/text2video/{task_id}",
                          headers=headers).json()["data"]
        assert again["task_info"]["external_task_id"] == "keep-me"
        assert [r["job_id"] for r in second.usage()] == [task_id]
    finally:
        second.stop()


def test_auto_start_reuses_the_sandbox_serving_a_home(tmp_path):
    from tasks import sandbox_launcher as launcher

    state = tmp_path / "home" / "sandbox"
    first = launcher.ensure_running(state, time_scale=0.001)
    try:
        again = launcher.ensure_running(state)
        assert (again["pid"], again["url"]) == (first["pid"], first["url"])
        assert httpx.get(first["url"] + "/_admin/health").json()["ok"]
    finally:
        assert launcher.stop(state)
    assert launcher.running(state) is None
