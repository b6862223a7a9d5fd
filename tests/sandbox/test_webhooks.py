"""The sandbox delivers webhooks as each provider does: fal's signed terminal POST, Kling's task
object on every status change, AtlasCloud's signed terminal event; retried until a 2xx, and
misbehaving on demand (duplicates, held back, dropped, wrongly signed, late)."""

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.sandbox.conftest import wait_until

FAL_APP = "fal-ai/kling-video/v3/standard/text-to-video"


class Receiver:
    """A loopback webhook endpoint: records every POST and answers from a script (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answers: list[int] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append({"path": self.path, "body": body,
                                              "headers": dict(self.headers.items())})
                    code = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, path: str | None = None, timeout: float = 20) -> list[dict]:
        def enough():
            got = [r for r in self.received if path is None or r["path"] == path]
            return got if len(got) >= count else None
        return wait_until(enough, timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def fal(sandbox, key):
    with httpx.Client(base_url=sandbox.url + "/fal", timeout=30,
                      headers={"Authorization": f"Key {key}"}) as client:
        yield client


@pytest.fixture
def atlas(sandbox, key):
    with httpx.Client(base_url=sandbox.url + "/atlascloud/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        client.key = key  # type: ignore[attr-defined]
        yield client


def deliveries(sandbox, job_id: str) -> list[dict]:
    return sandbox.admin.get("/webhooks", params={"job_id": job_id}).json()["deliveries"]


def settled(sandbox, job_id: str, count: int) -> list[dict]:
    """The job's deliveries once `count` of them are done with (delivered, failed, dropped)."""
    def done():
        rows = deliveries(sandbox, job_id)
        finished = [d for d in rows if d["state"] in ("delivered", "failed", "dropped")]
        return rows if len(finished) >= count else None
    return wait_until(done)


def ed25519_key(sandbox, path: str) -> Ed25519PublicKey:
    (jwk,) = httpx.get(sandbox.url + path).json()["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("OKP", "Ed25519")
    return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(jwk["x"] + "=="))


def fal_signature_ok(sandbox, delivery: dict) -> bool:
    h = delivery["headers"]
    message = "\n".join([h["X-Fal-Webhook-Request-Id"], h["X-Fal-Webhook-User-Id"],
                         h["X-Fal-Webhook-Timestamp"],
                         hashlib.sha256(delivery["body"]).hexdigest()]).encode()
    try:
        ed25519_key(sandbox, "/fal/.well-known/jwks.json").verify(
            bytes.fromhex(h["X-Fal-Webhook-Signature"]), message)
    except InvalidSignature:
        return False
    return True


def atlas_signatures_ok(sandbox, key: str, delivery: dict) -> tuple[bool, bool]:
    """(the HMAC with the account's secret, the ED25519 against the JWKS) verify."""
    h = delivery["headers"]
    message = h["X-AtlasCloud-Webhook-Timestamp"].encode() + b"." + delivery["body"]
    secret = sandbox.admin.get("/webhooks/secret", params={"key": key}).json()["secret"]
    mac = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    signature = h["X-AtlasCloud-Webhook-Signature-Ed25519"]
    try:
        ed25519_key(sandbox, "/atlascloud/api/v1/webhooks/jwks.json").verify(
            base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), message)
        signed = True
    except InvalidSignature:
        signed = False
    return hmac.compare_digest(mac, h["X-AtlasCloud-Webhook-Signature"]), signed


