"""Hostile input against the relay, written by a reviewer who did not write it: replays,
cross-clip and cross-protocol deliveries, bodies and headers built to break the parser, key
sets that are down or garbage, a slow key endpoint, and a burst of identical deliveries.

Every test states the behaviour the relay should have. Fourteen of them failed against its
first version (a blocking key fetch, a garbage key set answered 500, deep JSON answered 500, an
unsigned AtlasCloud delivery id, a float timestamp, a huge header echoed, a case-sensitive
media type) and were fixed in relay/.

Public contract checked against: fal's webhook docs (docs.fal.ai/model-apis/model-endpoints/
webhooks: ED25519 over `request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)`, hex signature,
JWKS at rest.alpha.fal.ai/.well-known/jwks.json, a 5-minute leeway on an integer timestamp);
AtlasCloud's as receivers written against atlascloud.ai/docs/webhooks read it (ED25519 over
`timestamp.body`, base64url, X-AtlasCloud-Webhook-Key-Id naming the JWKS key; the webhook id
header is not part of the signed message)."""

import asyncio
import hashlib
import json
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

from models.callback import Callback
from relay.app import MAX_BODY, Relay, create_app
from relay.signatures import REFETCH_AFTER_S, REPLAY_WINDOW_S, Jwks
from storage.callbacks import Callbacks, Delivery, WaitingRun
from tests.relay.test_relay import SECRET, Provider, _b64url, _post, suspended_on, world

__all__ = ["world"]  # the fixture, imported so that pytest finds it here

JSON = {"content-type": "application/json"}


def _fal_body(request_id: str, status: str = "OK") -> bytes:
    return json.dumps({"request_id": request_id, "gateway_request_id": request_id,
                       "status": status, "payload": {}, "error": None}).encode()


def _kling_body(task: str, status: str = "succeed", updated_at: int = 2) -> bytes:
    return json.dumps({"task_id": task, "task_status": status,
                       "updated_at": updated_at}).encode()


def _atlas_body(job: str) -> bytes:
    return json.dumps({"event_type": "video.task.terminal", "session_id": job,
                       "status": "OK", "payload": {"id": job, "status": "completed",
                                                   "outputs": ["https://x/v.mp4"]},
                       "error": None}).encode()


def _client(world, keys=None, clock=time.time, raise_errors: bool = False) -> TestClient:
    """Another relay on the same journal and wakes (own keys or clock); by default a server
    error is answered 500, as uvicorn would, instead of raised into the test."""
    if keys is None:
        provider = world["provider"]
        keys = {p: Jwks("https://keys.invalid", fetch=lambda: provider.jwks)
                for p in ("fal_queue", "atlascloud")}
    relay = Relay(world["journal"], SECRET, keys, world["wakes"], clock=clock)
    return TestClient(create_app(relay), raise_server_exceptions=raise_errors)


def _nothing_charged(world, hook: Callback) -> None:
    step = world["journal"].read(hook.clip_id).steps[0]
    assert step.charges == [] and step.state == "submitted"


def _fal_signed(provider: Provider, body: bytes, request_id: str, stamp: str,
                user: str = "user-1") -> dict:
    message = "\n".join([request_id, user, stamp, hashlib.sha256(body).hexdigest()])
    return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": user,
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": provider.key.sign(message.encode()).hex()}


# --- replays -------------------------------------------------------------------------------

def test_a_captured_fal_delivery_played_again_inside_the_window_is_a_duplicate(world):
    hook = world["journaled"]("kling-v3-fal", "req-r1")
    body = _fal_body("req-r1")
    captured = world["provider"].fal(body, "req-r1")
    assert _post(world, hook, body, captured).json()["woke"] == "run-req-r1"
    again = _post(world, hook, body, captured)
    assert (again.status_code, again.json()) == (200, {"duplicate": True, "woke": None})
    assert world["wakes"].runs == ["run-req-r1"]
    _nothing_charged(world, hook)


