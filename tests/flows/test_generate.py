"""generate_clip end to end against the sandbox; after each test the ledger and the sandbox's
usage log agree to the cent."""

import asyncio
import hashlib
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from flows.generate import generate_clip
from models import ClipRequest
from storage.ledger import read_ledger
from tasks.archiving import ClipLost
from tasks.awaiting import PendingAtDeadline
from tasks.inspection import inspect_file
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

REPO = Path(__file__).resolve().parents[2]
# Prefect's own clients outlive the event loop of each flow call (one asyncio.run per call)
# and leave loopback sockets to the garbage collector; nothing of reelflow's is ignored here.
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
COASTAL = "Aerial shot of a coastal city at golden hour"


RUN = uuid.uuid4().hex[:8]


def generate(**fields):
    """Prompts get this session's tag: the provider remembers external task ids per account,
    so the same request in another test's fresh home would find that test's task."""
    fields["prompt"] = f"{fields['prompt']} ({RUN})"
    return asyncio.run(generate_clip(ClipRequest(**fields)))


def test_kling_text_to_video_is_archived_inspected_and_recorded(home, sandbox):
    result = generate(prompt=COASTAL, duration=5)
    assert (result.model, result.tier, result.cost_usd) == ("kling-v3", "standard", 0.14)
    path = Path(result.path)
    assert path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == result.sha256
    assert path.relative_to(home).parts[:2] == ("clips", "2026") or path.parts[-4].isdigit()
    assert path.with_suffix(".json").exists()
    kinds = sorted(r["event_kind"] for r in read_ledger(home / "ledger"))
    assert kinds == ["complete", "inspection", "submit"]
    assert journal_of(home).read(result.clip_id).state == "done"
    assert assert_reconciled(home, sandbox) == {result.job_ids[0]: Decimal("0.14")}


def test_a_second_run_pays_nothing(home, sandbox):
    first = generate(prompt=COASTAL, duration=5)
    usage_before = len(sandbox.usage())
    again = generate(prompt=COASTAL, duration=5)
    assert again.path == first.path and len(sandbox.usage()) == usage_before


def test_sora_named_on_the_sandbox_is_snapped_and_trimmed(home, sandbox):
    result = generate(prompt="A paper boat drifts", duration=5, policy="sora-2",
                      resolution="720p")
    assert result.model == "sora-2" and result.cost_usd == pytest.approx(0.568)
    assert inspect_file(Path(result.trimmed_path)).seconds == pytest.approx(5.0)
    assert inspect_file(Path(result.path)).seconds == pytest.approx(8.0)
    assert_reconciled(home, sandbox)


def test_image_to_video_from_a_4_3_photo_is_cropped(home, sandbox):
    result = generate(mode="image", prompt="Boats rock gently", duration=5, aspect_ratio="auto",
                      image=str(REPO / "examples/harbour-4x3.jpg"))
    assert result.resolution_actual == "1920x1080"
    assert_reconciled(home, sandbox)


def test_fal_path(home, sandbox):
    result = generate(prompt="A fox in the snow", duration=5, policy="kling-v3-fal",
                      resolution="720p")
    # fal's own page: $0.084/s with audio off (generate_audio is sent false)
    assert result.model == "kling-v3-fal" and result.cost_usd == pytest.approx(0.42)
    assert_reconciled(home, sandbox)


def test_a_long_clip_is_an_extension_chain(home, sandbox):
    result = generate(prompt="A night market", duration=20, resolution="720p")
    assert len(result.job_ids) == 2 and result.seconds_delivered == pytest.approx(20)
    assert result.cost_usd == pytest.approx(20 * 0.028)
    assert_reconciled(home, sandbox)


