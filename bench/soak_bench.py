"""The chaos soak as a benchmark: N requests across every protocol, fault knobs high, the worker
SIGKILLed every few seconds and rerun until done; then double charges, shared jobs, lost clips
and ledger − bill, read from the sandbox's own bill and job list (see bench/soak.py).

`python -m bench soak --jobs 2000 [--seed 0] [--time-scale 0.02] [--kill-every 3-6]
[--kill-rounds 8] [--max-rounds 20]`; the last line printed is one JSON object.
"""

import argparse
import json
import tempfile
from pathlib import Path

from bench.soak import FaultPlan, soak


def _range(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    low_s, high_s = float(low), float(high or low)
    if not 0 < low_s <= high_s:
        raise argparse.ArgumentTypeError(f"{text!r}: LOW-HIGH seconds, 0 < LOW <= HIGH")
    return low_s, high_s


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--kill-every", type=_range, default=(3.0, 6.0),
                        help="seconds LOW-HIGH between a run's start and its SIGKILL")
    parser.add_argument("--kill-rounds", type=int, default=8)
    parser.add_argument("--max-rounds", type=int, default=20)
    parser.add_argument("--round-timeout", type=float, default=1800.0)
    parser.add_argument("--failure-multiplier", type=float, default=5.0)
    parser.add_argument("--error-5xx-rate", type=float, default=0.05)
    parser.add_argument("--reset-rate", type=float, default=0.03)
    parser.add_argument("--truncate-rate", type=float, default=0.05)
    parser.add_argument("--requeue-rate", type=float, default=0.2)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp one)")
    args = parser.parse_args(argv)
    plan = FaultPlan(failure_multiplier=args.failure_multiplier,
                     error_5xx_rate=args.error_5xx_rate, reset_rate=args.reset_rate,
                     truncate_rate=args.truncate_rate, requeue_rate=args.requeue_rate)

    def run(workdir: Path):
        return soak(workdir, jobs=args.jobs, seed=args.seed, time_scale=args.time_scale,
                    kill_every=args.kill_every, kill_rounds=args.kill_rounds,
                    max_rounds=args.max_rounds, round_timeout_s=args.round_timeout,
                    faults=plan, log=print)

    if args.keep:
        result = run(Path(args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run(Path(tmp))
    print(f"soak of {result.jobs} requests ({result.clips} clips, {result.provider_jobs} "
          f"provider jobs, ${result.billed_usd:.2f} billed) in {result.seconds:.0f} s: "
          f"{result.kills} kills, {result.rounds} rounds, exits {result.exit_codes}; "
          f"{result.failed_retries} failed jobs retried")
    print(f"  faults injected: {result.faults}")
    print(f"  journal states: {result.states}")
    print(f"  double charges {result.double_charges}   shared jobs {result.shared_jobs}   "
          f"lost clips {result.lost_clips} {result.lost_by_protocol}   unknown clips "
          f"{result.unknown_clips} {result.unknown_by_protocol} ({result.unknown_unpaid} unpaid)")
    print(f"  ledger − bill ${result.ledger_minus_bill_usd:+.2f} over "
          f"{len(result.per_job_differences)} jobs; reconciled rows {result.reconciled_rows}")
    for diff in result.per_job_differences[:10]:
        print(f"    {diff}")
    for item in result.double_charged[:10]:
        print(f"    double charge: {item}")
    for item in result.lost[:10]:
        print(f"    lost: {item}")
    print(json.dumps(result.summary(), sort_keys=True))


if __name__ == "__main__":
    main()
