"""The proof of value (issue 23): a month of requests (bench/workload.py) through reelflow and
through the pipeline a team would write without it (bench/naive.py), billed side by side.

One sandbox in its seed-default world (failures, flash frames, latency spread; rendering shared
by size so a month fits on two cores), time-scaled; each pipeline under its own account — the
naive pipeline on its own Kling key, reelflow on its keys for every protocol. reelflow runs
first, then the naive pipeline, so neither slows the other's clock-bound waits. Every amount is
read from the sandbox's usage log (`/_admin/usage`), per account; bench/cost_bill.py traces each
row to a step and a source of spend. Delivered seconds count each accepted deliverable at its
length (an edit's version at its full length). A lost clip is a deliverable of a request the
policy allows that was not delivered accepted.

`python -m bench cost [--clips 2000] [--seed 0] [--time-scale 0.02] [--requeue-rate R]
[--downgrade-rate R] [--json PATH]`; the last line printed is one JSON object.
"""

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from bench import cost_bill
from bench.cost_runs import reelflow_tier, run_naive, run_reelflow
from bench.naive import Account
from bench.workload import Request, draw_photos, month
from sandbox.knobs import load_prices
from sandbox.service import account_of
from tests.sandbox_process import start_sandbox

SECRET = "-secret-0123456789abcdef0123456789abcdef"
REELFLOW_KEYS = {"kling": "reelflow-cost-kling", "openai": "reelflow-cost-openai",
                 "fal": "reelflow-cost-fal", "atlascloud": "reelflow-cost-atlas"}
NAIVE_KEY = "naive-cost-kling"


@contextmanager
def _environ(values: dict[str, str]):
    """os.environ with `values` for the block, restored after (a test runs it in-process)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})


def _reelflow_env(home: Path, url: str, time_scale: float, tier: str) -> dict[str, str]:
    return {"REELFLOW_HOME": str(home), "REELFLOW_SANDBOX": url,
            "REELFLOW_SANDBOX_TIME_SCALE": str(time_scale),
            "REELFLOW_SUBSCRIPTIONS": f"kling:{tier}",
            "KLING_ACCESS_KEY": REELFLOW_KEYS["kling"],
            "KLING_SECRET_KEY": REELFLOW_KEYS["kling"] + SECRET,
            "OPENAI_API_KEY": REELFLOW_KEYS["openai"], "FAL_KEY": REELFLOW_KEYS["fal"],
            "ATLASCLOUD_API_KEY": REELFLOW_KEYS["atlascloud"]}


def _accounts() -> tuple[set[str], set[str]]:
    """The sandbox's account names of reelflow's keys and of the naive pipeline's."""
    ours = {account_of(REELFLOW_KEYS["openai"])} | {
        account_of(f"{protocol}:{REELFLOW_KEYS[protocol]}")
        for protocol in ("kling", "fal", "atlascloud")}
    return ours, {account_of(f"kling:{NAIVE_KEY}")}


def _delivered(requests: list[Request], tags: set[str]) -> tuple[int, int]:
    """(accepted seconds, deliverables lost) — refused prompts are not deliverable."""
    seconds = lost = 0
    for request in requests:
        for step, length in enumerate(request.lengths()):
            if request.step_tag(step) in tags:
                seconds += length
            elif request.kind != "refused":
                lost += 1
    return seconds, lost