def test_failed_jobs_are_charged_20_percent_then_fall_back(home, sandbox, caplog):
    sandbox.knobs(kling={"failure_rate": 1.0})
    result = generate(prompt="A fox 1", duration=5, resolution="720p")
    # the next cheapest: AtlasCloud's kling-v3.0-std at $0.071/s (fal's is $0.084/s)
    assert result.model == "kling-v3-atlas"
    fails = [r for r in read_ledger(home / "ledger") if r["event_kind"] == "fail"]
    assert [r["cost_usd"] for r in fails] == [Decimal("0.028")] * 2
    assert result.cost_usd == pytest.approx(0.355 + 2 * 0.028)
    assert_reconciled(home, sandbox)
    # the UI shows the fallback: a bar per job, the failed ones not at 100%, every attempt
    # with its charge in the summary
    from tasks.progress import job_key
    record = journal_of(home).read(result.clip_id)
    jobs = [s.handle.job_id for s in record.every_step()]
    artifacts = clip_artifacts(result.clip_id)
    bars = [artifacts[job_key(result.clip_id, job)] for job in jobs]
    assert len(jobs) == 3 and [b.data < 100 for b in bars] == [True, True, False]
    assert all("failed" in b.description for b in bars[:2])
    summary = artifacts[f"clip-{result.clip_id[:16]}"].data
    assert summary.count("| kling-v3 · standard | failed | $0.03 |") == 2
    assert "| kling-v3-atlas · payg | succeeded | $0.36 |" in summary and "Moved on:" in summary
    said = [r.getMessage() for r in caplog.records if r.name == "prefect.flow_runs"]
    assert any(m.startswith("fell back from kling-v3 to kling-v3-atlas (payg): failed 2 times")
               for m in said), said


def test_a_prompt_a_provider_s_policy_refuses_is_sent_to_no_other_provider(home, sandbox):
    """Gore passes no pre-flight rule on AtlasCloud, whose three models the sandbox's default
    world all refuse it on. Before: the prompt went to each of them in turn. Now: one job,
    refused, the clip stops naming the policy; asking again pays nothing and sends nothing."""
    from providers.router import PlanError
    from tasks.fallback import PromptRefused

    tag = uuid.uuid4().hex[:8]
    with pytest.raises(PromptRefused) as refused:
        generate(prompt=f"A gore scene in a castle {tag}", duration=5, resolution="720p")
    assert refused.value.field == "prompt"
    assert "atlascloud's content policy refused this prompt" in str(refused.value)
    assert "not sent to any other provider" in str(refused.value)
    jobs = sandbox.jobs(tag)
    assert [j["protocol"] for j in jobs] == ["atlascloud"]
    with pytest.raises(PlanError) as again:
        generate(prompt=f"A gore scene in a castle {tag}", duration=5, resolution="720p")
    assert again.value.field == "prompt" and "routed around" in str(again.value)
    assert len(sandbox.jobs(tag)) == 1
    # the refusal is not billed, and the ledger says the same, job by job
    assert sum(Decimal(r["usd"]) for r in sandbox.usage() if r["job_id"] == jobs[0]["id"]) == 0
    assert_reconciled(home, sandbox)


def test_a_prompt_refused_once_is_routed_around_that_provider_on_the_next_request(
        home, sandbox, capsys):
    import json

    from cli.main import main
    from storage.prompt_refusals import KIND, RefusedPrompts
    from tasks.fallback import PromptRefused

    sandbox.knobs(kling={"policy_patterns": [r"\bzorblax\b"]})
    with pytest.raises(PromptRefused) as refused:
        generate(prompt="A zorblax in the garden", duration=5, resolution="720p")
    assert "kling's content policy refused this prompt on kling-v3" in str(refused.value)
    assert "asking again sends it to kling-v3-" in str(refused.value)
    learned = RefusedPrompts(journal_of(home).learned(KIND)).refusals()
    assert [(r.provider, r.model) for r in learned] == [("kling", "kling-v3")]
    # the same words in another spelling: planned around Kling before anything is sent
    result = generate(prompt="A  zorblax in the GARDEN", duration=5, resolution="720p")
    assert result.model in ("kling-v3-fal", "kling-v3-atlas")  # the same price, assumed
    record = journal_of(home).read(result.clip_id)
    assert record.attempts == [] and len(result.job_ids) == 1
    out = {c.model: c.reason for c in record.plan.rejected if c.model == "kling-v3"}
    assert out["kling-v3"].startswith("routed around: kling's content policy refused")
    assert_reconciled(home, sandbox)

    assert main(["capabilities", "--prompts", "--json"]) == 0
    assert [r["provider"] for r in json.loads(capsys.readouterr().out)] == ["kling"]
    assert main(["capabilities", "--forget"]) == 0
    assert not RefusedPrompts(journal_of(home).learned(KIND)).refusals()


