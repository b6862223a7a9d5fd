"""extend_clip: native extension of an archived clip, with lineage and one charge per step."""

import asyncio
import uuid
from pathlib import Path

import pytest

from flows.extend import extend_clip
from flows.generate import generate_clip
from models import ClipRequest
from providers.router import PlanError
from storage.journal import Journal
from storage.ledger import read_ledger
from tasks.inspection import inspect_file
from tests.flows.conftest import assert_reconciled

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
    assert child.trimmed_path is None
    record = Journal(home / "journal").read(child.clip_id)
    assert record.parent_clip_id == parent.clip_id
    rows = [r for r in read_ledger(home / "ledger") if r["clip_id"] == child.clip_id]
    assert {r["parent_clip_id"] for r in rows} == {parent.clip_id}
    assert_reconciled(home, sandbox)


def test_extending_an_unknown_clip_is_a_clear_error(home, sandbox):
    with pytest.raises(PlanError, match="no archived clip"):
        asyncio.run(extend_clip("0" * 64, "more", 5))
