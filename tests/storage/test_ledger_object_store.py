"""The ledger on an object store (moto's S3 server on loopback): every part one create-only put,
a part number another writer took meanwhile skipped and never overwritten, rows read back as
the folder's, and compaction by the sweep losing and doubling nothing — for a reader between the
compacted put and the deletes, two sweeps racing, and a sweep killed midway."""

from datetime import date, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from analytics import db
from analytics.synthetic import charge_rows, clip_rows
from models import LEDGER_SCHEMA, ClipRequest
from storage.ledger import LedgerWriter, event_row, read_ledger
from storage.ledger_files import LedgerFiles
from tasks.sweeping import compact
from tests.analytics.test_incremental import views
from tests.storage.test_ledger import _plan

pytest_plugins = ("tests.object_store",)  # s3
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
KLING = dict(provider="kling", model="kling-v3", tier="standard", seconds_asked=5,
             seconds_billed=5, cost="0.14")
DAY = date(2026, 11, 1)  # clip_rows' day
TODAY = DAY + timedelta(days=1)  # DAY is closed


@pytest.fixture
def bucket(s3) -> str:
    return s3.new_bucket("reelflow-ledger")


@pytest.fixture
def ledger(bucket, s3) -> tuple[str, dict]:
    """(the ledger's URL, its fsspec storage options)."""
    return f"s3://{bucket}/ledger", s3.options


def write_day(place: str, options: dict | None = None) -> int:
    """Two runs' rows of DAY, two parts each; returns the rows written."""
    written = 0
    for run, offset in (("r1", 0), ("r2", 4)):
        rows = pa.table(clip_rows(n=4, offset=offset, run=run, **KLING), schema=LEDGER_SCHEMA)
        writer = LedgerWriter(place, run, options)
        for start in (0, 6):
            writer.write(DAY, rows.slice(start, 6))
        written += rows.num_rows
    return written


def other_sweep_inside(monkeypatch, method: str, place: str, options: dict) -> list:
    """LedgerFiles.<method> patched so that its first call runs a whole other sweep first;
    returns a list that then holds what that sweep compacted."""
    original, other = getattr(LedgerFiles, method), []

    def patched(self, *args):
        if not other:
            other.append(None)  # the other sweep calls this too: it runs only once
            other[0] = compact(place, TODAY, options)
        return original(self, *args)

    monkeypatch.setattr(LedgerFiles, method, patched)
    return other


def spend(rows: list[dict]) -> tuple[list[str], Decimal]:
    """(every event id, once each; the total cost): what a report counts."""
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids))
    return sorted(ids), sum((r["cost_usd"] for r in rows), Decimal(0))


def day_keys(s3, bucket: str) -> list[str]:
    return sorted(k.split(f"date={DAY}/")[1] for k in s3.objects(bucket))


def test_parts_are_put_whole_and_read_back_as_the_folders_are(tmp_path, ledger, s3,
                                                               bucket):
    request = ClipRequest(prompt="A heron lands", duration=5, labels={"customer": "acme"})
    plan = _plan(request)
    rows = [event_row("submit", request, plan, "run-1", key=(n,), cost=Decimal("0.01"))
            for n in range(20)]
    for place, options in ((tmp_path, None), ledger):
        first, second = (LedgerWriter(place, "run-1", options) for _ in range(2))
        for n, row in enumerate(rows):  # two writers of one run, interleaved
            (first if n % 2 else second).append([row])
    assert read_ledger(ledger[0], options=ledger[1]) == read_ledger(tmp_path)
    assert sorted(k.rsplit("/", 1)[1] for k in s3.objects(bucket)) == [
        f"part-{n:05d}.parquet" for n in range(20)]  # no markers, no temporary names
    assert read_ledger(ledger[0], ["cost_usd"], ledger[1]) == read_ledger(tmp_path,
                                                                          ["cost_usd"])


def test_a_part_number_taken_meanwhile_is_skipped_never_overwritten(ledger, s3,
                                                                     bucket):
    place, options = ledger
    rows = pa.table(clip_rows(n=3, run="run-1", **KLING), schema=LEDGER_SCHEMA)
    early = LedgerWriter(place, "run-1", options)
    early.write(DAY, rows.slice(0, 3))
    late = LedgerWriter(place, "run-1", options)  # counts one part: starts at 1
    late.write(DAY, rows.slice(3, 3))
    before = s3.objects(bucket)
    location = early.write(DAY, rows.slice(6, 3))  # tries 1: taken (412), puts 2
    assert location.endswith("run=run-1/part-00002.parquet")
    after = s3.objects(bucket)
    assert {k: after[k] for k in before} == before and len(after) == 3
    assert spend(read_ledger(place, options=options))[1] == Decimal("0.42")