def test_an_account_error_stops_that_account_and_falls_back(home, sandbox):
    from sandbox.knobs import KLING_ACCESS_KEY
    from sandbox.service import account_of

    sandbox.knobs(account_status={account_of("kling:" + KLING_ACCESS_KEY): "arrears"})
    result = generate(prompt="A fox 2", duration=5, resolution="720p")
    assert result.model in ("kling-v3-fal", "kling-v3-atlas")  # the same price, assumed
    assert_reconciled(home, sandbox)


def test_a_429_storm_is_waited_out(home, sandbox):
    sandbox.faults({"kind": "429", "protocol": "kling", "method": "POST", "count": 3})
    result = generate(prompt="A fox 3", duration=5, resolution="720p")
    assert result.model == "kling-v3"
    assert_reconciled(home, sandbox)


def test_a_5xx_burst_is_ridden_out(home, sandbox):
    sandbox.faults({"kind": "5xx", "protocol": "kling", "method": "GET", "count": 3})
    assert generate(prompt="A fox 4", duration=5, resolution="720p").model == "kling-v3"
    assert_reconciled(home, sandbox)


def test_a_truncated_download_is_resumed(home, sandbox):
    sandbox.faults({"kind": "truncate", "protocol": "files"})
    result = generate(prompt="A fox 5", duration=5, resolution="720p")
    assert inspect_file(Path(result.path)).seconds == pytest.approx(5.0)
    assert_reconciled(home, sandbox)


def test_a_download_that_fails_past_its_resumes_is_archived_on_prefect_s_retry(
        home, sandbox, monkeypatch):
    monkeypatch.setattr("providers.download.backoff_s", lambda *args: 0.0)
    # the first archive_output run's download and its eight resumes answer 503: a transient
    # error, which archive_output's retry condition hands to Prefect's retry
    sandbox.faults({"kind": "5xx", "protocol": "files", "method": "GET", "count": 9})
    paid = len(sandbox.usage())
    result = generate(prompt="A fox 5b", duration=5, resolution="720p")
    assert inspect_file(Path(result.path)).seconds == pytest.approx(5.0)
    assert len(sandbox.usage()) - paid == 1
    assert_reconciled(home, sandbox)


def test_a_flash_frame_is_trimmed_and_the_original_kept(home, sandbox):
    sandbox.knobs(kling={"flash_frame_rate": 1.0})
    result = generate(prompt="A fox 6", duration=5, resolution="720p")
    assert result.flash_frame and Path(result.path).exists()
    trimmed = inspect_file(Path(result.trimmed_path))
    assert trimmed.frames == 119 and not trimmed.flash_frame
    assert_reconciled(home, sandbox)


@pytest.mark.parametrize("policy", ["accept", "fail", "regenerate"])
def test_a_silent_downgrade_follows_the_request_s_policy(home, sandbox, policy):
    sandbox.knobs(kling={"downgrade_rate": 1.0, "downgrade_load": 0.0})
    if policy == "fail":
        with pytest.raises(RuntimeError, match="downgrade policy is fail"):
            generate(prompt="A fox 7", duration=5, downgrade=policy)
    else:
        result = generate(prompt="A fox 8", duration=5, downgrade=policy)
        assert result.downgraded and result.resolution_actual == "1280x720"
        charges = [r for r in read_ledger(home / "ledger") if r["event_kind"] == "complete"]
        assert len(charges) == (2 if policy == "regenerate" else 1)
        rejected = [r for r in read_ledger(home / "ledger") if r["event_kind"] == "rejection"]
        if policy == "regenerate":  # take 1 is kept, paid, and not accepted
            assert len(rejected) == 1 and rejected[0]["clip_id"] != result.clip_id
            assert rejected[0]["inspection_outcome"].startswith("rejected: silently downgraded")
            assert journal_of(home).read(rejected[0]["clip_id"]).outcome.rejected
        else:
            assert rejected == []
    assert_reconciled(home, sandbox)