def measure(clips: int, seed: int, time_scale: float, tmp: Path,
            kling: dict[str, float] | None = None) -> dict:
    """`kling`: knobs of Kling's world changed from the seed's defaults (a re-queue or a
    downgrade rate, which the seed gives no figure for)."""
    requests = month(clips, seed)
    photos = tmp / "photos"
    draw_photos(requests, photos, seed)
    advice = reelflow_tier(requests)
    tiers = {REELFLOW_KEYS["kling"]: advice.recommended, NAIVE_KEY: "standard"}
    server = start_sandbox(tmp / "sandbox", "--shared-render", "--seed", str(seed),
                           time_scale=time_scale)
    try:
        server.knobs(kling_keys={key: {"secret": key + SECRET, "tier": tier}
                                 for key, tier in tiers.items()},
                     kling=kling or {})
        started = time.perf_counter()
        with _environ(_reelflow_env(tmp / "home", server.url, time_scale,
                                    advice.recommended)):
            ours_tags = run_reelflow(requests, photos, tmp / "manifests")
            from settings import load_settings
            from storage.ledger import read_ledger

            settings = load_settings()  # the ledger this run wrote (the home's by default)
            ledger_usd = sum((Decimal(str(r["cost_usd"])) for r in read_ledger(
                settings.ledger_place, options=settings.ledger_options)), Decimal(0))
        reelflow_s = time.perf_counter() - started
        started = time.perf_counter()
        naive_tags = run_naive(requests, photos, Account(
            base_url=server.url + "/kling", access_key=NAIVE_KEY, secret_key=NAIVE_KEY + SECRET,
            time_scale=time_scale, folder=tmp / "naive"))
        naive_s = time.perf_counter() - started
        rows = server.usage()
        prompts = {job["id"]: job["prompt"] for job in server.jobs()}
    finally:
        server.stop()
    return report(requests, rows, prompts, ours_tags, naive_tags, {
        "reelflow_tier": advice.recommended, "tier_advice": advice.says(),
        "naive_tier": "standard", "clips": clips, "seed": seed, "time_scale": time_scale,
        "kling_world": kling or {},
        "reelflow_wall_s": round(reelflow_s, 1), "naive_wall_s": round(naive_s, 1),
        "reelflow_ledger_usd": cost_bill.cents(ledger_usd)})  # == its metered bill


def report(requests: list[Request], rows: list[dict], prompts: dict[str, str],
           ours_tags: set[str], naive_tags: set[str], extra: dict) -> dict:
    by_id = {r.id: r for r in requests}
    ours, theirs = _accounts()
    ours_rows = [r for r in rows if r["account"] in ours]
    naive_rows = [r for r in rows if r["account"] in theirs]
    ours_side = cost_bill.side(ours_rows, prompts, by_id)
    naive_side = cost_bill.side(naive_rows, prompts, by_id)
    metered = {"reelflow": ours_side.usd, "naive": naive_side.usd}
    # each Kling key's month: its tier's minimum where its usage falls short (the gateways
    # and Sora API have none)
    kling = load_prices()["kling"].tiers
    minimums = {
        "reelflow": cost_bill.with_minimum(ours_side, [
            r for r in ours_rows if r["account"] == account_of(f"kling:{REELFLOW_KEYS['kling']}")],
            Decimal(str(kling[extra.get("reelflow_tier", "standard")].monthly_minimum_usd))),
        "naive": cost_bill.with_minimum(naive_side, naive_rows, Decimal(str(
            kling[extra.get("naive_tier", "standard")].monthly_minimum_usd)))}
    bill = sum((Decimal(r["usd"]) for r in rows), Decimal(0)) + sum(minimums.values())
    saved = cost_bill.savings(ours_side, naive_side)
    (ours_s, ours_lost), (naive_s, naive_lost) = (_delivered(requests, ours_tags),
                                                   _delivered(requests, naive_tags))
    cents = cost_bill.cents
    return {
        **extra, "mix": dict(Counter(r.kind for r in requests)),
        "extensions": sum(len(r.edits) for r in requests),
        "ratio": round(float(ours_side.usd / naive_side.usd), 4) if naive_side.usd else None,
        "ratio_per_delivered_s": round(float((ours_side.usd / ours_s) / (
            naive_side.usd / naive_s)), 4) if ours_s and naive_s and naive_side.usd else None,
        "reelflow_usd": cents(ours_side.usd), "naive_usd": cents(naive_side.usd),
        "metered_usd": {side: cents(usd) for side, usd in metered.items()},
        "minimums_usd": {side: cents(usd) for side, usd in minimums.items()},
        "bill_usd": cents(bill), "other_usd": cents(bill - ours_side.usd - naive_side.usd),
        "delivered_s": {"reelflow": ours_s, "naive": naive_s},
        "billed_s": {"reelflow": float(ours_side.billed_s), "naive": float(naive_side.billed_s)},
        "double_charges": {"reelflow": ours_side.double_charges,
                           "naive": naive_side.double_charges},
        "lost_clips": {"reelflow": ours_lost, "naive": naive_lost},
        "usage_rows": {"reelflow": ours_side.rows, "naive": naive_side.rows},
        "exact_usd": {"reelflow": str(ours_side.usd), "naive": str(naive_side.usd),
                      "bill": str(bill)},
        "untraced_usd": {"reelflow": cents(ours_side.by_source.get("untraced", Decimal(0))),
                         "naive": cents(naive_side.by_source.get("untraced", Decimal(0)))},
        "savings_usd": {source: cents(value) for source, value in saved.items()},
        "savings_exact_usd": {source: str(value) for source, value in saved.items()},
        "difference_usd": cents(naive_side.usd - ours_side.usd),
        "difference_exact_usd": str(naive_side.usd - ours_side.usd),
    }


