"""The relay's checks, delivery by delivery: signed ones wake the run suspended on their job
once; forged, stale, unknown and malformed ones are refused with a clear 4xx and change
nothing (no delivery kept, no run woken); a wake the Prefect API could not take is answered
503 so that the provider delivers again. Keys are made here and served as a JWKS, the way fal
and AtlasCloud publish theirs; the sandbox's own signed deliveries are tested in
test_relay_sandbox.py."""

import base64
import hashlib
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from starlette.testclient import TestClient

from models import ClipRequest, JobHandle
from models.callback import Callback
from providers.router import parse_subscriptions, plan
from relay.app import MAX_BODY, Relay, WakeFailed, create_app
from relay.signatures import Jwks
from storage.callbacks import Callbacks, Delivery, WaitGroup, WaitingRun, step_key
from storage.journal import new_record
from storage.journal_folder import FolderJournal
from storage.records import StepRecord

SECRET = "test-webhook-secret"
PROTOCOL_OF = {"kling-v3": "kling_native", "kling-v3-fal": "fal_queue",
               "kling-v3-atlas": "atlascloud"}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    """Signs deliveries as fal or AtlasCloud does, with a key it publishes as a JWKS."""

    def __init__(self):
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.jwks = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": "k1"}]}

    def fal(self, body: bytes, request_id: str, at: float | None = None, key=None) -> dict:
        stamp = str(int(at or time.time()))
        message = "\n".join([request_id, "user-1", stamp, hashlib.sha256(body).hexdigest()])
        return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": "user-1",
                "X-Fal-Webhook-Timestamp": stamp, "X-Fal-Webhook-Signature":
                    (key or self.key).sign(message.encode()).hex()}

    def atlascloud(self, body: bytes, delivery: str) -> dict:
        stamp = str(int(time.time()))
        return {"X-AtlasCloud-Webhook-Id": delivery, "X-AtlasCloud-Webhook-Timestamp": stamp,
                "X-AtlasCloud-Webhook-Key-Id": "k1",
                "X-AtlasCloud-Webhook-Signature-Ed25519": _b64url(
                    self.key.sign(stamp.encode() + b"." + body))}


def suspended_on(journal, *steps: WaitingRun) -> WaitGroup:
    """A run suspended on these steps, as tasks/suspending.until_back leaves it: each step
    parked, then the group written."""
    callbacks = Callbacks(journal)
    for step in steps:
        callbacks.wait(step)
    group = WaitGroup(key=steps[0].key, flow_run_id=steps[0].flow_run_id,
                      steps=[step_key(step) for step in steps])
    assert not callbacks.suspending(group)
    return group


class Wakes:
    def __init__(self):
        self.runs: list[str] = []
        self.failing = False

    async def __call__(self, group: WaitGroup) -> bool:
        if self.failing:
            raise WakeFailed("the Prefect API is down")
        self.runs.append(group.flow_run_id)
        return True


@pytest.fixture
def world(tmp_path, catalog, now, sandbox_endpoints):
    journal = FolderJournal(tmp_path / "journal")
    provider, wakes = Provider(), Wakes()
    keys = {p: Jwks("https://keys.invalid", fetch=lambda: provider.jwks)
            for p in ("fal_queue", "atlascloud")}
    client = TestClient(create_app(Relay(journal, SECRET, keys, wakes)))

    def journaled(model: str, job_id: str, suspended: bool = True) -> Callback:
        request = ClipRequest(prompt=f"A heron {job_id}", duration=5, resolution="720p",
                              policy=model)
        decision = plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                        subscriptions=parse_subscriptions(
                            "kling:standard,fal:standard,atlascloud:payg", catalog))
        clip = journal.start(new_record(request, decision)).clip_id
        journal.record_intent(clip, StepRecord(index=0, kind="generate", seconds=5,
                                               model=model, tier="standard", key="k0"))
        protocol = PROTOCOL_OF[model]
        journal.record_submit(clip, 0, JobHandle(
            protocol=protocol, endpoint="sandbox", endpoint_kind="sandbox",
            account="kling:standard", credential_ref="KEY", job_id=job_id,
            submitted_at=datetime.now(UTC)))
        if suspended:
            suspended_on(journal, WaitingRun(flow_run_id=f"run-{job_id}", key=uuid.uuid4().hex,
                                             clip_id=clip, index=0, job_id=job_id))
        return Callback(protocol=protocol, clip_id=clip, index=0)

    return {"journal": journal, "provider": provider, "wakes": wakes, "client": client,
            "journaled": journaled}