def test_two_concurrent_runs_of_one_request_pay_once(home, sandbox):
    request = ClipRequest(prompt=f"Two at once ({RUN})", duration=5, resolution="720p")

    async def both():
        return await asyncio.gather(generate_clip(request), generate_clip(request))

    first, second = asyncio.run(both())
    assert first.job_ids == second.job_ids and first.path == second.path
    charged = [r for r in sandbox.usage() if r["job_id"] in first.job_ids]
    assert len(charged) == 1
    assert_reconciled(home, sandbox)


def test_a_second_run_in_one_process_waits_out_a_send_in_flight(home, sandbox):
    """The second run reaches the journal while the first run's send is held up at the
    provider: it waits for that send without stopping the event loop the send needs."""
    request = ClipRequest(prompt=f"One send in flight ({RUN})", duration=5, resolution="720p")
    sandbox.faults({"kind": "slow", "protocol": "kling", "method": "POST", "path": "/videos/",
                    "delay_s": 4.0})
    journal = journal_of(home)

    async def mid_send():
        while not ((r := journal.read(request.clip_id)) and r.steps
                   and r.steps[0].send_started_at):
            await asyncio.sleep(0.02)
        return await generate_clip(request)

    async def both():
        return await asyncio.gather(generate_clip(request), mid_send())

    first, second = asyncio.run(both())
    assert first.job_ids == second.job_ids and first.path == second.path
    assert len([r for r in sandbox.usage() if r["job_id"] in first.job_ids]) == 1
    assert_reconciled(home, sandbox)


def test_pending_at_deadline_is_completed_by_the_next_run(home, sandbox, monkeypatch):
    sandbox.knobs(kling={"p50_5s": 2000, "p95_5s": 2100, "p50_30s": 2100})  # ~2 s at 0.001
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "0.05")
    with pytest.raises(PendingAtDeadline, match="pending at deadline"):
        generate(prompt="Slow to render", duration=5, resolution="720p")
    record = next(iter(journal_of(home).records()))
    assert record.state == "pending" and record.steps[0].handle
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "20")
    result = generate(prompt="Slow to render", duration=5, resolution="720p")
    assert result.job_ids == [record.steps[0].handle.job_id]
    assert_reconciled(home, sandbox)


def test_an_output_that_expired_before_archival_is_reported(home, sandbox, monkeypatch):
    sandbox.knobs(openai={"p50_5s": 500, "p95_5s": 520, "p50_30s": 600})
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "0.05")
    with pytest.raises(PendingAtDeadline):
        generate(prompt="Gone by morning", duration=4, policy="sora-2", resolution="720p")
    import time

    time.sleep(1.0)
    sandbox.clock(advance_s=100)  # past Sora's 24 h (86.4 s at this scale)
    monkeypatch.setenv("REELFLOW_POLL_DEADLINE_K", "20")
    with pytest.raises(ClipLost, match="expired before it could be archived"):
        generate(prompt="Gone by morning", duration=4, policy="sora-2", resolution="720p")
    assert_reconciled(home, sandbox)


def test_an_emulated_storyboard_is_refused_before_paying(home, sandbox):
    from models import Scene
    from providers.router import PlanError

    usage = len(sandbox.usage())
    with pytest.raises(PlanError, match="no native storyboard"):
        asyncio.run(generate_clip(ClipRequest(
            mode="storyboard", policy="sora-2", resolution="720p",
            scenes=[Scene(prompt=f"a {RUN}", duration=4), Scene(prompt="b", duration=4)])))
    assert len(sandbox.usage()) == usage