def fal_submit(fal, receiver, prompt: str = "a fox", path: str = "/fal") -> dict:
    answer = fal.post(f"/{FAL_APP}", params={"fal_webhook": receiver.url + path},
                      json={"prompt": prompt, "duration": "5"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_fal_posts_the_signed_result_once_at_the_terminal_state(sandbox, fal, receiver):
    submitted = fal_submit(fal, receiver)
    assert submitted["gateway_request_id"] == submitted["request_id"]
    (got,) = receiver.wait(1)
    body = json.loads(got["body"])
    assert body["request_id"] == body["gateway_request_id"] == submitted["request_id"]
    assert (body["status"], body["error"]) == ("OK", None)
    result = fal.get(submitted["response_url"].split("/fal", 1)[1]).json()
    assert body["payload"] == result and result["video"]["content_type"] == "video/mp4"
    h = got["headers"]
    assert h["X-Fal-Webhook-Request-Id"] == submitted["request_id"]
    assert h["X-Fal-Webhook-User-Id"].startswith("acct_")
    assert abs(int(h["X-Fal-Webhook-Timestamp"]) - time.time()) < 300
    assert fal_signature_ok(sandbox, got)
    (logged,) = settled(sandbox, submitted["request_id"], 1)
    assert logged["url"] == receiver.url + "/fal" and logged["state"] == "delivered"
    assert [a["status_code"] for a in logged["attempts"]] == [200]


def test_a_fal_request_the_policy_refuses_posts_an_error_with_its_detail(fal, receiver):
    fal_submit(fal, receiver, prompt="gore everywhere")
    body = json.loads(receiver.wait(1)[0]["body"])
    assert (body["status"], body["error"]) == ("ERROR", "Invalid status code: 422")
    assert body["payload"]["detail"][0]["type"] == "content_policy_violation"


def test_a_bad_callback_url_is_refused_before_any_job_exists(sandbox, fal, kling_http):
    answer = fal.post(f"/{FAL_APP}", params={"fal_webhook": "not a url"},
                      json={"prompt": "refused callback"})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "fal_webhook"]
    kling = kling_http.post("/v1/videos/text2video", json={
        "prompt": "refused callback", "callback_url": "ftp://127.0.0.1/x"})
    assert (kling.status_code, kling.json()["code"]) == (400, 1201)
    assert sandbox.jobs("refused callback") == []


def test_kling_posts_the_bare_task_object_on_every_status_change(sandbox, kling_http,
                                                                  receiver):
    task = kling_http.post("/v1/videos/text2video", json={
        "model_name": "kling-v3", "prompt": "a fox", "duration": "5",
        "callback_url": receiver.url + "/kling"}).json()["data"]
    got = receiver.wait(3)
    bodies = [json.loads(r["body"]) for r in got]
    assert [b["task_status"] for b in bodies] == ["submitted", "processing", "succeed"]
    assert {b["task_id"] for b in bodies} == {task["task_id"]}
    final = bodies[-1]
    assert "code" not in final and final["task_result"]["videos"][0]["duration"] == "5"
    assert final["final_unit_deduction"] == "5"
    polled = kling_http.get(f"/v1/videos/text2video/{task['task_id']}").json()["data"]
    assert final == polled
    assert not any(name.lower().startswith("x-") for name in got[0]["headers"])


def test_kling_callbacks_held_back_arrive_after_later_ones(sandbox, kling_http, receiver):
    sandbox.knobs(webhooks={"out_of_order_rate": 0.5, "out_of_order_s": 100})
    tasks = [kling_http.post("/v1/videos/text2video", json={
        "prompt": f"a fox {n}", "callback_url": receiver.url + f"/k{n}"}).json()["data"]
        for n in range(10)]
    receiver.wait(30)
    inverted = 0
    for n, task in enumerate(tasks):
        arrived = [json.loads(r["body"])["task_status"] for r in receiver.received
                   if r["path"] == f"/k{n}"]
        held = [d["event"] for d in deliveries(sandbox, task["task_id"]) if d["held_back"]]
        assert sorted(arrived) == sorted(["submitted", "processing", "succeed"])
        on_time = [s for s in arrived if s not in held]
        assert on_time == [s for s in ["submitted", "processing", "succeed"] if s in on_time]
        inverted += arrived != ["submitted", "processing", "succeed"]
    assert inverted  # 10 jobs, each inverted with chance 1/2


def test_atlascloud_posts_one_signed_terminal_event(sandbox, atlas, receiver):
    answer = atlas.post("/model/generateVideo", json={
        "model": "bytedance/seedance-2.0/text-to-video", "prompt": "a fox", "duration": 5,
        "webhook_url": receiver.url + "/atlas"}).json()
    prediction_id = answer.get("id") or answer["data"]["id"]
    (got,) = receiver.wait(1)
    body = json.loads(got["body"])
    assert (body["event_type"], body["session_id"], body["status"], body["error"]) == (
        "video.task.terminal", prediction_id, "OK", None)
    polled = atlas.get(f"/model/prediction/{prediction_id}").json()["data"]
    assert body["payload"] == polled and polled["status"] in ("completed", "succeeded")
    h = got["headers"]
    assert h["X-AtlasCloud-Webhook-Event"] == "video.task.terminal"
    assert h["X-AtlasCloud-Webhook-Id"] == prediction_id
    assert atlas_signatures_ok(sandbox, atlas.key, got) == (True, True)
    time.sleep(0.2)
    assert len(receiver.received) == 1  # one POST, ever


def test_a_delivery_is_retried_with_backoff_until_a_2xx(sandbox, fal, receiver):
    receiver.answers = [500, 500]
    submitted = fal_submit(fal, receiver)
    got = receiver.wait(3)
    assert len({r["body"] for r in got}) == 1
    assert all(fal_signature_ok(sandbox, r) for r in got)  # each attempt signed afresh
    (logged,) = settled(sandbox, submitted["request_id"], 1)
    attempts = logged["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.014 and gaps[1] >= 0.028  # 14 s, then 28 s, at time scale 0.001


def test_a_receiver_that_never_answers_2xx_exhausts_the_attempts(sandbox, fal, receiver):
    sandbox.knobs(webhooks={"max_attempts": 3})
    receiver.answers = [503] * 5
    submitted = fal_submit(fal, receiver)
    (logged,) = settled(sandbox, submitted["request_id"], 1)
    assert logged["state"] == "failed" and len(logged["attempts"]) == 3


def test_duplicates_carry_the_same_body(sandbox, fal, receiver):
    sandbox.knobs(webhooks={"duplicate_rate": 1.0, "duplicates": 2})
    submitted = fal_submit(fal, receiver)
    got = receiver.wait(3)
    assert len({r["body"] for r in got}) == 1
    assert {r["headers"]["X-Fal-Webhook-Request-Id"] for r in got} == {
        submitted["request_id"]}
    logged = settled(sandbox, submitted["request_id"], 3)
    assert sum(d["copy_of"] is not None for d in logged) == 2


def test_a_dropped_delivery_is_never_sent(sandbox, fal, receiver):
    sandbox.knobs(webhooks={"drop_rate": 1.0})
    submitted = fal_submit(fal, receiver)
    (logged,) = settled(sandbox, submitted["request_id"], 1)
    assert logged["state"] == "dropped" and logged["attempts"] == []
    time.sleep(0.1)
    assert receiver.received == []


def test_a_wrong_signature_fails_verification(sandbox, fal, atlas, receiver):
    sandbox.knobs(webhooks={"wrong_signature_rate": 1.0})
    fal_submit(fal, receiver)
    atlas.post("/model/generateVideo", json={
        "model": "bytedance/seedance-2.0/text-to-video", "prompt": "a fox", "duration": 5,
        "webhook_url": receiver.url + "/atlas"})
    (from_fal,) = receiver.wait(1, "/fal")
    (from_atlas,) = receiver.wait(1, "/atlas")
    assert not fal_signature_ok(sandbox, from_fal)
    assert atlas_signatures_ok(sandbox, atlas.key, from_atlas) == (False, False)


def test_a_delay_holds_the_first_attempt_back(sandbox, fal, receiver):
    sandbox.knobs(webhooks={"delay_s": 300})
    submitted = fal_submit(fal, receiver)
    (logged,) = settled(sandbox, submitted["request_id"], 1)
    job = sandbox.admin.get(f"/jobs/{submitted['request_id']}").json()
    assert logged["attempts"][0]["at"] - job["completes_at"] >= 0.3


def test_a_cancelled_fal_request_posts_its_error(sandbox, fal, receiver):
    sandbox.knobs(fal={"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6})
    submitted = fal_submit(fal, receiver)
    assert fal.put(submitted["cancel_url"].split("/fal", 1)[1]).status_code == 202
    body = json.loads(receiver.wait(1)[0]["body"])
    assert (body["status"], body["payload"]) == ("ERROR", {"detail": "cancelled"})


def test_the_atlascloud_secret_is_the_accounts_by_key_or_account(sandbox, key):
    by_key = sandbox.admin.get("/webhooks/secret", params={"key": key}).json()
    by_account = sandbox.admin.get("/webhooks/secret",
                                   params={"account": by_key["account"]}).json()
    assert by_key == by_account and by_key["secret"].startswith("whsec_")
    other = sandbox.admin.get("/webhooks/secret", params={"key": key + "x"}).json()
    assert other["secret"] != by_key["secret"]


def test_a_pending_delivery_survives_a_sandbox_restart(tmp_path, key, receiver):
    from tests.sandbox_process import start_sandbox

    first = start_sandbox(tmp_path / "state", "--calm")
    try:
        first.knobs(webhooks={"delay_s": 1500})  # 1.5 s at this time scale: pending at stop
        submitted = httpx.post(first.url + f"/fal/{FAL_APP}",
                               params={"fal_webhook": receiver.url + "/fal"},
                               headers={"Authorization": f"Key {key}"},
                               json={"prompt": "a fox"}).json()
        wait_until(lambda: deliveries(first, submitted["request_id"]))
    finally:
        first.stop()
    assert receiver.received == []
    second = start_sandbox(tmp_path / "state", "--calm")
    try:
        (got,) = receiver.wait(1)
        assert json.loads(got["body"])["request_id"] == submitted["request_id"]
        (logged,) = settled(second, submitted["request_id"], 1)
        assert logged["state"] == "delivered"
    finally:
        second.stop()
