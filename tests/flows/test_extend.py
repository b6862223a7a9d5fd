"""extend_clip: native extension of an archived clip, with lineage and one charge per step."""

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from flows.extend import extend_clip
from flows.generate import generate_clip
from models import ClipRequest
from providers.router import PlanError
from storage.ledger import read_ledger
from tasks.inspection import inspect_file
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.mark.parametrize(("policy", "seconds", "added", "steps"),
                         [("kling-v3", 5, 10, 2), ("sora-2", 4, 8, 1)])
def test_an_archived_clip_is_extended_natively(home, sandbox, policy, seconds, added, steps):
    parent = asyncio.run(generate_clip(ClipRequest(
        prompt=f"A harbour at dawn {uuid.uuid4().hex[:6]}", duration=seconds,
        resolution="720p", policy=policy)))
    child = asyncio.run(extend_clip(parent.clip_id, "the fishing boats leave", added))
    assert child.model == parent.model and len(child.job_ids) == steps
    assert inspect_file(Path(child.path)).seconds == pytest.approx(seconds + added)
    # Sora's soundtrack (always made, not asked for) leaves the published copy; Kling is silent
    assert (child.trimmed_path is not None) == (policy == "sora-2")
    record = journal_of(home).read(child.clip_id)
    assert record.parent_clip_id == parent.clip_id
    rows = [r for r in read_ledger(home / "ledger") if r["clip_id"] == child.clip_id]
    assert {r["parent_clip_id"] for r in rows} == {parent.clip_id}
    assert_reconciled(home, sandbox)


def test_extending_an_unknown_clip_is_a_clear_error(home, sandbox):
    with pytest.raises(PlanError, match="no archived clip"):
        asyncio.run(extend_clip("0" * 64, "more", 5))


def test_a_model_without_extension_continues_from_the_last_frame(home, sandbox):
    from sandbox.render import FPS
    from tests.flows.test_storyboard import frames_of

    parent = asyncio.run(generate_clip(ClipRequest(
        prompt=f"A kite over dunes {uuid.uuid4().hex[:6]}", duration=5, resolution="720p",
        policy="kling-v3-fal")))
    child = asyncio.run(extend_clip(parent.clip_id, "the kite dives toward the sea", 5))
    assert child.scene_clip_ids[0] == parent.clip_id and child.stitch_method == "remux"
    assert child.seconds_delivered == pytest.approx(10.0)
    assert [f for f, _ in frames_of(child.path)] == list(range(5 * FPS)) * 2
    journal = journal_of(home)
    continuation = journal.read(child.scene_clip_ids[1])
    assert continuation.request.mode == "image" and continuation.plan.model == "kling-v3-fal"
    assert journal.read(child.clip_id).parent_clip_id == parent.clip_id
    rows = [r for r in read_ledger(home / "ledger") if r["clip_id"] == child.clip_id]
    assert [r["event_kind"] for r in rows] == ["inspection"]
    assert rows[0]["parent_clip_id"] == parent.clip_id
    assert child.cost_usd == pytest.approx(parent.cost_usd)  # the continuation only
    assert_reconciled(home, sandbox)
    usage = len(sandbox.usage())
    assert asyncio.run(extend_clip(parent.clip_id, "the kite dives toward the sea", 5)).path \
        == child.path and len(sandbox.usage()) == usage


@pytest.mark.slow
def test_a_kling_clip_is_extended_to_60_seconds_by_a_chain_of_native_steps(home, sandbox):
    parent = asyncio.run(generate_clip(ClipRequest(
        prompt=f"A long train journey {uuid.uuid4().hex[:6]}", duration=10, resolution="720p",
        policy="kling-v3")))
    child = asyncio.run(extend_clip(parent.clip_id, "the train crosses a long bridge", 50))
    assert inspect_file(Path(child.path)).seconds == pytest.approx(60.0)
    assert len(child.job_ids) == 10  # 5 s per native extension step
    from sandbox.render import FPS
    from tests.flows.test_storyboard import frames_of

    assert [f for f, _ in frames_of(child.path)] == list(range(60 * FPS))  # no cut, no gap
    charges = [r for r in read_ledger(home / "ledger")
               if r["clip_id"] == child.clip_id and r["event_kind"] == "complete"]
    assert len(charges) == 10
    assert_reconciled(home, sandbox)


