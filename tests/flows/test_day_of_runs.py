"""A day of mixed runs with the default settings — a clip, a forced fallback, a storyboard
scene by scene, a batch — reconciles with the provider's bill to the cent: job by job against
the sandbox's own usage log, and in the cost report's reconciliation table (what the UI shows),
every difference $0.00."""

import asyncio
import json
import uuid

import pytest

from flows.batch import run_batch
from flows.generate import generate_clip
from flows.report import cost_report
from flows.storyboard import generate_storyboard
from models import ClipRequest, Scene
from models.batch import BatchRequest
from tests.flows.conftest import assert_reconciled
from tests.flows.journals import journal_of
from tests.flows.test_paid_once import reconciliation_artifact

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_a_day_of_mixed_runs_reconciles_to_the_cent(home, sandbox, tmp_path, monkeypatch):
    monkeypatch.delenv("REELFLOW_SUBSCRIPTIONS")  # the defaults, as a new user has them
    tag = uuid.uuid4().hex[:6]
    clip = asyncio.run(generate_clip(ClipRequest(prompt=f"A heron lands {tag}", duration=5,
                                                 resolution="720p")))
    assert any(r.startswith("tier assumed") for r in _plan_reasons(home, clip.clip_id))
    sandbox.knobs(kling={"failure_rate": 1.0})
    fallback = asyncio.run(generate_clip(ClipRequest(prompt=f"A fox runs {tag}", duration=5,
                                                     resolution="720p")))
    sandbox.knobs(kling={"failure_rate": 0.0})
    assert fallback.model != "kling-v3"
    board = asyncio.run(generate_storyboard(ClipRequest(
        mode="storyboard", policy="sora-2", resolution="720p",
        scenes=[Scene(prompt=f"A keeper climbs {tag}", duration=4),
                Scene(prompt=f"The lamp is lit {tag}", duration=4)])))
    assert len(board.scene_clip_ids) == 2
    manifest = tmp_path / "day.jsonl"
    manifest.write_text("\n".join(json.dumps({"prompt": f"Batch {i} {tag}", "duration": 5,
                                              "resolution": "720p"}) for i in range(3)))
    assert asyncio.run(run_batch(BatchRequest(manifest=str(manifest)))).done == 3

    summary = asyncio.run(cost_report(period="all"))
    assert summary["reconciled"] is True and summary["mismatches"] == 0
    ours = assert_reconciled(home, sandbox)
    table = {row["job"]: row for row in reconciliation_artifact("cost-report")}
    compared = {job: row for job, row in table.items() if job in ours}
    assert compared and all(row["difference"] == "$0.00" for row in compared.values())
    total = next(row for job, row in table.items() if job.startswith("total ("))
    assert total["difference"] == "$0.00"


def _plan_reasons(home, clip_id: str) -> list[str]:
    return journal_of(home).read(clip_id).plan.reasons
