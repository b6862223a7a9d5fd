"""The analytics file kept up to date part by part: each part loaded once, a charge written
twice counted once whenever its copy arrives, compaction changing nothing, an older file
rebuilt — and every view as a build from scratch has it."""

from datetime import date, timedelta
from decimal import Decimal

import duckdb

from analytics import db
from analytics.synthetic import charge_rows, clip_rows, write
from tasks.sweeping import compact

KLING = dict(provider="kling", model="kling-v3", tier="standard", seconds_asked=5,
             seconds_billed=5, cost="0.14")


def views(database) -> dict[str, list]:
    with duckdb.connect(str(database), read_only=True) as con:
        return {name: con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
                for name in (*db.VIEW_NAMES, "ledger", "clip_rollup")}


def test_a_build_loads_only_the_parts_it_has_not_seen(tmp_path, monkeypatch):
    ledger, database = tmp_path / "ledger", tmp_path / "a.duckdb"
    write(ledger, clip_rows(n=10, run="first", **KLING))
    db.build(database, str(ledger))
    write(ledger, clip_rows(n=5, offset=10, run="second", **KLING),
          charge_rows(n=2, provider="kling", model="kling-v3", tier="standard", kind="fail",
                      charge="failed_generation", cost="0.028", run="second"))
    loaded = []
    load = db._load
    monkeypatch.setattr(db, "_load", lambda con, paths: loaded.append(paths) or load(con, paths))
    db.build(database, str(ledger))
    db.build(database, str(ledger))  # nothing new: nothing read
    assert len(loaded) == 1 and all("run=second" in p for p in loaded[0])
    monkeypatch.undo()
    db.build(tmp_path / "fresh.duckdb", str(ledger))
    assert views(database) == views(tmp_path / "fresh.duckdb")
    (kling,) = views(database)["unit_costs"]
    assert kling[3:5] == (Decimal("2.156"), 15)  # 15 clips and 2 failures; 15 accepted


def test_a_charge_written_twice_counts_once_and_keeps_its_first_time(tmp_path):
    ledger, database = tmp_path / "ledger", tmp_path / "a.duckdb"
    rows = clip_rows(n=3, run="first", **KLING)
    write(ledger, rows)
    db.build(database, str(ledger))
    again = {**rows, "flow_run_id": ["again"] * len(rows["flow_run_id"]),
             "event_time": [t - timedelta(seconds=1) for t in rows["event_time"]]}
    write(ledger, again)
    db.build(database, str(ledger))
    with duckdb.connect(str(database), read_only=True) as con:
        count, total, first = con.execute(
            "SELECT count(*), sum(cost_usd), min(event_time) FROM ledger").fetchone()
    assert (count, total) == (9, Decimal("0.42"))
    assert first == min(again["event_time"])  # the earliest copy, as one build would keep
    db.build(tmp_path / "fresh.duckdb", str(ledger))
    assert views(database) == views(tmp_path / "fresh.duckdb")


def test_compaction_changes_nothing_and_the_compacted_parts_are_forgotten(tmp_path):
    ledger, database = tmp_path / "ledger", tmp_path / "a.duckdb"
    write(ledger, clip_rows(n=4, run="r1", **KLING), clip_rows(n=4, offset=4, run="r2",
                                                               **KLING))
    db.build(database, str(ledger))
    before = views(database)
    (folder,) = ledger.glob("date=*")
    closed = date.fromisoformat(folder.name.removeprefix("date="))
    (day,) = compact(ledger, today=closed + timedelta(days=1))
    assert day.parts_before == 2
    db.build(database, str(ledger))
    assert views(database) == before
    with duckdb.connect(str(database), read_only=True) as con:
        (paths,) = con.execute("SELECT list(path) FROM loaded_parts").fetchone()
    assert len(paths) == 1 and "run=compacted" in paths[0]