def test_a_captured_fal_delivery_played_after_the_window_is_refused(world):
    hook = world["journaled"]("kling-v3-fal", "req-r2")
    body = _fal_body("req-r2")
    captured = world["provider"].fal(body, "req-r2")
    later = _client(world, clock=lambda: time.time() + REPLAY_WINDOW_S + 5)
    refused = later.post(hook.url("", SECRET), content=body, headers={**JSON, **captured})
    assert refused.status_code == 401 and "replay window" in refused.json()["error"]
    assert world["wakes"].runs == []


def test_an_old_signature_under_a_fresh_timestamp_is_refused(world):
    """The timestamp is signed: moving a stale delivery's header to now breaks it."""
    hook = world["journaled"]("kling-v3-fal", "req-r3")
    body = _fal_body("req-r3")
    stale = world["provider"].fal(body, "req-r3", at=time.time() - 3600)
    fresh = {**stale, "X-Fal-Webhook-Timestamp": str(int(time.time()))}
    assert _post(world, hook, body, fresh).status_code == 401
    assert world["wakes"].runs == []


def test_a_fal_delivery_with_an_old_body_under_a_new_signature_of_another_body_is_refused(world):
    """A fresh signature (of a real delivery) carried over onto an old body does not match."""
    hook = world["journaled"]("kling-v3-fal", "req-r4")
    old, new = _fal_body("req-r4", "ERROR"), _fal_body("req-r4", "OK")
    assert _post(world, hook, old, world["provider"].fal(new, "req-r4")).status_code == 401
    assert world["wakes"].runs == []


def test_an_atlascloud_delivery_played_again_under_another_webhook_id_is_a_duplicate(world):
    hook = world["journaled"]("kling-v3-atlas", "pred-r5")
    body = _atlas_body("pred-r5")
    captured = world["provider"].atlascloud(body, "wh-1")
    assert _post(world, hook, body, captured).json()["woke"] == "run-pred-r5"
    replayed = _post(world, hook, body, {**captured, "X-AtlasCloud-Webhook-Id": "wh-forged"})
    assert replayed.status_code == 200
    assert replayed.json()["duplicate"] is True
    assert world["wakes"].runs == ["run-pred-r5"]


# --- one clip's delivery on another's URL, one protocol's on another's ----------------------

def test_a_signed_delivery_for_one_clip_posted_to_another_clips_url_wakes_nothing(world):
    first = world["journaled"]("kling-v3-fal", "req-a")
    other = world["journaled"]("kling-v3-fal", "req-b")
    body = _fal_body("req-a")
    moved = _post(world, other, body, world["provider"].fal(body, "req-a"))
    assert moved.status_code == 404 and "req-a" in moved.json()["error"]
    assert world["wakes"].runs == []
    # and it is still taken on its own clip's URL (nothing was kept by the refusal)
    assert _post(world, first, body, world["provider"].fal(body, "req-a")).json() == {
        "duplicate": False, "woke": "run-req-a"}


@pytest.mark.parametrize("signed,said", [("req-h1", "req-other"), ("req-other", "req-h1")])
def test_a_fal_delivery_whose_signed_request_id_is_not_the_bodys_wakes_nothing(world, signed,
                                                                                said):
    hook = world["journaled"]("kling-v3-fal", "req-h1")
    body = _fal_body(said)
    refused = _post(world, hook, body, world["provider"].fal(body, signed))
    assert refused.status_code in (400, 404), refused.text
    assert world["wakes"].runs == []


def test_a_kling_callback_for_a_step_journaled_under_fal_wakes_nothing(world):
    """Even with a valid Kling URL for the clip (the secret leaked, say), a Kling body naming
    the fal job is not the step's job under that protocol."""
    fal_hook = world["journaled"]("kling-v3-fal", "req-x1")
    as_kling = Callback(protocol="kling_native", clip_id=fal_hook.clip_id, index=0)
    refused = _post(world, as_kling, _kling_body("req-x1"))
    assert refused.status_code == 404
    # an unsigned body on the fal URL is refused before anything is read
    assert _post(world, fal_hook, _kling_body("req-x1")).status_code == 401
    assert world["wakes"].runs == []


