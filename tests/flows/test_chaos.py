"""Chaos: a batch across every protocol with fault knobs high, its worker SIGKILLed every 3–6 s
and rerun until it finishes; afterwards the sandbox's own job list and bill agree with the
journal and ledger: nothing paid twice, no job shared by two clips, no paid clip lost, ledger ==
bill job by job (bench/soak.py does the work; `python -m bench soak` is the big version)."""

import json

import pytest
from prefect.settings import PREFECT_API_URL

from bench.soak import FaultPlan, Mix, soak

pytestmark = pytest.mark.slow
NO_LOOKUP = {"atlascloud"}


def test_kills_and_faults_pay_nothing_twice(tmp_path, prefect_server):
    # AtlasCloud has no lookup after an ambiguous submit: a reset there leaves the clip unknown
    # by protocol. OpenAI's video object says nothing of a re-queue (no field for it), so a
    # Sora re-queue no poll saw is found only by reconciling with the provider's costs.
    plan = FaultPlan(failure_multiplier=5.0, error_5xx_rate=0.05, reset_rate=0.1,
                     truncate_rate=0.05, requeue_rate=0.2,
                     per_world={"atlascloud": {"reset_rate": 0.0},
                                "openai": {"requeue_rate": 0.0}})
    result = soak(tmp_path / "soak", jobs=30, seed=7, time_scale=0.02, kill_every=(3.0, 6.0),
                  kill_rounds=6, max_rounds=14, round_timeout_s=90.0, faults=plan,
                  mix=Mix(sora=0.2, fal=0.2, wan=0.2, twins=0.1),
                  prefect_api_url=PREFECT_API_URL.value(), log=print)
    print(json.dumps(result.model_dump(exclude={"last_output", "knobs"}), indent=1))

    assert result.kills > 0
    # not asserted: that the last run exits 0 — a kill mid-submit on fal or AtlasCloud leaves
    # the clip `unknown` (no lookup there), so the batch stays incomplete (unknown_unpaid)
    assert result.double_charges == 0, result.double_charged
    assert result.shared_jobs == 0, result.shared
    # AtlasCloud has no lookup: a worker killed after its create left, before the answer came
    # back, leaves the clip `unknown` (reported, never re-sent) with a job it never learnt of —
    # the only loss allowed, and its job the only difference between ledger and bill
    unlearnt = [c for c in result.lost if c["state"] == "unknown"
                and c["protocol"] in NO_LOOKUP]
    assert [c for c in result.lost if c not in unlearnt] == [], result.lost
    unlearnt_jobs = {job for c in unlearnt for job in c["jobs"]}
    assert [d for d in result.per_job_differences if d["job_id"] not in unlearnt_jobs] == [], \
        result.per_job_differences