def test_a_file_of_another_version_is_rebuilt_from_the_parts(tmp_path):
    ledger, database = tmp_path / "ledger", tmp_path / "a.duckdb"
    write(ledger, clip_rows(n=2, run="first", **KLING))
    with duckdb.connect(str(database)) as con:  # the first wave's shape: views only
        con.execute("CREATE VIEW ledger AS SELECT 1 AS x")
    db.build(database, str(ledger))
    with duckdb.connect(str(database), read_only=True) as con:
        assert con.execute("SELECT sum(cost_usd) FROM ledger").fetchone()[0] == Decimal("0.28")



def test_a_build_waits_for_another_process_holding_the_file(tmp_path):
    import subprocess
    import sys

    ledger, database = tmp_path / "ledger", tmp_path / "a.duckdb"
    write(ledger, clip_rows(n=2, run="first", **KLING))
    db.build(database, str(ledger))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(1.5)", str(database)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    write(ledger, clip_rows(n=1, offset=2, run="second", **KLING))
    db.build(database, str(ledger))  # raised "Could not set lock on file" before
    holder.wait()
    holder.stdout.close()
    with db.connect(database, str(ledger)) as con:
        assert con.execute("SELECT sum(cost_usd) FROM ledger").fetchone()[0] == Decimal("0.42")


def test_the_per_clip_roll_up_after_updates_is_what_a_cold_build_makes(tmp_path):
    """Parts arriving one by one — a clip's later rows, a copy of an earlier charge under an
    earlier time and another clip id, stand-alone charges — leave `clips` as one build of
    every part makes it, and the clips no new row touches as they were."""
    ledger, database = tmp_path / "ledger", tmp_path / "a.duckdb"
    first = clip_rows(n=6, run="first", **KLING)
    write(ledger, first)
    db.build(database, str(ledger))
    with duckdb.connect(str(database), read_only=True) as con:
        untouched = con.execute("SELECT * FROM clips WHERE clip_id = ?",
                                [first["clip_id"][-1]]).fetchall()
    rejection = {**{k: v[:1] for k, v in first.items()}, "event_id": ["late-rejection"],
                 "event_kind": ["rejection"], "inspection_outcome": ["rejected_by_reviewer"],
                 "flow_run_id": ["second"], "event_time": [first["event_time"][0]
                                                          + timedelta(hours=1)]}
    write(ledger, rejection, clip_rows(n=2, offset=6, run="second", **KLING))
    db.build(database, str(ledger))  # no copy replaced: the new rows' roll-ups merged in
    db.build(tmp_path / "second.duckdb", str(ledger))
    assert views(database) == views(tmp_path / "second.duckdb")
    moved = {k: v[4:5] for k, v in first.items()}  # charge of clip 1, copied under clip 0
    moved.update(clip_id=[first["clip_id"][0]], flow_run_id=["third"],
                 event_time=[moved["event_time"][0] - timedelta(minutes=5)])
    storage = charge_rows(n=2, provider="kling", model="kling-v3", tier="standard",
                          kind="storage", charge="storage", cost="0.012", run="third")
    write(ledger, moved, storage)
    db.build(database, str(ledger))  # a copy replaced: its clips rolled up again
    db.build(tmp_path / "fresh.duckdb", str(ledger))
    assert views(database) == views(tmp_path / "fresh.duckdb")
    with duckdb.connect(str(database), read_only=True) as con:
        clips = {clip: (outcome, cost) for clip, outcome, cost in con.execute(
            "SELECT clip_id, outcome, cost_usd FROM clips").fetchall()}
        assert con.execute("SELECT * FROM clips WHERE clip_id = ?",
                           [first["clip_id"][-1]]).fetchall() == untouched
    assert len(clips) == 10  # 8 clips and the 2 storage charges
    assert clips[first["clip_id"][0]] == ("rejected_by_reviewer", Decimal("0.28"))
    assert clips[first["clip_id"][3]] == ("ok", Decimal("0"))  # its charge moved to clip 0
    assert clips[storage["clip_id"][0]] == (None, Decimal("0.012"))