def test_a_fal_signed_delivery_on_a_kling_url_wakes_nothing(world):
    hook = world["journaled"]("kling-v3", "task-x2")
    body = _fal_body("task-x2")
    refused = _post(world, hook, body, world["provider"].fal(body, "task-x2"))
    assert refused.status_code == 400
    assert world["wakes"].runs == []


# --- timestamps and signatures that are not what the docs describe -------------------------

@pytest.mark.parametrize("stamp", ["nan", "{now}.0", "+{now}"])
def test_a_signed_timestamp_that_is_not_unix_seconds_is_refused(world, stamp):
    hook = world["journaled"]("kling-v3-fal", "req-t1")
    body = _fal_body("req-t1")
    headers = _fal_signed(world["provider"], body, "req-t1",
                          stamp.format(now=int(time.time())))
    assert _post(world, hook, body, headers).status_code == 401
    assert world["wakes"].runs == []


@pytest.mark.parametrize("signature", ["zz" * 64, "ab" * 10, "ab" * 65, "", "ab" * 40_000])
def test_a_signature_of_the_wrong_shape_is_refused_401(world, signature):
    hook = world["journaled"]("kling-v3-fal", "req-t2")
    body = _fal_body("req-t2")
    headers = {**world["provider"].fal(body, "req-t2"), "X-Fal-Webhook-Signature": signature}
    assert _post(world, hook, body, headers).status_code == 401
    assert world["wakes"].runs == []


def test_huge_header_values_are_refused_401_and_nothing_kept(world):
    hook = world["journaled"]("kling-v3-fal", "req-t3")
    body = _fal_body("req-t3")
    headers = {**world["provider"].fal(body, "req-t3"),
               "X-Fal-Webhook-Request-Id": "r" * 60_000, "X-Fal-Webhook-User-Id": "u" * 60_000}
    assert _post(world, hook, body, headers).status_code == 401
    assert world["wakes"].runs == []


def test_a_refusal_does_not_echo_a_huge_header(world):
    hook = world["journaled"]("kling-v3-fal", "req-t4")
    body = _fal_body("req-t4")
    headers = {**world["provider"].fal(body, "req-t4"), "X-Fal-Webhook-Timestamp": "1" * 60_000}
    refused = _post(world, hook, body, headers)
    assert refused.status_code == 401
    assert len(refused.content) < 2_000


# --- keys: unknown, down, garbage, slow ------------------------------------------------------

def test_an_unknown_atlascloud_key_id_is_refused_and_fetches_the_keys_at_most_once(world):
    hook = world["journaled"]("kling-v3-atlas", "pred-k1")
    fetches = []

    def fetch():
        fetches.append(1)
        return world["provider"].jwks

    client = _client(world, keys={"atlascloud": Jwks("https://keys.invalid", fetch=fetch)})
    body = _atlas_body("pred-k1")
    for n in range(5):
        headers = {**world["provider"].atlascloud(body, f"wh-{n}"),
                   "X-AtlasCloud-Webhook-Key-Id": f"made-up-{n}"}
        assert client.post(hook.url("", SECRET), content=body,
                           headers={**JSON, **headers}).status_code == 401
    assert len(fetches) == 1  # a stream of made-up key ids is not a stream of fetches
    assert world["wakes"].runs == []


def _down():
    raise httpx.ConnectError("connection refused")