def test_atlascloud_path(home, sandbox):
    result = generate(prompt="A lantern festival", duration=5, policy="wan-2.6",
                      resolution="720p")
    assert result.model == "wan-2.6" and result.cost_usd == pytest.approx(0.425)
    assert result.job_ids[0].startswith("pred_")
    assert_reconciled(home, sandbox)


@pytest.mark.parametrize(("resolution", "model_id", "price"),
                         [("720p", "kwaivgi/kling-v3.0-std/text-to-video", Decimal("0.071")),
                          ("1080p", "kwaivgi/kling-v3.0-pro/text-to-video", Decimal("0.095"))])
def test_kling_on_atlascloud_is_sent_by_its_published_ids(home, sandbox, resolution, model_id,
                                                          price):
    """AtlasCloud's Kling v3 ids choose the variant (atlascloud.ai model pages): std for
    720p, pro for 1080p, each at its page's price — never the bare `kwaivgi/kling-v3.0`."""
    result = generate(prompt="A heron lifts off a pond", duration=5, policy="kling-v3-atlas",
                      resolution=resolution)
    billed = [r for r in sandbox.usage() if r["job_id"] == result.job_ids[0]]
    assert [r["model"] for r in billed] == [model_id]
    assert Decimal(str(result.cost_usd)) == price * 5
    assert_reconciled(home, sandbox)


def clip_artifacts(clip_id: str) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(like_=clip_id[:16])))
    return {a.key: a for a in asyncio.run(artifacts())}


def test_the_ui_gets_a_report_a_link_and_the_job_s_progress(home, sandbox):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from tasks.progress import job_key

    result = generate(prompt="A heron lands", duration=5, resolution="720p")
    prefix = result.clip_id[:16]
    by_key = clip_artifacts(result.clip_id)
    job = job_key(result.clip_id, result.job_ids[0])
    assert set(by_key) == {f"clip-{prefix}", f"clip-{prefix}-file", job}
    progress = by_key[job]
    assert progress.type == "progress" and progress.data == 100.0
    assert "succeeded" in progress.description and result.job_ids[0] in progress.description
    # Prefect stores a link artifact as markdown: [name](uri)
    assert f"[{result.path.rsplit('/', 1)[-1]}](file://" in by_key[f"clip-{prefix}-file"].data
    summary = by_key[f"clip-{prefix}"].data
    for part in ("## Prompt as sent", "> A heron lands", f"Clip id `{result.clip_id}`",
                 "## Why Kling v3 · standard", "## Jobs", f"`{result.job_ids[0]}`",
                 "| kling-v3 · standard | succeeded | $0.14 |", "## Checks",
                 "- seconds: asked 5, billed 5 s, delivered 5", "- soundtrack: no",
                 f"```text\n{result.path}\n```", "](data:image/jpeg;base64,"):
        assert part in summary, part

    async def names():
        async with get_client() as client:
            run = (await client.read_flow_runs(limit=1, sort="START_TIME_DESC"))[0]
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[run.id])))
            return run.name, {t.name for t in tasks}
    run_name, task_names = asyncio.run(names())
    assert run_name.startswith("clip · A heron lands") and run_name.endswith("5s 720p")
    assert f"submit {result.model}/{result.tier} step 0" in task_names
    assert f"await {result.model} job {result.job_ids[0]}" in task_names


