"""A request's accounting labels end to end: generate_clip against the sandbox writes them on
every ledger row of the clip, and relabelling the request is the same clip, paid once."""

import asyncio
import uuid

import pytest

from flows.generate import generate_clip
from models import ClipRequest
from storage.ledger import read_ledger
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
ACME = {"customer": "acme", "campaign": "spring"}


def test_a_labelled_clip_s_ledger_rows_carry_its_labels_and_relabelling_pays_nothing(
        home, sandbox):
    prompt = f"A heron lands on a post ({uuid.uuid4().hex[:8]})"
    request = ClipRequest(prompt=prompt, duration=5, resolution="720p", labels=ACME)
    result = asyncio.run(generate_clip(request))
    rows = [r for r in read_ledger(home / "ledger") if r["clip_id"] == result.clip_id]
    assert sorted(r["event_kind"] for r in rows) == ["complete", "inspection", "submit"]
    assert all(r["labels"] == ACME for r in rows)
    assert journal_of(home).read(result.clip_id).request.labels == ACME

    usage = len(sandbox.usage())
    again = asyncio.run(generate_clip(request.model_copy(update={
        "labels": {"customer": "globex"}})))
    assert again.clip_id == result.clip_id and len(sandbox.usage()) == usage
    assert [r["labels"] for r in read_ledger(home / "ledger")] == [ACME] * 3
    assert journal_of(home).read(result.clip_id).request.labels == ACME  # the first
    assert_reconciled(home, sandbox)


def test_a_storyboard_s_scenes_are_charged_under_its_labels(catalog, now, sandbox_endpoints):
    from providers.router import parse_subscriptions, plan
    from tasks.storyboards import scene_request

    board = ClipRequest(mode="storyboard", scenes=[{"prompt": "a", "duration": 4}],
                        labels=ACME)
    decision = plan(board, catalog, now=now, endpoints=sandbox_endpoints,
                    subscriptions=parse_subscriptions("kling:standard", catalog))
    assert scene_request(board, decision, 0, "a", None).labels == ACME