def show(r: dict) -> None:
    mix = ", ".join(f"{n} {kind}" for kind, n in r["mix"].items())
    world = ", ".join(f"{k} {v}" for k, v in r["kling_world"].items()) or "seed-default"
    print(f"cost: reelflow's Kling key on {r['reelflow_tier']}, the naive one on "
          f"{r['naive_tier']} ({r['tier_advice']})")
    print(f"cost: {r['clips']} requests of a month (seed {r['seed']}: {mix}; "
          f"{r['extensions']} edits), sandbox world {world}, time_scale {r['time_scale']}")
    print(f"  {'':28}{'reelflow':>12}{'naive':>12}")
    lines = [("spend (USD)", r["reelflow_usd"], r["naive_usd"]),
             ("billed seconds", r["billed_s"]["reelflow"], r["billed_s"]["naive"]),
             ("delivered accepted seconds", r["delivered_s"]["reelflow"],
              r["delivered_s"]["naive"]),
             ("deliverables lost", r["lost_clips"]["reelflow"], r["lost_clips"]["naive"]),
             ("double charges", r["double_charges"]["reelflow"],
              r["double_charges"]["naive"]),
             ("usage rows", r["usage_rows"]["reelflow"], r["usage_rows"]["naive"]),
             ("wall seconds", r["reelflow_wall_s"], r["naive_wall_s"])]
    for name, ours, theirs in lines:
        print(f"  {name:28}{ours:>12}{theirs:>12}")
    per = [u / s if s else 0 for u, s in ((r["reelflow_usd"], r["delivered_s"]["reelflow"]),
                                          (r["naive_usd"], r["delivered_s"]["naive"]))]
    print(f"  {'USD per delivered second':28}{per[0]:>12.4f}{per[1]:>12.4f}")
    print(f"  ratio (reelflow / naive spend): {r['ratio']}   per delivered second: "
          f"{r['ratio_per_delivered_s']}   (goal <= 0.55)")
    print("  savings by source (naive minus reelflow, USD):")
    for source, usd in r["savings_usd"].items():
        print(f"    {source:36}{usd:>10.2f}")
    print(f"    {'= difference':36}{r['difference_usd']:>10.2f}")
    print(f"  monthly minimums beyond metered usage: reelflow "
          f"${r['minimums_usd']['reelflow']:.2f}, naive ${r['minimums_usd']['naive']:.2f}")
    print(f"  bill ${r['bill_usd']:.2f} = reelflow ${r['reelflow_usd']:.2f} + naive "
          f"${r['naive_usd']:.2f} + other accounts ${r['other_usd']:.2f}; reelflow's own "
          f"ledger ${r['reelflow_ledger_usd']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=0.02,
                        help="the sandbox's speed: 0.02 = a 5 s 1080p clip in ~0.8 s")
    parser.add_argument("--requeue-rate", type=float, default=0.0,
                        help="Kling jobs put back in the queue (billed again); the seed: none")
    parser.add_argument("--downgrade-rate", type=float, default=0.0,
                        help="Kling clips silently downgraded under load; the seed: none")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    kling = {name: rate for name, rate in (("requeue_rate", args.requeue_rate),
                                           ("downgrade_rate", args.downgrade_rate)) if rate}
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    if "PREFECT_API_URL" not in os.environ:  # started before the clock, as the other benches
        from prefect.server.api.server import SubprocessASGIServer

        SubprocessASGIServer().start()
    with tempfile.TemporaryDirectory() as tmp:
        r = measure(args.clips, args.seed, args.time_scale, Path(tmp), kling)
    show(r)
    if args.json:
        args.json.write_text(json.dumps(r, indent=2, sort_keys=True), encoding="utf-8")
    print(json.dumps(r, sort_keys=True))


if __name__ == "__main__":
    main()
