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