@pytest.mark.parametrize("keys", [
    pytest.param(_down, id="down"),
    pytest.param(lambda: (_ for _ in ()).throw(ValueError("not JSON")), id="not-json"),
    pytest.param(lambda: [], id="a-list"),
    pytest.param(lambda: {}, id="no-keys"),
    pytest.param(lambda: {"keys": []}, id="empty"),
    pytest.param(lambda: {"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}, id="rsa-only"),
    pytest.param(lambda: {"keys": None}, id="keys-null"),
    pytest.param(lambda: {"keys": ["k1"]}, id="key-a-string"),
    pytest.param(lambda: {"keys": [{"kty": "OKP", "crv": "Ed25519"}]}, id="key-without-x"),
    pytest.param(lambda: {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]},
                 id="x-not-base64"),
    pytest.param(lambda: {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64url(b"short")}]},
                 id="x-wrong-length"),
])
def test_a_key_endpoint_down_or_answering_garbage_is_refused_401_not_500(world, keys):
    hook = world["journaled"]("kling-v3-fal", "req-k2")
    client = _client(world, keys={"fal_queue": Jwks("https://keys.invalid", fetch=keys)})
    body = _fal_body("req-k2")
    refused = client.post(hook.url("", SECRET), content=body,
                          headers={**JSON, **world["provider"].fal(body, "req-k2")})
    assert refused.status_code == 401, refused.text
    assert world["wakes"].runs == []


def test_a_real_key_url_that_refuses_connections_is_refused_401(world):
    hook = world["journaled"]("kling-v3-fal", "req-k3")
    client = _client(world, keys={"fal_queue": Jwks("http://127.0.0.1:9/jwks.json")})
    body = _fal_body("req-k3")
    refused = client.post(hook.url("", SECRET), content=body,
                          headers={**JSON, **world["provider"].fal(body, "req-k3")})
    assert refused.status_code == 401


def test_a_malformed_key_beside_a_good_one_does_not_hide_the_good_one(world):
    hook = world["journaled"]("kling-v3-fal", "req-k4")
    good = world["provider"].jwks["keys"][0]
    jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "!!", "kid": "bad"}, good]}
    client = _client(world, keys={"fal_queue": Jwks("https://keys.invalid",
                                                    fetch=lambda: jwks)})
    body = _fal_body("req-k4")
    taken = client.post(hook.url("", SECRET), content=body,
                        headers={**JSON, **world["provider"].fal(body, "req-k4")})
    assert taken.json() == {"duplicate": False, "woke": "run-req-k4"}


def test_a_rotated_key_is_picked_up_at_most_a_minute_after_the_last_fetch(world):
    """fal rotates: a delivery signed by a key not yet fetched is refused while the keys are
    less than a minute old (the provider's retry comes back), then refetched and taken."""
    hook = world["journaled"]("kling-v3-fal", "req-k5")
    new = Provider()
    served = [world["provider"].jwks]
    keys = Jwks("https://keys.invalid", fetch=lambda: served[-1])
    client = _client(world, keys={"fal_queue": keys})
    other = world["journaled"]("kling-v3-fal", "req-k5b")
    warm = _fal_body("req-k5b")
    assert client.post(other.url("", SECRET), content=warm, headers={
        **JSON, **world["provider"].fal(warm, "req-k5b")}).json()["woke"] == "run-req-k5b"
    served.append(new.jwks)
    body = _fal_body("req-k5")
    assert client.post(hook.url("", SECRET), content=body,
                       headers={**JSON, **new.fal(body, "req-k5")}).status_code == 401
    keys._fetched_at -= REFETCH_AFTER_S + 1  # a minute later: the provider's retry
    taken = client.post(hook.url("", SECRET), content=body,
                        headers={**JSON, **new.fal(body, "req-k5")})
    assert taken.json()["woke"] == "run-req-k5"


def test_a_slow_key_endpoint_does_not_hold_up_other_deliveries(world):
    fal = world["journaled"]("kling-v3-fal", "req-s1")
    kling = world["journaled"]("kling-v3", "task-s1")

    def slow():
        time.sleep(1.5)
        return world["provider"].jwks

    provider = world["provider"]
    relay = Relay(world["journal"], SECRET,
                  {"fal_queue": Jwks("https://keys.invalid", fetch=slow)}, world["wakes"])
    app = create_app(relay)
    body = _fal_body("req-s1")

    async def race() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            start = time.perf_counter()
            signed = asyncio.create_task(client.post(
                fal.url("", SECRET), content=body, headers={**JSON, **provider.fal(body,
                                                                                     "req-s1")}))
            await asyncio.sleep(0.05)
            answer = await client.post(kling.url("", SECRET), content=_kling_body("task-s1"),
                                       headers=JSON)
            took = time.perf_counter() - start
            assert answer.json()["woke"] == "run-task-s1"
            assert (await signed).json()["woke"] == "run-req-s1"
            return took

    assert asyncio.run(race()) < 1.0