def test_sora_4k_is_refused_as_the_api_refuses_it_and_learned(home, sandbox):
    """OpenAI documents no 4K size, so the sandbox refuses 3840x2160 as the API would (400 on
    `size`): the seed's Sora 4K is learned as refused, nothing is billed, and the next plan
    says why without sending anything."""
    from providers.router import PlanError
    from storage.capabilities import Capabilities

    paid = len(sandbox.usage())
    with pytest.raises(PlanError, match="4k refused by"):
        generate(prompt="A comet over a glacier", duration=4, resolution="4k", policy="sora-2")
    assert len(sandbox.usage()) == paid
    refusals = Capabilities(journal_of(home).learned("capabilities")).refusals()
    assert [(r.model, r.capability) for r in refusals] == [("sora-2", "4k")]
    sent = sandbox.stats().get("requests:openai", 0)
    with pytest.raises(PlanError, match="4k refused by"):
        generate(prompt="A comet over a glacier", duration=4, resolution="4k", policy="sora-2")
    assert sandbox.stats().get("requests:openai", 0) == sent


def test_kling_on_fal_with_audio_is_billed_at_fal_s_audio_price_and_has_a_soundtrack(home,
                                                                                      sandbox):
    """generate_audio is sent either way; with audio the job is billed at fal's audio rate
    ($0.168/s at 1080p) and the MP4 has a soundtrack, without it $0.112/s and silent."""
    sound = generate(prompt="Waves on a shingle beach", duration=5, resolution="1080p",
                     policy="kling-v3-fal", audio=True)
    silent = generate(prompt="Waves on a shingle beach", duration=5, resolution="1080p",
                      policy="kling-v3-fal")
    for result, usd, has_audio in ((sound, "0.840000", True), (silent, "0.560000", False)):
        assert [r["usd"] for r in sandbox.usage() if r["job_id"] == result.job_ids[0]] == [usd]
        assert Decimal(str(result.cost_usd)) == Decimal(usd)
        assert inspect_file(Path(result.path)).audio is has_audio and result.audio is has_audio
    rows = [r for r in read_ledger(home / "ledger") if r["clip_id"] == sound.clip_id]
    assert rows and all(r["audio"] for r in rows)
    assert_reconciled(home, sandbox)


def test_a_soundtrack_not_asked_for_leaves_the_published_copy_of_a_model_that_always_makes_one(
        home, sandbox):
    """Sora 2 always makes a soundtrack: without audio the archived original keeps it, the
    published copy has it removed (video remuxed untouched); with audio both have it."""
    silent = generate(prompt="A lighthouse beam sweeps the fog", duration=4, resolution="720p",
                      policy="sora-2")
    assert inspect_file(Path(silent.path)).audio and not silent.audio
    copy = inspect_file(Path(silent.trimmed_path))
    assert not copy.audio and copy.seconds == pytest.approx(4.0)
    record = journal_of(home).read(silent.clip_id)
    assert record.outcome.trim.audio_removed and record.outcome.trim.audio_mismatch is None
    sound = generate(prompt="A lighthouse beam sweeps the fog", duration=4, resolution="720p",
                     policy="sora-2", audio=True)
    assert sound.audio and sound.trimmed_path is None
    assert sound.cost_usd == silent.cost_usd  # the soundtrack is in Sora's price
    assert_reconciled(home, sandbox)


def test_the_run_log_says_what_was_submitted_charged_and_archived(home, sandbox, caplog):
    result = generate(prompt="A gull on a post", duration=5, resolution="720p")
    said = [r.getMessage() for r in caplog.records if r.name == "prefect.task_runs"]
    job = result.job_ids[0]
    assert any(f"submitted kling-v3/standard job {job}, step 0 (estimate $0.14" in m
               for m in said), said
    assert any(m.startswith(f"job {job} succeeded after ") and "$0.14 charged" in m
               for m in said)
    assert any(m.startswith(f"archived {result.path} (") for m in said)


def test_reelflow_generate_says_a_policy_refusal_in_one_line_and_exits_2(home, sandbox, capsys):
    from cli.main import main

    tag = uuid.uuid4().hex[:8]
    assert main(["generate", "--prompt", f"A gore scene at sea {tag}", "--duration", "5",
                 "--resolution", "720p"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("reelflow: prompt: atlascloud's content policy refused this prompt")
    assert "not sent to any other provider" in line
    assert len(sandbox.jobs(tag)) == 1