def test_a_refused_native_extension_is_learned_and_continues_from_the_last_frame(home,
                                                                                  sandbox,
                                                                                  capsys):
    """With the sandbox refusing Kling video-extend for v3 videos (the public references'
    v1.x-only rule): the extension completes from the last frame, the refused attempt costs
    nothing (the provider made nothing), the refusal is kept beside the journal, and a second
    extension goes straight to the fallback with the learned reason in its plan — sending no
    second video-extend."""
    from cli.main import main
    from storage.capabilities import Capabilities

    sandbox.knobs(kling_extend_v1_only=True)
    parent = asyncio.run(generate_clip(ClipRequest(
        prompt=f"A tram in the rain {uuid.uuid4().hex[:6]}", duration=5, resolution="720p",
        policy="kling-v3")))
    paid_before = {r["job_id"] for r in sandbox.usage()}
    child = asyncio.run(extend_clip(parent.clip_id, "the tram turns the corner", 5))
    assert child.stitch_method == "remux" and child.seconds_delivered == pytest.approx(10.0)
    new_jobs = {r["job_id"] for r in sandbox.usage()} - paid_before
    assert new_jobs == set(journal_of(home).read(child.scene_clip_ids[1]).job_ids)
    learned = Capabilities(journal_of(home).learned("capabilities")).refusals()
    assert [(r.model, r.capability) for r in learned] == [("kling-v3", "extend")]
    assert "V1.0, V1.5 and V1.6" in learned[0].message
    record = journal_of(home).read(child.clip_id)
    assert "extend refused" in record.plan.reasons[0]
    assert [a.model for a in record.attempts] == ["kling-v3"]  # the refused send, noted

    again = asyncio.run(extend_clip(parent.clip_id, "the tram waits at the square", 5))
    assert again.seconds_delivered == pytest.approx(10.0)
    second = journal_of(home).read(again.clip_id)
    assert "extend refused by" in second.plan.reasons[0]
    assert second.attempts == []  # straight to the fallback: no video-extend was sent
    assert_reconciled(home, sandbox)

    assert main(["capabilities", "--json"]) == 0
    assert [r["capability"] for r in json.loads(capsys.readouterr().out)] == ["extend"]
    assert main(["capabilities", "--forget"]) == 0 and not Capabilities(
        journal_of(home).learned("capabilities")).refusals()


def test_a_batch_row_s_extension_is_the_clip_the_row_names_with_its_labels(home, sandbox,
                                                                           tmp_path):
    """The child was built anew from four fields: the row's batch id and labels were lost, and
    the batch said $0.00 for an edit it paid for (found by the cost bench, issue 23)."""
    from flows.batch import run_batch
    from models.batch import BatchRequest

    parent = asyncio.run(generate_clip(ClipRequest(
        prompt=f"A lighthouse at dusk {uuid.uuid4().hex[:6]}", duration=5, resolution="720p",
        policy="kling-v3")))
    manifest = tmp_path / "edits.jsonl"
    manifest.write_text(json.dumps({"mode": "extend", "source_clip": parent.clip_id,
                                    "prompt": "the lamp turns on", "duration": 5,
                                    "labels": {"customer": "acme"}}))
    result = asyncio.run(run_batch(BatchRequest(manifest=str(manifest))))
    (item,) = result.items
    record = journal_of(home).read(item.clip_id)
    assert record is not None and record.parent_clip_id == parent.clip_id
    assert item.cost_usd == pytest.approx(0.14) and result.spent_usd == pytest.approx(0.14)
    rows = [r for r in read_ledger(home / "ledger") if r["clip_id"] == item.clip_id]
    assert rows and {r["batch_id"] for r in rows} == {result.batch_id}
    assert {tuple(r["labels"].items()) for r in rows} == {(("customer", "acme"),)}
    assert_reconciled(home, sandbox)
