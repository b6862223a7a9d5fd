"""A generated ledger with hand-computable answers, in the real part-file layout."""

from datetime import UTC, datetime
from pathlib import Path

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


# Five days of clips in November (10th-14th, UTC): the first two archived as real MP4s, the
# third's file gone from the archive, the last two with no journal record at all.
GALLERY_CLIPS = (
    ("A red fox crosses a snowy field at dawn", 10, "kling", "kling-v3", "standard", "0.70"),
    ("A lighthouse keeper climbs the spiral stairs at dusk", 11, "sora", "sora-2", "api",
     "0.40"),
    ("Rain on a tin roof, close up", 12, "kling", "kling-v3", "standard", "0.70"),
    (None, 13, "kling", "kling-v3", "standard", "0.70"),
    (None, 14, "kling", "kling-v3", "standard", "0.70"),
)


@pytest.fixture(scope="module")
def archived_home(tmp_path_factory):
    """A home with a ledger, a journal and an archive: (home, journal, archive, clip ids)."""
    from models import Archived, ClipRequest
    from sandbox.render import Shot, render
    from storage.archive import Archive
    from storage.journal import new_record

    home = tmp_path_factory.mktemp("home")
    from storage.journal_folder import FolderJournal
    journal, archive = FolderJournal(home / "journal"), Archive(home / "archive")
    columns, ids = [], []
    for n, (prompt, day, provider, model, tier, cost) in enumerate(GALLERY_CLIPS):
        when = datetime(2026, 11, day, 9 + n, 30, tzinfo=UTC)
        rows = clip_rows(n=1, provider=provider, model=model, tier=tier, seconds_asked=5,
                         seconds_billed=5, cost=cost, start=when, latency_s=30 + 10 * n,
                         prefix=f"gallery-{n}-", run=f"g{n}")
        if prompt is not None:
            request = ClipRequest(prompt=prompt, duration=5, resolution="720p")
            journal.start(new_record(request, None))
            location = archive.path_for(request.clip_id, when)
            if n < 2:
                render(Path(location), 320, 180, [Shot(prompt, 48)])
            journal.record_archive(request.clip_id, Archived(path=location, sha256="0" * 64,
                                                             submitted_at=when))
            rows["clip_id"] = [request.clip_id] * len(rows["clip_id"])
        ids.append(rows["clip_id"][0])
        columns.append(rows)
    write(home / "ledger", *columns)
    return home, journal, archive, ids
