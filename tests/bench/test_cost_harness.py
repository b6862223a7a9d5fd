"""The cost benchmark's harness (issue 23): a few dozen clips through both pipelines on one
sandbox, and the bill read back — amounts per account adding up to the sandbox's bill to the
cent, every row traced to a request, the savings by source adding up to the difference. It
checks the harness, not the ratio: the month is a benchmark (`python -m bench cost`)."""

from decimal import Decimal

import pytest
from prefect.testing.utilities import prefect_test_harness

from bench import cost_bill
from bench.cost_bench import measure
from bench.cost_runs import reelflow_tier
from bench.workload import Request

# Prefect's clients outlive each asyncio.run of a flow, as in the flow tests
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.mark.slow
def test_both_pipelines_bill_to_the_cent_and_savings_add_up(tmp_path, prefect_server):
    r = measure(clips=30, seed=3, time_scale=0.02, tmp=tmp_path)

    assert r["mix"] == {"ugc": 12, "product": 8, "storyboard": 4, "edit": 4, "refused": 2}
    for pipeline in ("reelflow", "naive"):  # both finished and delivered
        assert r["usage_rows"][pipeline] > 0
        assert r["delivered_s"][pipeline] > 0
        assert r["untraced_usd"][pipeline] == 0
    exact = {name: Decimal(value) for name, value in r["exact_usd"].items()}
    assert exact["reelflow"] + exact["naive"] == exact["bill"]
    assert r["other_usd"] == 0
    # reelflow's ledger == its metered bill; the minimums are its tier's, not charges
    assert r["reelflow_ledger_usd"] == r["metered_usd"]["reelflow"]
    assert r["reelflow_usd"] == round(r["metered_usd"]["reelflow"]
                                      + r["minimums_usd"]["reelflow"], 2)
    assert r["reelflow_tier"] == "standard"  # 30 clips are far below Pro's minimum
    assert sum(Decimal(v) for v in r["savings_exact_usd"].values()) == Decimal(
        r["difference_exact_usd"])
    assert r["savings_usd"]["extension instead of regeneration"] > 0  # 4 edits regenerated


def test_reelflow_s_key_holds_the_tier_that_pays_at_the_month_s_billed_seconds():
    cheap = Request(id="r00001", kind="ugc", prompt="r00001s0 a cat", seconds=10,
                    resolution="1080p", aspect="9:16")
    refused = cheap.model_copy(update={"id": "r00002", "kind": "refused"})
    small = reelflow_tier([cheap, refused])
    assert (small.recommended, small.billed_seconds, small.clips) == ("standard", 10, 1)
    big = reelflow_tier([cheap.model_copy(update={"id": f"r{i:05d}"}) for i in range(1786)])
    assert big.billed_seconds == 17_860 and big.recommended == "pro"  # past 17,858 s


def test_a_month_short_of_its_tier_s_minimum_is_billed_up_to_it():
    side = cost_bill.side([_row(1, "a", "complete", 5, "0.110000")],
                          {"a": "r00001s0 a cat"}, {})
    assert cost_bill.with_minimum(side, [_row(1, "a", "complete", 5, "0.110000")],
                                  Decimal(500)) == Decimal("499.89")
    assert side.usd == 500 and side.by_source["monthly minimums"] == Decimal("499.89")
    naive = cost_bill.side([_row(1, "b", "complete", 5, "0.140000")], {}, {})
    assert cost_bill.with_minimum(naive, [], Decimal(0)) == 0
    saved = cost_bill.savings(side, naive)
    assert saved["monthly minimums"] == Decimal("-499.89")
    assert sum(saved.values()) == naive.usd - side.usd


def _row(seq: int, job: str, kind: str, seconds: float, usd: str) -> dict:
    return {"seq": seq, "at": float(seq), "job_id": job, "kind": kind, "seconds": seconds,
            "usd": usd}


def test_each_row_is_traced_to_its_source():
    edit = Request(id="r00001", kind="edit", prompt="r00001s0 a cat", seconds=5,
                   resolution="1080p", aspect="16:9", edits=["r00001s1 it jumps"])
    requests = {edit.id: edit}
    naive = cost_bill.side([
        _row(1, "a", "complete", 5, "0.140000"), _row(2, "b", "fail", 10, "0.056000"),
        _row(3, "c", "complete", 10, "0.280000"), _row(4, "d", "complete", 10, "0.280000"),
        _row(5, "e", "complete", 5, "0.140000")],
        {"a": "r00001s0 a cat", "b": "r00001s1 a cat, then it jumps",
         "c": "r00001s1 a cat, then it jumps", "d": "r00001s1 a cat, then it jumps",
         "e": "no tag here"}, requests)
    ours = cost_bill.side([_row(1, "x", "complete", 5, "0.140000"),
                           _row(2, "y", "complete", 5, "0.140000")],
                          {"x": "r00001s0 a cat", "y": "r00001s1 it jumps"}, requests)

    assert naive.double_charges == 1 and ours.double_charges == 0
    saved = cost_bill.savings(ours, naive)
    assert saved["extension instead of regeneration"] == Decimal("0.14")
    assert saved["failure charges"] == Decimal("0.056")
    assert saved["submits not repeated"] == Decimal("0.28")
    assert saved["untraced"] == Decimal("0.14")
    assert sum(saved.values()) == naive.usd - ours.usd
