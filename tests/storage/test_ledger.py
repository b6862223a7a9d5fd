"""The ledger writer: every charge its own part file, numbered without a scan per write, and
two writers of one run never claim the same number."""

from decimal import Decimal
from pathlib import Path

from models import ClipRequest, RoutePlan
from storage.ledger import LedgerWriter, event_row, read_ledger


def _plan(request: ClipRequest) -> RoutePlan:
    from datetime import UTC, datetime

    from providers.catalog import load_catalog
    from providers.router import parse_subscriptions, plan
    from settings import load_settings

    catalog = load_catalog()
    return plan(request, catalog, now=datetime.now(UTC), endpoints=load_settings().endpoints(),
                subscriptions=parse_subscriptions(None, catalog))


def test_two_writers_of_one_run_interleave_without_losing_a_row(tmp_path, monkeypatch):
    request = ClipRequest(prompt="A heron lands", duration=5)
    plan = _plan(request)
    scans = []
    glob = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: scans.append(pattern) or
                        glob(self, pattern))
    first, second = LedgerWriter(tmp_path, "run-1"), LedgerWriter(tmp_path, "run-1")
    for n in range(50):
        for writer, name in ((first, "a"), (second, "b")):
            writer.append([event_row("submit", request, plan, "run-1", key=(name, n),
                                     cost=Decimal("0.01"))])
    assert len(scans) == 2  # one count of the folder's markers per writer, not per write
    rows = read_ledger(tmp_path)
    assert len(rows) == 100 and sum(r["cost_usd"] for r in rows) == Decimal("1.00")
    parts = sorted(p.name for p in tmp_path.rglob("part-*.parquet"))
    assert parts == [f"part-{n:05d}.parquet" for n in range(100)]