# --- bodies built to break the parser --------------------------------------------------------

def test_a_chunked_body_over_the_limit_without_a_length_is_413(world):
    hook = world["journaled"]("kling-v3", "task-b1")

    def chunks():
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    refused = world["client"].post(hook.url("", SECRET), content=chunks(), headers=JSON)
    assert refused.request.headers.get("content-length") is None
    assert refused.status_code == 413
    assert world["wakes"].runs == []


@pytest.mark.parametrize("body", [
    b'{"task_id": "task-b2", "task_status": "succeed", "x": "\xff\xfe"}',
    b'\xc3\x28{"task_id": "task-b2"}',
    "{\"task_id\": \"task-b2\", \"task_status\": \"succeed\", \"x\": \"é\"}".encode("latin-1"),
])
def test_a_body_that_is_not_utf8_is_400(world, body):
    hook = world["journaled"]("kling-v3", "task-b2")
    assert _post(world, hook, body).status_code == 400
    assert world["wakes"].runs == []


def test_duplicate_keys_are_read_once_the_way_json_reads_them_and_wake_only_the_named_job(world):
    hook = world["journaled"]("kling-v3", "task-b3")
    other_last = b'{"task_id": "task-b3", "task_status": "succeed", "task_id": "task-zz"}'
    refused = _post(world, hook, other_last)
    assert refused.status_code == 404 and "task-zz" in refused.json()["error"]
    status_last = b'{"task_id": "task-b3", "task_status": "succeed", "task_status": "processing"}'
    assert _post(world, hook, status_last).json() == {"duplicate": False, "woke": None}
    assert world["wakes"].runs == []


@pytest.mark.parametrize("depth", [100_000])
def test_deeply_nested_json_is_400_not_500(world, depth):
    hook = world["journaled"]("kling-v3", "task-b4")
    body = (b'{"task_id": "task-b4", "task_status": "succeed", "x": ' + b"[" * depth
            + b"]" * depth + b"}")
    assert len(body) <= MAX_BODY
    client = _client(world)
    assert client.post(hook.url("", SECRET), content=body, headers=JSON).status_code == 400
    assert world["wakes"].runs == []


@pytest.mark.parametrize("body", [b"", b"null", b"1", b'"x"', b"{}", b'{"task_id": null}',
                                  b'{"task_id": ["task-b5"], "task_status": "succeed"}',
                                  b'{"task_id": {"a": 1}, "task_status": "succeed"}',
                                  b'{"data": [], "task_status": "succeed"}'])
def test_bodies_that_are_not_a_kling_task_are_400(world, body):
    hook = world["journaled"]("kling-v3", "task-b5")
    assert _post(world, hook, body).status_code == 400
    assert world["wakes"].runs == []


@pytest.mark.parametrize("content_type,status", [
    ("application/json; charset=utf-8", 200),
    ("application/json;charset=UTF-8", 200),
    ("application/json ; charset=utf-8", 200),
    ("application/jsonx", 415),
    ("application/json-patch+json", 415),
    ("text/json", 415),
    ("text/plain; application/json", 415),
    ("", 415),
    pytest.param("Application/JSON", 200),
])
def test_content_type_variants(world, content_type, status):
    hook = world["journaled"]("kling-v3", "task-c1")
    answer = world["client"].post(hook.url("", SECRET), content=_kling_body("task-c1"),
                                  headers={"content-type": content_type})
    assert answer.status_code == status, answer.text


def test_no_content_type_at_all_is_415(world):
    hook = world["journaled"]("kling-v3", "task-c2")
    answer = world["client"].post(hook.url("", SECRET), content=_kling_body("task-c2"))
    assert "content-type" not in answer.request.headers
    assert answer.status_code == 415