def _post(world, hook: Callback, body: bytes, headers: dict | None = None, token=None):
    path = hook.url("", SECRET) if token is None else \
        f"/hooks/{hook.protocol}/{hook.clip_id}/{hook.index}/{token}"
    return world["client"].post(path, content=body, headers={
        "content-type": "application/json", **(headers or {})})


def _kept(world, hook: Callback, job: str, delivery_id: str) -> bool:
    return Callbacks(world["journal"]).seen(Delivery(
        id=delivery_id, protocol=hook.protocol, job_id=job, clip_id=hook.clip_id, index=0,
        terminal=True))


def _fal_ok(world, hook: Callback, job_id: str):
    body = json.dumps({"request_id": job_id, "gateway_request_id": job_id, "status": "OK",
                       "payload": {"video": {"url": "https://x/v.mp4"}}}).encode()
    return _post(world, hook, body, world["provider"].fal(body, job_id))


def test_a_run_suspended_on_a_chunk_of_jobs_is_woken_once_by_the_last_of_them(world):
    """A chunk run waits on all its jobs at once (issue 25 item 4): the deliveries before the
    last one mark their steps ended and wake nothing; the last wakes the run, once; a late
    duplicate of an earlier one wakes nothing more."""
    jobs = [f"req-c{n}" for n in range(3)]
    hooks = [world["journaled"]("kling-v3-fal", job, suspended=False) for job in jobs]
    key = uuid.uuid4().hex
    suspended_on(world["journal"], *[
        WaitingRun(flow_run_id="run-chunk", key=key, clip_id=hook.clip_id, index=0,
                   job_id=job) for hook, job in zip(hooks, jobs, strict=True)])
    assert [_fal_ok(world, hooks[n], jobs[n]).json()["woke"] for n in (2, 0)] == [None, None]
    assert world["wakes"].runs == []
    assert _fal_ok(world, hooks[1], jobs[1]).json() == {"duplicate": False, "woke": "run-chunk"}
    assert _fal_ok(world, hooks[0], jobs[0]).json() == {"duplicate": True, "woke": None}
    assert world["wakes"].runs == ["run-chunk"]
    assert Callbacks(world["journal"]).all_waiting() == []  # the suspension is over


def test_a_signed_fal_delivery_wakes_its_run_once_and_a_duplicate_does_nothing(world):
    hook = world["journaled"]("kling-v3-fal", "req-1")
    body = json.dumps({"request_id": "req-1", "gateway_request_id": "req-1", "status": "OK",
                       "payload": {"video": {"url": "https://x/v.mp4"}}}).encode()
    first = _post(world, hook, body, world["provider"].fal(body, "req-1"))
    assert (first.status_code, first.json()) == (200, {"duplicate": False, "woke": "run-req-1"})
    again = _post(world, hook, body, world["provider"].fal(body, "req-1"))  # fal's retry
    assert again.json() == {"duplicate": True, "woke": None}
    assert world["wakes"].runs == ["run-req-1"]
    record = world["journal"].read(hook.clip_id)
    assert record.steps[0].charges == [] and record.steps[0].state == "submitted"


@pytest.mark.parametrize("fault", ["other key", "stale", "unsigned", "body changed"])
def test_a_forged_or_stale_fal_delivery_is_refused_and_changes_nothing(world, fault):
    hook = world["journaled"]("kling-v3-fal", "req-2")
    body = json.dumps({"request_id": "req-2", "status": "OK", "payload": {}}).encode()
    headers = {
        "other key": lambda: world["provider"].fal(body, "req-2",
                                                   key=Ed25519PrivateKey.generate()),
        "stale": lambda: world["provider"].fal(body, "req-2", at=time.time() - 600),
        "unsigned": dict,
        "body changed": lambda: world["provider"].fal(body.replace(b"OK", b"ERROR"), "req-2"),
    }[fault]()
    refused = _post(world, hook, body, headers)
    assert refused.status_code == 401, refused.text
    assert world["wakes"].runs == [] and not _kept(world, hook, "req-2", "req-2:OK")


