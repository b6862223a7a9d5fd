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


def test_the_ledger_reads_once_per_event_past_a_bad_part_and_an_older_shape(tmp_path):
    """One DuckDB scan of every part; a part that cannot be read sends the reader to the
    readable ones, one older than the labels column reads with no labels."""
    import pyarrow.parquet as pq

    request = ClipRequest(prompt="A heron lands", duration=5, labels={"customer": "acme"})
    plan = _plan(request)
    writer = LedgerWriter(tmp_path, "run-1")
    for n in (0, 1, 1):  # the last is the same event written again
        writer.append([event_row("submit", request, plan, "run-1", key=("s", n),
                                 cost=Decimal("0.25"))])
    old = writer.claim(next(tmp_path.rglob("run=run-1")))
    table = pq.read_table(next(tmp_path.rglob("part-00000.parquet")))
    pq.write_table(table.drop_columns(["labels"]).set_column(
        0, "event_id", [["older"]]), old)
    assert [r["labels"] for r in read_ledger(tmp_path)] == [{"customer": "acme"}] * 2 + [{}]
    (old.parent / "part-09999.parquet").write_bytes(b"PAR1 not parquet at all")
    rows = read_ledger(tmp_path, columns=["cost_usd"])
    assert [set(r) for r in rows] == [{"event_id", "cost_usd"}] * 3
    assert sum(r["cost_usd"] for r in rows) == Decimal("0.75")