# --- paths: step indexes and clip ids ---------------------------------------------------------

@pytest.mark.parametrize("index", ["-1", "64", "99999999999999999999999999", "0x0", "1e1", " 0",
                                   "٠"])
def test_a_step_index_out_of_range_or_not_a_number_is_404(world, index):
    hook = world["journaled"]("kling-v3", "task-p1")
    path = f"/hooks/kling_native/{hook.clip_id}/{index}/{hook.token(SECRET)}"
    assert world["client"].post(path, content=_kling_body("task-p1"),
                                headers=JSON).status_code == 404
    assert world["wakes"].runs == []


def test_a_step_the_clip_does_not_have_is_404_even_with_its_own_token(world):
    hook = world["journaled"]("kling-v3", "task-p2")
    step_five = Callback(protocol="kling_native", clip_id=hook.clip_id, index=5)
    assert _post(world, step_five, _kling_body("task-p2")).status_code == 404
    assert world["wakes"].runs == []


@pytest.mark.parametrize("clip", ["..", "..%2F..%2Fetc", "%2e%2e", "ab" * 8 + "%0A",
                                  "AB" * 16, "ab" * 40, "ab" * 7, "ab" * 8 + "%00",
                                  "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥", "ab" * 8 + "%20"])
def test_a_clip_id_that_is_not_a_clip_id_is_404(world, clip, tmp_path):
    world["journaled"]("kling-v3", "task-p3")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    answer = world["client"].post(f"/hooks/kling_native/{clip}/0/{'0' * 32}",
                                  content=_kling_body("task-p3"), headers=JSON)
    assert answer.status_code == 404
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere
    assert world["wakes"].runs == []


def test_a_token_for_another_step_or_protocol_is_refused_401(world):
    hook = world["journaled"]("kling-v3", "task-p4")
    for other in (hook.model_copy(update={"index": 1}),
                  hook.model_copy(update={"protocol": "fal_queue"})):
        path = f"/hooks/kling_native/{hook.clip_id}/0/{other.token(SECRET)}"
        assert world["client"].post(path, content=_kling_body("task-p4"),
                                    headers=JSON).status_code == 401
    wrong_secret = hook.token(SECRET + "x")
    assert _post(world, hook, _kling_body("task-p4"), token=wrong_secret).status_code == 401
    assert _post(world, hook, _kling_body("task-p4"), token="é" * 32).status_code == 401
    assert world["wakes"].runs == []


# --- a burst of identical deliveries ---------------------------------------------------------

def test_twenty_identical_deliveries_at_once_are_kept_once_and_charge_nothing(world):
    """The design accepts that racing duplicates may each ask for a wake (the Prefect API
    resumes a suspended run once; the others are refused there). What must hold: every one is
    answered 200, exactly one is kept as taken, nothing is charged or changes state. The number
    of wakes asked for is printed (measured: all 20, since the seen/wake/taken steps each yield
    to the loop)."""
    hook = world["journaled"]("kling-v3", "task-d1")
    app = world["client"].app
    body = _kling_body("task-d1")

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as client:
            return await asyncio.gather(*[client.post(hook.url("", SECRET), content=body,
                                                      headers=JSON) for _ in range(20)])

    answers = asyncio.run(burst())
    assert [a.status_code for a in answers] == [200] * 20
    assert sum(not a.json()["duplicate"] for a in answers) == 1
    woke = len(world["wakes"].runs)
    print(f"20 identical deliveries at once asked for {woke} wakes")
    assert 1 <= woke <= 20 and set(world["wakes"].runs) == {"run-task-d1"}
    kept = Callbacks(world["journal"]).seen(Delivery(
        id="task-d1:succeed:2", protocol="kling_native", job_id="task-d1",
        clip_id=hook.clip_id, index=0, terminal=True))
    assert kept
    _nothing_charged(world, hook)
    # and the next copy, after the burst, is a plain duplicate that wakes nothing
    assert _post(world, hook, body).json() == {"duplicate": True, "woke": None}
    assert len(world["wakes"].runs) == woke


