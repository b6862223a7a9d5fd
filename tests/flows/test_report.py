"""cost_report over a ledger that generate_clip wrote, reconciled against the provider's own
usage API (Kling's deduction detail, as the sandbox emulates it — never its /_admin oracle)."""

import asyncio
import uuid
from pathlib import Path

import pytest

from flows.generate import generate_clip
from flows.report import cost_report
from models import ClipRequest

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


def test_cost_report_explains_and_reconciles_what_was_generated(home, sandbox):
    result = asyncio.run(generate_clip(ClipRequest(
        prompt=f"Report me {uuid.uuid4().hex[:6]}", duration=5, resolution="720p")))
    summary = asyncio.run(cost_report(period="all"))
    assert Path(summary["html"]).exists() and summary["spent_usd"] == result.cost_usd
    assert summary["reconciled"] is True and summary["mismatches"] == 0
    assert summary["found_only_on_bill_usd"] == 0 and summary["not_reconcilable"] == []
    assert "a month for" in summary["advice"]


def test_a_sora_charge_no_poll_saw_shows_as_a_day_gap_in_the_report(home, sandbox,
                                                                     monkeypatch):
    """OpenAI's costs API is per day, never per job: a re-queue charge the Videos API never
    reported is shown as the day's gap on the Sora account, not guessed onto a job."""
    from decimal import Decimal

    from storage.ledger import read_ledger

    monkeypatch.setenv("OPENAI_API_KEY", f"sk-own-{uuid.uuid4().hex}")  # an account of its own
    sandbox.knobs(openai={"requeue_rate": 1.0})
    asyncio.run(generate_clip(ClipRequest(prompt=f"Re-queued once {uuid.uuid4().hex[:6]}",
                                          duration=4, policy="sora-2", resolution="720p")))
    summary = asyncio.run(cost_report(period="all"))
    assert summary["not_reconcilable"] == ["openai_videos:sora:api"]
    gap = sum(summary["day_gaps_usd"].get("openai_videos:sora:api", {}).values())
    seen = sum(r["cost_usd"] for r in read_ledger(home / "ledger")
               if r["event_kind"] == "requeue")
    assert Decimal(str(gap)) + round(seen, 2) == Decimal("0.28")  # one 4 s re-queue, either way
