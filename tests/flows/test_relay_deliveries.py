"""The sandbox's own deliveries through the relay (issue 25): a run with REELFLOW_WEBHOOK_URL
set sends each job the relay's callback; the sandbox delivers the way each provider does (fal's
and AtlasCloud's ED25519 signatures, Kling's unsigned task object) and the relay — written from
the providers' docs, sharing no code with the sandbox — accepts every real one and refuses the
wrongly signed ones with 401, which the sandbox then retries. The relay records no charge: the
ledger is the polling run's, equal to the bill job by job."""

import asyncio
import socket
import threading
import time
import uuid

import pytest
import uvicorn

from flows.generate import generate_clip
from models import ClipRequest
from relay.app import Relay, create_app
from relay.signatures import Jwks
from storage.callbacks import WaitGroup
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
SECRET = "relay-test-secret"
MODELS = ("kling-v3-fal", "kling-v3", "kling-v3-atlas")


class RelayThread:
    """The relay under uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, relay: Relay, port: int | None = None):
        self.port = port or free_port()
        self.server = uvicorn.Server(uvicorn.Config(create_app(relay), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _settled(sandbox, jobs: set[str], timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [d for d in sandbox.admin.get("/webhooks").json()["deliveries"]
                if d["job_id"] in jobs]
        ended = [d["state"] in ("delivered", "failed", "dropped") for d in rows]
        if ({d["job_id"] for d in rows} >= jobs and all(ended)) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_the_relay_takes_every_real_delivery_and_refuses_wrongly_signed_ones(
        home, sandbox, monkeypatch):
    wakes: list[str] = []

    async def wake(group: WaitGroup) -> bool:
        wakes.append(group.flow_run_id)
        return True

    keys = {"fal_queue": Jwks(f"{sandbox.url}/fal/.well-known/jwks.json"),
            "atlascloud": Jwks(f"{sandbox.url}/atlascloud/api/v1/webhooks/jwks.json")}
    journal = journal_of(home)
    tag = uuid.uuid4().hex[:6]
    with RelayThread(Relay(journal, SECRET, keys, wake)) as url:
        monkeypatch.setenv("REELFLOW_WEBHOOK_URL", url)
        monkeypatch.setenv("REELFLOW_WEBHOOK_SECRET", SECRET)
        records = {}
        for model in MODELS:
            request = ClipRequest(prompt=f"A lighthouse at dusk {model} {tag}", duration=5,
                                  resolution="720p", policy=model)
            asyncio.run(generate_clip(request))
            records[model] = journal.read(request.clip_id)
        jobs = {r.steps[0].handle.job_id: m for m, r in records.items()}
        delivered = _settled(sandbox, set(jobs))
        assert {jobs[d["job_id"]] for d in delivered} == set(MODELS)
        for d in delivered:
            assert d["url"].startswith(url + "/hooks/")
            *early, last = [a["status_code"] for a in d["attempts"]]
            # Kling's `submitted` callback may come before the submit's answer is journaled:
            # 409, and the provider's next try is taken
            assert last == 200 and set(early) <= {409}, d
        kling = [d for d in delivered if jobs[d["job_id"]] == "kling-v3"]
        assert len(kling) >= 2  # a callback per status change, each taken

        sandbox.knobs(webhooks={"wrong_signature_rate": 1.0, "max_attempts": 2,
                                "backoff_s": 1.0})
        request = ClipRequest(prompt=f"A lighthouse in fog {tag}", duration=5,
                              resolution="720p", policy="kling-v3-fal")
        asyncio.run(generate_clip(request))
        forged_job = journal.read(request.clip_id).steps[0].handle.job_id
        (forged,) = _settled(sandbox, {forged_job})
        assert [a["status_code"] for a in forged["attempts"]] == [401, 401], forged
    assert wakes == []  # polling runs: none was suspended, so none was woken
    for record in [*records.values(), journal.read(request.clip_id)]:
        assert journal.read(record.clip_id).state == "done"
    assert_reconciled(home, sandbox)


def test_a_run_that_cannot_suspend_says_so_before_anything_is_paid(home, sandbox, monkeypatch):
    """Only a deployment's own run can suspend (Prefect 3.9's core policy): a local run asked
    to is refused as the user's mistake, naming `wait`, and nothing is sent."""
    from tasks.input_files import InputError

    before = len(sandbox.usage())
    request = ClipRequest(prompt=f"A buoy in the swell {uuid.uuid4().hex[:6]}", duration=5,
                          resolution="720p", policy="kling-v3-fal")
    with pytest.raises(InputError) as refused:
        asyncio.run(generate_clip(request, wait="suspend"))
    assert refused.value.field == "wait" and "deployment" in refused.value.message
    monkeypatch.setenv("REELFLOW_WAIT", "suspend")  # the setting, and no relay either
    with pytest.raises(InputError):
        asyncio.run(generate_clip(request))
    assert len(sandbox.usage()) == before and journal_of(home).read(request.clip_id) is None


def test_deliveries_made_while_the_relay_is_down_get_through_once_it_is_back(home, sandbox,
                                                                             monkeypatch):
    """The provider retries (fal: 10 times over 2 hours): a relay down when the job ends loses
    nothing; its first delivery after it is back is taken, verified, once."""
    sandbox.knobs(webhooks={"backoff_s": 400.0})  # 0.4 s, then 0.8 s, ... at the tests' scale
    port = free_port()
    monkeypatch.setenv("REELFLOW_WEBHOOK_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("REELFLOW_WEBHOOK_SECRET", SECRET)
    request = ClipRequest(prompt=f"A lighthouse at night {uuid.uuid4().hex[:6]}", duration=5,
                          resolution="720p", policy="kling-v3-fal")
    journal = journal_of(home)
    asyncio.run(generate_clip(request))  # polled to the end; its delivery finds no relay
    job = journal.read(request.clip_id).steps[0].handle.job_id

    def attempts() -> list:
        (delivery,) = sandbox.admin.get("/webhooks", params={"job_id": job}).json()[
            "deliveries"]
        return delivery["attempts"]

    deadline = time.monotonic() + 30
    while len(attempts()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    keys = {"fal_queue": Jwks(f"{sandbox.url}/fal/.well-known/jwks.json")}
    with RelayThread(Relay(journal, SECRET, keys, _no_wake), port):
        (delivered,) = _settled(sandbox, {job})
    codes = [a["status_code"] for a in delivered["attempts"]]
    assert len(codes) >= 3 and set(codes[:2]) == {None} and codes[-1] == 200, delivered
    assert delivered["state"] == "delivered"
    assert_reconciled(home, sandbox)


async def _no_wake(_group: WaitGroup) -> bool:
    raise AssertionError("no run is suspended here")
