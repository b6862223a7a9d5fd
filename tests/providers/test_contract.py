"""One contract, three protocols: every adapter against the sandbox, judged by its usage log."""

import asyncio
import hashlib
import time
from datetime import UTC, datetime

import httpx
import pytest

from models import Shot
from providers.errors import (
    AccountError,
    Expired,
    InvalidRequest,
    JobFailed,
    RateLimited,
    Rejected,
    SubmitUnknown,
)
from providers.poller import PollPlan, await_job
from sandbox.render import probe
from sandbox.service import account_of
from tests.providers.conftest import ALL_PROTOCOLS, PROTOCOLS, png, run, text_request

FAST = PollPlan(p50_s=0.05, sigma=0.5, p95_s=0.12, k=50, min_interval_s=0.005)
SLOW = {"p50_5s": 1e6, "p95_5s": 2e6, "p50_30s": 2e6}
WORLD = {"openai_videos": "openai", "fal_queue": "fal", "kling_native": "kling",
         "atlascloud": "atlascloud"}


async def finish(adapter, request, key="k-" + "0" * 60, tmp_path=None):
    handle = await adapter.submit(request, key)
    outcome = await await_job(adapter.status, handle, FAST, cancel=adapter.cancel)
    return handle, outcome


def sandbox_account(adapter) -> str:
    """The account name the sandbox bills this adapter's credential to."""
    if adapter.protocol == "kling_native":
        return account_of("kling:" + adapter.credential.access_key.get_secret_value())
    key = adapter.credential.key.get_secret_value()
    prefix = {"fal_queue": "fal:", "atlascloud": "atlascloud:"}.get(adapter.protocol, "")
    return account_of(prefix + key)


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_text_to_video_end_to_end(make_adapter, sandbox, tmp_path, protocol):
    adapter = make_adapter(protocol)

    async def scenario():
        handle, outcome = await finish(adapter, text_request(protocol))
        assert outcome.state == "succeeded" and outcome.polls >= 1
        remote = await adapter.result(handle)
        with (tmp_path / "out.mp4").open("wb") as sink:
            download = await adapter.download(remote, sink)
        return handle, download

    handle, download = run(scenario())
    data = (tmp_path / "out.mp4").read_bytes()
    assert download.sha256 == hashlib.sha256(data).hexdigest()
    assert download.bytes == len(data) and download.content_type == "video/mp4"
    info = probe(tmp_path / "out.mp4")
    assert (info["width"], info["height"]) == (1280, 720)
    assert info["seconds"] == (4.0 if protocol == "openai_videos" else 5.0)
    # fal's page prices Kling v3 standard at $0.084/s with audio off (sent explicitly)
    usd = {"openai_videos": "0.284000", "atlascloud": "0.425000",
           "fal_queue": "0.420000"}.get(protocol, "0.140000")
    assert [r["usd"] for r in sandbox.usage(job_id=handle.job_id)] == [usd]
    assert [r["kind"] for r in sandbox.usage(job_id=handle.job_id)] == ["complete"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_image_to_video_sends_the_image_the_protocol_s_way(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol)
    request = text_request(protocol, mode="image", image=png(1280, 720))
    _handle, outcome = run(finish(adapter, request))
    assert outcome.state == "succeeded"
    wrong = text_request(protocol, mode="image", image=png(1024, 768))
    with pytest.raises(InvalidRequest):
        run(adapter.submit(wrong, "k-wrong"))


@pytest.mark.parametrize("protocol", ["openai_videos", "kling_native"])
def test_native_extension_bills_the_added_seconds(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol)

    async def scenario():
        handle, _ = await finish(adapter, text_request(protocol))
        parent = await adapter.result(handle)
        extension = text_request(protocol, mode="extend", parent_video_id=parent.video_id,
                                 prompt="and then", seconds=4 if protocol == "openai_videos"
                                 else 5)
        child, _outcome = await finish(adapter, extension, key="k-ext" + "1" * 58)
        return parent, await adapter.result(child), child

    parent, child, handle = run(scenario())
    assert child.seconds == parent.seconds + (4 if protocol == "openai_videos" else 5)
    assert sandbox.usage(job_id=handle.job_id)[0]["seconds"] in (4, 5)


def test_fal_has_no_extension(make_adapter):
    adapter = make_adapter("fal_queue")
    with pytest.raises(InvalidRequest, match="no extension"):
        run(adapter.submit(text_request("fal_queue", mode="extend", parent_video_id="v"), "k"))


@pytest.mark.parametrize("protocol", ["fal_queue", "kling_native"])
def test_native_storyboard(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol)
    request = text_request(protocol, mode="storyboard", seconds=7,
                           shots=[Shot(prompt="a", seconds=3), Shot(prompt="b", seconds=4)])
    handle, outcome = run(finish(adapter, request))
    assert outcome.state == "succeeded"
    assert sandbox.usage(job_id=handle.job_id)[0]["seconds"] == 7


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_concurrency_beyond_the_tier_is_rate_limited(make_adapter, sandbox, protocol):
    sandbox.knobs(**{WORLD[protocol]: SLOW})
    adapter = make_adapter(protocol)
    limit = {"openai_videos": 5, "fal_queue": 10, "kling_native": 10, "atlascloud": 10}[protocol]

    async def scenario():
        for i in range(limit):
            await adapter.submit(text_request(protocol, prompt=f"p{i}"), f"k-{i}")
        await adapter.submit(text_request(protocol, prompt="one too many"), "k-over")

    with pytest.raises(RateLimited) as err:
        run(scenario())
    if protocol in ("kling_native", "atlascloud"):
        assert err.value.retry_after_s is None  # neither documents a Retry-After
    elif protocol == "openai_videos":
        assert err.value.retry_after_s == pytest.approx(0.01)  # retry-after-ms, time-scaled
    else:
        assert err.value.retry_after_s is not None  # whole seconds on fal


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_an_account_error_stops_further_submits(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol)
    sandbox.knobs(account_status={sandbox_account(adapter): "arrears"})
    with pytest.raises(AccountError):
        run(adapter.submit(text_request(protocol), "k-1"))
    requests_before = sandbox.stats().get(f"requests:{WORLD[protocol]}", 0)
    with pytest.raises(AccountError, match="is stopped"):
        run(adapter.submit(text_request(protocol), "k-2"))
    assert sandbox.stats().get(f"requests:{WORLD[protocol]}", 0) == requests_before


def test_content_policy_is_rejected_at_submit_on_kling(make_adapter, sandbox):
    with pytest.raises(Rejected):
        run(make_adapter("kling_native").submit(text_request("kling_native",
                                                             prompt="pure gore"), "k"))


def test_fal_reports_content_policy_at_status_and_result_unbilled(make_adapter, sandbox):
    """fal takes the request and reports the refusal later (fal.ai/docs/errors): the status is
    COMPLETED with an error of type content_policy_violation (a failed, policy job) and the
    result is a 422 `detail` — JobFailed with policy; nothing is billed for it."""
    adapter = make_adapter("fal_queue")

    async def scenario():
        handle, outcome = await finish(adapter, text_request("fal_queue", prompt="pure gore"))
        assert outcome.state == "failed" and outcome.status.policy
        await adapter.result(handle)

    with pytest.raises(JobFailed) as err:
        run(scenario())
    assert err.value.policy and err.value.status == 422
    time.sleep(0.2)
    assert not [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]


def test_sora_policy_fails_the_job_and_result_says_so(make_adapter):
    adapter = make_adapter("openai_videos")

    async def scenario():
        handle, outcome = await finish(adapter, text_request("openai_videos",
                                                             prompt="a violent shooting"))
        assert outcome.state == "failed" and outcome.status.policy
        await adapter.result(handle)

    with pytest.raises(JobFailed) as err:
        run(scenario())
    assert err.value.policy


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_a_failed_job_is_job_failed_and_billed_as_the_provider_bills(make_adapter, sandbox,
                                                                      protocol):
    sandbox.knobs(**{WORLD[protocol]: {"failure_rate": 1.0}})
    adapter = make_adapter(protocol)

    async def scenario():
        handle, outcome = await finish(adapter, text_request(protocol))
        assert outcome.state == "failed"
        try:
            await adapter.result(handle)
        except JobFailed:
            return handle
        raise AssertionError("result() of a failed job must raise JobFailed")

    handle = run(scenario())
    usd = [float(r["usd"]) for r in sandbox.usage(job_id=handle.job_id)]
    # 20% of the clip on Kling's terms: 5 s at $0.028 natively, at fal's $0.084 there
    assert usd == {"kling_native": [0.028], "fal_queue": [0.084]}.get(protocol, [0.0])


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_invalid_requests_are_invalid(make_adapter, protocol):
    bad = text_request(protocol, seconds=7 if protocol == "openai_videos" else 20)
    with pytest.raises(InvalidRequest):
        run(make_adapter(protocol).submit(bad, "k"))


@pytest.mark.parametrize("protocol", ["openai_videos", "kling_native"])
def test_a_reset_submit_is_looked_up_and_charged_once(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol)
    sandbox.faults({"kind": "reset", "protocol": WORLD[protocol], "method": "POST"})
    handle, outcome = run(finish(adapter, text_request(protocol, prompt="lost then found"),
                                 key="idem-" + "2" * 59))
    assert outcome.state == "succeeded"
    rows = [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]
    assert [r["job_id"] for r in rows] == [handle.job_id]


def test_a_reset_fal_submit_is_found_in_the_request_listing_and_charged_once(make_adapter,
                                                                            sandbox):
    """fal's queue takes no idempotency key; its Platform API lists the key's requests with
    their inputs, so a reset submit is found by its exact input, never sent twice."""
    adapter = make_adapter("fal_queue")
    sandbox.faults({"kind": "reset", "protocol": "fal", "method": "POST"})
    handle, outcome = run(finish(adapter, text_request("fal_queue", prompt="lost on fal"),
                                 key="k"))
    assert outcome.state == "succeeded"
    rows = [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]
    assert [r["job_id"] for r in rows] == [handle.job_id]


def test_a_fal_submit_answered_503_is_unknown_and_not_resent_in_the_same_call(make_adapter,
                                                                               sandbox):
    """Nothing was created and the listing shows nothing: the call does not send again (the
    listing may lag); a later run's lookup decides."""
    adapter = make_adapter("fal_queue")
    request = text_request("fal_queue", prompt="refused on fal")
    sandbox.faults({"kind": "5xx", "protocol": "fal", "method": "POST"})
    with pytest.raises(SubmitUnknown, match="shows none yet"):
        run(adapter.submit(request, "k"))
    assert run(adapter.recover(request, "k", datetime.now(UTC))) is None
    assert not [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]


def test_kling_token_is_refreshed_when_the_provider_says_it_expired(make_adapter, sandbox):
    adapter = make_adapter("kling_native")
    first = adapter.credential.token()
    sandbox.clock(advance_s=3600)
    adapter.credential.use_clock(lambda: time.time() + 3600)
    handle = run(adapter.submit(text_request("kling_native"), "k-refresh"))
    assert handle.job_id and adapter.credential.token() != first


def test_kling_token_renews_before_expiry():
    from pydantic import SecretStr

    from providers.credentials import KlingKeys

    now = [1000.0]
    keys = KlingKeys(access_key=SecretStr("a"), secret_key=SecretStr("s" * 32), ttl_s=600,
                     refresh_before_s=60)
    keys.use_clock(lambda: now[0])
    token = keys.token()
    now[0] += 500
    assert keys.token() == token
    now[0] += 50  # 10 s before expiry, inside the renewal window
    assert keys.token() != token
    assert "s" * 32 not in repr(keys) and "KlingKeys" in repr(keys)


@pytest.mark.parametrize("protocol", ["openai_videos", "kling_native"])
def test_an_expired_url_is_expired(make_adapter, sandbox, tmp_path, protocol):
    adapter = make_adapter(protocol)

    async def scenario():
        handle, _ = await finish(adapter, text_request(protocol))
        remote = await adapter.result(handle)
        sandbox.clock(advance_s=31 * 86400 * 0.001)
        with (tmp_path / "x.mp4").open("wb") as sink:
            await adapter.download(remote, sink)

    with pytest.raises(Expired):
        run(scenario())


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_a_truncated_download_is_detected_and_resumed(make_adapter, sandbox, tmp_path,
                                                      protocol):
    adapter = make_adapter(protocol)

    async def scenario():
        handle, _ = await finish(adapter, text_request(protocol))
        remote = await adapter.result(handle)
        sandbox.faults({"kind": "truncate", "protocol": "openai" if protocol ==
                        "openai_videos" else "files"})
        with (tmp_path / "t.mp4").open("wb") as sink:
            return await adapter.download(remote, sink)

    download = run(scenario())
    data = (tmp_path / "t.mp4").read_bytes()
    assert download.resumed == 1 and download.sha256 == hashlib.sha256(data).hexdigest()
    assert probe(tmp_path / "t.mp4")["frames"] > 0


@pytest.mark.parametrize("protocol", ["openai_videos", "fal_queue"])
def test_retry_after_is_honoured_on_status(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol)

    async def scenario():
        handle = await adapter.submit(text_request(protocol), "k")
        sandbox.knobs(**{WORLD[protocol]: {"retry_after_s": 100}})  # 100 ms at this scale
        sandbox.faults({"kind": "429", "protocol": WORLD[protocol], "method": "GET"})
        start = time.monotonic()
        status = await adapter.status(handle)
        return status, time.monotonic() - start

    status, waited = run(scenario())
    assert status.state in ("queued", "running", "succeeded") and waited >= 0.1


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_a_5xx_burst_on_status_is_ridden_out(make_adapter, sandbox, protocol):
    adapter = make_adapter(protocol, retry_deadline_s=10)

    async def scenario():
        handle = await adapter.submit(text_request(protocol), "k")
        sandbox.faults({"kind": "5xx", "protocol": WORLD[protocol], "method": "GET",
                        "count": 2})
        return await adapter.status(handle)

    assert run(scenario()).state in ("queued", "running", "succeeded")


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_the_deadline_returns_pending_with_the_handle_kept(make_adapter, sandbox, protocol):
    sandbox.knobs(**{WORLD[protocol]: SLOW})
    adapter = make_adapter(protocol)
    plan = PollPlan(p50_s=0.02, sigma=0.5, p95_s=0.05, k=2)

    async def scenario():
        handle = await adapter.submit(text_request(protocol), "k")
        return handle, await await_job(adapter.status, handle, plan, cancel=adapter.cancel)

    handle, outcome = run(scenario())
    assert outcome.state == "pending" and outcome.waited_s >= 0.1
    assert sandbox.usage(job_id=handle.job_id) == []  # still running at the provider


def test_aborting_the_wait_cancels_the_job_on_fal(make_adapter, sandbox):
    sandbox.knobs(fal=SLOW)
    adapter = make_adapter("fal_queue")

    async def scenario():
        handle = await adapter.submit(text_request("fal_queue"), "k")
        waiting = asyncio.create_task(await_job(adapter.status, handle, FAST,
                                                cancel=adapter.cancel))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return await adapter.status(handle)

    assert run(scenario()).state == "failed"  # cancelled at the provider


def test_credentials_never_show_in_reprs_or_errors(make_adapter, sandbox):
    adapter = make_adapter("openai_videos")
    key = adapter.credential.key.get_secret_value()
    sandbox.knobs(account_status={sandbox_account(adapter): "forbidden"})
    with pytest.raises(AccountError) as err:
        run(adapter.submit(text_request("openai_videos"), "k"))
    assert key not in str(err.value) + repr(err.value) + repr(adapter)
    assert key not in repr(adapter.credential) + str(adapter.credential)


@pytest.mark.parametrize("protocol", ["openai_videos", "kling_native"])
def test_a_submit_that_times_out_after_leaving_is_found_not_resent(make_adapter, sandbox,
                                                                  protocol):
    import httpx

    adapter = make_adapter(protocol, timeout=httpx.Timeout(0.3, connect=2))
    sandbox.faults({"kind": "slow", "protocol": WORLD[protocol], "method": "POST",
                    "delay_s": 1.0})
    handle = run(adapter.submit(text_request(protocol, prompt="slow to answer"), "idem-slow"))
    time.sleep(0.3)
    rows = [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]
    assert [r["job_id"] for r in rows] == [handle.job_id]


def test_poll_plan_comes_from_the_catalog_prior(catalog):
    from datetime import UTC, datetime

    from providers.latency import estimate
    from providers.poller import plan_for

    prior = estimate(catalog.row("kling-v3").latency, 5, "1080p",
                     datetime(2026, 11, 25, 12, tzinfo=UTC))
    plan = plan_for(prior, time_scale=0.01)
    assert (plan.p50_s, plan.deadline_s) == (pytest.approx(0.38), pytest.approx(3 * 0.94))


@pytest.mark.parametrize("shape", ["data", "top"])
def test_atlascloud_reads_both_submit_shapes(make_adapter, sandbox, shape):
    sandbox.knobs(atlascloud_response=shape)
    adapter = make_adapter("atlascloud")
    handle, outcome = run(finish(adapter, text_request("atlascloud")))
    assert handle.job_id.startswith("pred_") and outcome.state == "succeeded"


def test_atlascloud_uploads_the_image_first(make_adapter, sandbox):
    adapter = make_adapter("atlascloud")
    request = text_request("atlascloud", mode="image", image=png(1280, 720),
                           image_type="image/png")
    _handle, outcome = run(finish(adapter, request))
    assert outcome.state == "succeeded"
    assert sandbox.stats().get("requests:atlascloud", 0) >= 3  # upload, submit, status


def test_a_reset_atlascloud_submit_is_unknown_and_never_resent(make_adapter, sandbox):
    adapter = make_adapter("atlascloud")
    sandbox.faults({"kind": "reset", "protocol": "atlascloud", "method": "POST"})
    jobs_before = sandbox.stats().get("jobs:atlascloud", 0)
    with pytest.raises(SubmitUnknown):
        run(adapter.submit(text_request("atlascloud"), "k"))
    assert sandbox.stats().get("jobs:atlascloud", 0) == jobs_before + 1  # sent exactly once
    time.sleep(0.3)
    rows = [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]
    assert len(rows) <= 1


def test_atlascloud_moderation_fails_the_prediction_with_code_1039_unbilled(make_adapter,
                                                                             sandbox):
    """AtlasCloud's docs: a prediction the moderation refuses fails with `data.error_code`
    1039; the adapter decides on that code (a policy failure), and nothing is billed."""
    adapter = make_adapter("atlascloud")

    async def scenario():
        handle, outcome = await finish(adapter, text_request("atlascloud", prompt="pure gore"))
        assert outcome.state == "failed" and outcome.status.policy
        assert outcome.status.error_code == "1039"
        await adapter.result(handle)

    with pytest.raises(JobFailed) as err:
        run(scenario())
    assert err.value.policy
    time.sleep(0.2)
    assert not [r for r in sandbox.usage() if r["account"] == sandbox_account(adapter)]


def test_a_saturated_pool_never_turns_a_paid_submit_unknown(make_adapter, sandbox):
    """40 submits at once through an adapter of 4 sockets whose pool gives up after 0.2 s,
    each answered slowly (0.3 s): waiting for a socket is not an ambiguous send — every
    submit waits its turn before anything is sent, each is sent once, none ends unknown."""
    adapter = make_adapter("openai_videos", connections=4,
                           timeout=httpx.Timeout(10.0, pool=0.2))
    sandbox.knobs(api_keys={adapter.credential.key.get_secret_value(): "enterprise"})
    sandbox.faults({"kind": "slow", "protocol": "openai", "method": "POST", "path": "/videos",
                    "delay_s": 0.3, "count": 40})

    async def scenario():
        return await asyncio.gather(*(adapter.submit(text_request(
            "openai_videos", prompt=f"a heron, take {i}"), f"k-{i}") for i in range(40)),
            return_exceptions=True)

    results = run(scenario())
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len({r.job_id for r in results}) == 40
    assert sandbox.stats().get("jobs:openai", 0) >= 40


def test_fal_billing_events_are_asked_for_in_windows_fal_accepts(make_adapter, sandbox):
    """fal caps a billing-events request's date range at 90 days (its Platform API reference):
    a home older than that is reconciled window by window, not refused."""
    from datetime import timedelta
    from decimal import Decimal

    from providers.errors import ProviderError

    adapter = make_adapter("fal_queue")
    handle, outcome = run(finish(adapter, text_request("fal_queue")))
    assert outcome.state == "succeeded"
    now = datetime.now(UTC)
    with pytest.raises(ProviderError):  # one request over 200 days: refused, as fal does
        run(adapter._billing_events(now - timedelta(days=200), now + timedelta(days=1)))
    charges = run(adapter.charges(now - timedelta(days=200), now + timedelta(days=1)))
    assert [c.job_id for c in charges] == [handle.job_id]
    billed = [Decimal(u["usd"]) for u in sandbox.usage() if u["job_id"] == handle.job_id]
    assert sum(c.usd for c in charges) == sum(billed)
