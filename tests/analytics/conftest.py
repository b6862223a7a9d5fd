"""A generated ledger with hand-computable answers, in the real part-file layout."""

from datetime import UTC, datetime

import pytest

from analytics import db
from analytics.synthetic import charge_rows, clip_rows, write

NOV1 = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    root = tmp_path_factory.mktemp("ledger")
    write(root,
          clip_rows(n=1000, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=5, seconds_billed=5, cost="0.14", latency_s=40, run="r1"),
          clip_rows(n=1000, provider="sora", model="sora-2", tier="api", seconds_asked=5,
                    seconds_billed=5, cost="0.355", latency_s=80, run="r2", hour=12),
          clip_rows(n=100, provider="sora", model="sora-2", tier="api", seconds_asked=5,
                    seconds_billed=5, cost="0.355", latency_s=200, hour=3, prefix="spike-",
                    run="r3"),
          clip_rows(n=20, provider="sora", model="sora-2", tier="api", seconds_asked=5,
                    seconds_billed=8, cost="0.568", latency_s=80, prefix="snap-", run="r4",
                    hour=12),
          clip_rows(n=50, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=5, seconds_billed=5, cost="0.14", outcome="downgraded",
                    actual="1280x720", prefix="down-", run="r5"),
          clip_rows(n=30, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=5, seconds_billed=5, cost="0.14",
                    outcome="flash_frame_trimmed", prefix="flash-", run="r6"),
          clip_rows(n=10, provider="kling", model="kling-v3", tier="standard",
                    seconds_asked=20, seconds_billed=5, cost="0.14", mode="extend",
                    prefix="ext-", run="r7"),
          charge_rows(n=10, provider="kling", model="kling-v3", tier="standard", kind="fail",
                      charge="failed_generation", cost="0.028"),
          charge_rows(n=5, provider="kling", model="kling-v3", tier="standard",
                      kind="requeue", charge="requeue", cost="0.14"),
          charge_rows(n=2, provider="kling", model="kling-v3", tier="standard",
                      kind="storage", charge="storage", cost="0.012"))
    return root


@pytest.fixture(scope="module")
def con(ledger, tmp_path_factory):
    database = tmp_path_factory.mktemp("db") / "analytics.duckdb"
    db.build(database, str(ledger))
    connection = db.connect(database, str(ledger))
    yield connection
    connection.close()
