"""GET /_admin/requests: the provider API requests the sandbox received, per protocol prefix and
method — exactly the ones made, faulted ones too, never /_admin's own; a reset zeroes them."""

import uuid

import httpx

from tests.sandbox.conftest import wait_until

APP = "fal-ai/kling-video/v3/standard/text-to-video"


def _counts(sandbox) -> dict:
    return sandbox.admin.get("/requests").json()


def test_each_provider_request_counts_once_and_admin_requests_never(sandbox):
    assert _counts(sandbox)["total"] == 0  # the fixture's reset zeroed them
    headers = {"Authorization": f"Key fal-{uuid.uuid4().hex[:8]}"}
    with httpx.Client(base_url=sandbox.url, timeout=30, headers=headers) as client:
        job = client.post(f"/fal/{APP}", json={"prompt": "a heron"}).json()
        status = job["status_url"].split(sandbox.url, 1)[1]
        polls = 0

        def done() -> bool:
            nonlocal polls
            polls += 1
            return client.get(status).status_code == 200

        wait_until(done)
        video = client.get(job["response_url"].split(sandbox.url, 1)[1]).json()["video"]
        assert client.get(video["url"].split(sandbox.url, 1)[1]).status_code == 200
        sandbox.faults({"kind": "429", "protocol": "fal"})
        assert client.get(status).status_code == 429  # refused by a fault: still received
        assert client.get("/nowhere").status_code == 404  # no protocol's prefix: not counted
        for _ in range(3):  # the admin API is not the provider's
            sandbox.admin.get("/health")
            sandbox.usage()

    counts = _counts(sandbox)
    fal = 1 + polls + 1 + 1  # submit, status polls, result, the faulted status
    assert counts["by_prefix"] == {"openai": 0, "fal": fal, "kling": 0, "atlascloud": 0,
                                   "files": 1}
    assert counts["by_method"] == {"POST /fal": 1, "GET /fal": fal - 1, "GET /files": 1}
    assert counts["total"] == fal + 1
    assert _counts(sandbox) == counts  # reading them is not a request either

    sandbox.reset()
    assert _counts(sandbox) == {"total": 0, "by_prefix": dict.fromkeys(counts["by_prefix"], 0),
                                "by_method": {}}