def test_a_reader_between_the_compacted_put_and_the_deletes_counts_each_row_once(
        ledger, s3, bucket, monkeypatch):
    place, options = ledger
    written = write_day(place, options)
    before = spend(read_ledger(place, options=options))
    seen = []
    retire = LedgerFiles.retire

    def read_first(self, day, parts):
        seen.append(read_ledger(place, options=options))  # both copies are there now
        retire(self, day, parts)

    monkeypatch.setattr(LedgerFiles, "retire", read_first)
    (day,) = compact(place, TODAY, options)
    assert (day.parts_before, day.rows) == (4, written)
    assert spend(seen[0]) == before and spend(read_ledger(place, options=options)) == before
    assert day_keys(s3, bucket) == ["run=compacted/part-00000.parquet"]


def test_two_sweeps_racing_lose_and_double_nothing(ledger, s3, bucket, monkeypatch):
    place, options = ledger
    write_day(place, options)
    before = spend(read_ledger(place, options=options))
    # the other sweep runs between this one's put and its deletes: it merges this one's
    # compacted part with the old parts and deletes them all
    other = other_sweep_inside(monkeypatch, "retire", place, options)
    assert len(compact(place, TODAY, options)) == 1
    assert [d.parts_before for d in other[0]] == [5]
    assert day_keys(s3, bucket) == ["run=compacted/part-00001.parquet"]
    assert spend(read_ledger(place, options=options)) == before

    monkeypatch.undo()
    write_day(place, options)  # the same rows again, in new parts of r1 and r2
    # the other sweep runs between this one's listing and its reads: this one skips the day
    other = other_sweep_inside(monkeypatch, "read_table", place, options)
    assert compact(place, TODAY, options) == []
    assert [d.parts_before for d in other[0]] == [5]
    assert len(day_keys(s3, bucket)) == 1
    assert spend(read_ledger(place, options=options)) == before


def test_a_sweep_killed_before_its_deletes_leaves_every_row_counted_once(ledger, s3,
                                                                          bucket, monkeypatch):
    place, options = ledger
    write_day(place, options)
    before = spend(read_ledger(place, options=options))

    def killed(self, day, parts):
        raise KeyboardInterrupt  # stopped as a SIGKILL would stop it: the compacted part is put

    monkeypatch.setattr(LedgerFiles, "retire", killed)
    with pytest.raises(KeyboardInterrupt):
        compact(place, TODAY, options)
    assert len(day_keys(s3, bucket)) == 5
    assert spend(read_ledger(place, options=options)) == before
    monkeypatch.undo()
    (day,) = compact(place, TODAY, options)
    assert day.parts_before == 5 and len(day_keys(s3, bucket)) == 1
    assert spend(read_ledger(place, options=options)) == before


def test_the_reports_table_over_the_bucket_equals_the_folders(tmp_path, ledger, monkeypatch):
    """The analytics file built from the bucket holds what one built from a folder of the
    same parts holds; a second build reads nothing; compaction there changes nothing."""
    failures = pa.table(charge_rows(n=2, provider="kling", model="kling-v3", tier="standard",
                                    kind="fail", charge="failed_generation", cost="0.028",
                                    run="r3"), schema=LEDGER_SCHEMA)
    for place, options in ((str(tmp_path / "ledger"), None), ledger):
        write_day(place, options)
        LedgerWriter(place, "r3", options).write(date(2026, 11, 2), failures)
    folder, bucket = tmp_path / "folder.duckdb", tmp_path / "bucket.duckdb"
    db.build(folder, str(tmp_path / "ledger"))
    db.build(bucket, *ledger)
    assert views(bucket) == views(folder)
    (kling,) = views(bucket)["unit_costs"]
    assert kling[3:5] == (Decimal("1.176"), 8)  # 8 clips and 2 failures; 8 accepted

    loaded = []
    load = db._load
    monkeypatch.setattr(db, "_load", lambda con, paths: loaded.append(paths) or load(con, paths))
    db.build(bucket, *ledger)
    assert loaded == []  # nothing new: nothing read
    compact(ledger[0], date(2026, 11, 3), ledger[1])
    db.build(bucket, *ledger)
    assert views(bucket) == views(folder) and len(loaded) == 1


def test_a_garbage_part_in_the_bucket_is_skipped_and_reported(tmp_path, ledger, s3, bucket):
    place, options = ledger
    write_day(place, options)
    before = spend(read_ledger(place, options=options))
    bad = f"{place}/date=2026-11-30/run=garbage/part-00000.parquet"
    s3.client.put_object(Bucket=bucket, Key=bad.removeprefix(f"s3://{bucket}/"),
                         Body=b"PAR1 this is not parquet at all")
    assert spend(read_ledger(place, options=options)) == before
    assert db.build(tmp_path / "a.duckdb", place, options) == [bad]