def test_a_delivery_for_the_step_wakes_no_run_that_waits_on_another_job(world):
    """A waiting record left by a run that waited on another job of the step (a resend)
    is not woken by this job's delivery."""
    hook = world["journaled"]("kling-v3", "task-w1", suspended=False)
    suspended_on(world["journal"], WaitingRun(flow_run_id="run-stale", key="stale",
                                              clip_id=hook.clip_id, index=0, job_id="task-w0"))
    assert _post(world, hook, _kling_body("task-w1")).json() == {"duplicate": False,
                                                                 "woke": None}
    assert world["wakes"].runs == []


def test_a_terminal_delivery_for_an_unsuspended_step_is_kept_and_wakes_nothing(world):
    hook = world["journaled"]("kling-v3", "task-u1", suspended=False)
    assert _post(world, hook, _kling_body("task-u1")).json() == {"duplicate": False, "woke": None}
    assert world["wakes"].runs == []
    _nothing_charged(world, hook)


def test_forged_fal_deliveries_with_another_users_signature_wake_nothing_for_our_job(world):
    """fal signs every customer's webhooks with the same keys: another fal user can get a real
    signed delivery sent to our URL, but only about their own request id."""
    hook = world["journaled"]("kling-v3-fal", "req-u2")
    theirs = _fal_body("req-theirs")
    headers = _fal_signed(world["provider"], theirs, "req-theirs", str(int(time.time())),
                          user="someone-else")
    assert _post(world, hook, theirs, headers).status_code == 404
    assert world["wakes"].runs == []


def test_an_unsigned_kling_callback_with_the_url_wakes_but_charges_nothing(world):
    """Kling's callbacks are unsigned: whoever holds the URL can say a task ended. The design
    answers that a wake only makes the run ask the provider; nothing is charged here. Once
    woken, the run's suspension is over: later deliveries (distinct ones too) wake nothing
    until the run suspends again."""
    hook = world["journaled"]("kling-v3", "task-u3")
    for n in range(3):  # distinct updated_at values are distinct deliveries
        assert _post(world, hook, _kling_body("task-u3", updated_at=100 + n)).status_code == 200
    assert world["wakes"].runs == ["run-task-u3"]
    _nothing_charged(world, hook)


def test_an_in_progress_delivery_changes_nothing_in_the_journal(world):
    hook = world["journaled"]("kling-v3", "task-u4")
    _post(world, hook, _kling_body("task-u4", "processing", 1))
    record = world["journal"].read(hook.clip_id)
    assert record.steps[0].state == "submitted" and record.steps[0].charges == []


def test_a_fal_error_delivery_is_taken_like_an_ok_one_and_charges_nothing(world):
    hook = world["journaled"]("kling-v3-fal", "req-e1")
    body = _fal_body("req-e1", "ERROR")
    assert _post(world, hook, body, world["provider"].fal(body, "req-e1")).json()["woke"] == \
        "run-req-e1"
    _nothing_charged(world, hook)


def test_another_key_signing_an_atlascloud_delivery_under_our_key_id_is_refused(world):
    hook = world["journaled"]("kling-v3-atlas", "pred-f1")
    body = _atlas_body("pred-f1")
    stamp = str(int(time.time()))
    forged = {"X-AtlasCloud-Webhook-Id": "wh-f1", "X-AtlasCloud-Webhook-Timestamp": stamp,
              "X-AtlasCloud-Webhook-Key-Id": "k1",
              "X-AtlasCloud-Webhook-Signature-Ed25519": _b64url(
                  Ed25519PrivateKey.generate().sign(stamp.encode() + b"." + body))}
    assert _post(world, hook, body, forged).status_code == 401
    unpadded_garbage = {**forged, "X-AtlasCloud-Webhook-Signature-Ed25519": "a"}
    assert _post(world, hook, body, unpadded_garbage).status_code == 401
    assert world["wakes"].runs == []