def test_kling_callbacks_need_the_path_secret_and_only_an_ended_task_wakes(world):
    hook = world["journaled"]("kling-v3", "task-9")

    def task(status: str) -> bytes:
        return json.dumps({"task_id": "task-9", "task_status": status,
                           "updated_at": {"processing": 1, "succeed": 2}[status]}).encode()

    assert _post(world, hook, task("succeed"), token="0" * 32).status_code == 401
    assert world["wakes"].runs == []
    assert _post(world, hook, task("processing")).json() == {"duplicate": False, "woke": None}
    assert _post(world, hook, task("succeed")).json()["woke"] == "run-task-9"
    assert _post(world, hook, task("succeed")).json()["duplicate"] is True


def test_an_atlascloud_delivery_is_checked_by_its_key_id(world):
    hook = world["journaled"]("kling-v3-atlas", "pred-3")
    body = json.dumps({"event": "video.task.terminal",
                       "data": {"id": "pred-3", "status": "completed"}}).encode()
    done = _post(world, hook, body, world["provider"].atlascloud(body, "wh-1"))
    assert done.json() == {"duplicate": False, "woke": "run-pred-3"}
    other = hook.model_copy(update={"protocol": "fal_queue"})  # not the journaled protocol
    assert _post(world, other, body, world["provider"].fal(body, "pred-3")).status_code in (
        400, 404)


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(world):
    hook = world["journaled"]("kling-v3", "task-4")
    ended = json.dumps({"task_id": "task-4", "task_status": "succeed"}).encode()
    other_job = json.dumps({"task_id": "task-x", "task_status": "succeed"}).encode()
    client = world["client"]
    assert client.post(hook.url("", SECRET), content=ended,
                       headers={"content-type": "text/plain"}).status_code == 415
    assert _post(world, hook, b"x" * (MAX_BODY + 1)).status_code == 413
    assert _post(world, hook, b"[1, 2]").status_code == 400
    assert _post(world, hook, b"{not json").status_code == 400
    unknown = _post(world, hook, other_job)
    assert unknown.status_code == 404 and "task-x" in unknown.json()["error"]
    stranger = hook.model_copy(update={"clip_id": "ab" * 32})
    assert _post(world, stranger, ended).status_code == 404
    assert client.post("/hooks/openai_videos/" + "ab" * 32 + "/0/x", content=b"{}",
                       headers={"content-type": "application/json"}).status_code == 404
    assert world["wakes"].runs == [] and not _kept(world, hook, "task-4", "task-4:succeed:")


def test_a_wake_the_prefect_api_could_not_take_is_refused_503_and_taken_on_redelivery(world):
    hook = world["journaled"]("kling-v3", "task-5")
    ended = json.dumps({"task_id": "task-5", "task_status": "succeed"}).encode()
    world["wakes"].failing = True
    assert _post(world, hook, ended).status_code == 503
    assert not _kept(world, hook, "task-5", "task-5:succeed:")
    world["wakes"].failing = False
    assert _post(world, hook, ended).json() == {"duplicate": False, "woke": "run-task-5"}


def test_the_relay_without_its_secret_exits_2_naming_the_setting(monkeypatch, tmp_path, capsys):
    from cli.main import main

    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("REELFLOW_WEBHOOK_SECRET", raising=False)
    assert main(["relay", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["field"] == "REELFLOW_WEBHOOK_SECRET"
    monkeypatch.setenv("REELFLOW_WEBHOOK_SECRET", "s")
    assert main(["relay", "--port", "http"]) == 2
    assert "reelflow: port" in capsys.readouterr().err


def test_a_delivery_before_its_submit_is_journaled_is_refused_409_to_come_again(
        world, catalog, now, sandbox_endpoints):
    """Kling calls back at `submitted`, which may arrive while the send's answer is still being
    journaled: 409 (the provider delivers again), nothing kept, nothing woken."""
    journal = world["journal"]
    request = ClipRequest(prompt="A heron mid-send", duration=5, resolution="720p",
                          policy="kling-v3")
    decision = plan(request, catalog, now=now, endpoints=sandbox_endpoints,
                    subscriptions=parse_subscriptions("kling:standard", catalog))
    clip = journal.start(new_record(request, decision)).clip_id
    journal.record_intent(clip, StepRecord(index=0, kind="generate", seconds=5,
                                           model="kling-v3", tier="standard", key="k0"))
    hook = Callback(protocol="kling_native", clip_id=clip, index=0)
    body = json.dumps({"task_id": "task-7", "task_status": "submitted"}).encode()
    assert _post(world, hook, body).status_code == 409
    assert not _kept(world, hook, "task-7", "task-7:submitted:")
