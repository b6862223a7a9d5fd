"""`python -m bench [name ...]`: run every benchmark (or the named ones) and print ratios.

Benchmarks that take arguments (`ARGS_BENCHES`) get the rest of the command line after their
name: `python -m bench soak --jobs 2000`. `BY_NAME_ONLY` benchmarks (capacity, cost, fleet,
webhooks: minutes long) run only when named."""

import sys

from bench import (
    batch_bench,
    capacity_bench,
    cost_bench,
    crop_bench,
    download_bench,
    fleet_bench,
    inspection_bench,
    orchestration_bench,
    polling_bench,
    report_bench,
    router_bench,
    sandbox_bench,
    soak_bench,
    webhooks_bench,
)

BENCHES = {
    "sandbox": sandbox_bench.main,
    "router": router_bench.main,
    "polling": polling_bench.main,
    "download": download_bench.main,
    "crop": crop_bench.main,
    "inspection": inspection_bench.main,
    "orchestration": orchestration_bench.main,
    "report": report_bench.main,
    "batch": batch_bench.main,
    "soak": soak_bench.main,
    "capacity": capacity_bench.main,
    "cost": cost_bench.main,
    "fleet": fleet_bench.main,
    "webhooks": webhooks_bench.main,
}
ARGS_BENCHES = {"soak", "capacity", "cost"}
# minutes at their default size: only by name, never in the default set
BY_NAME_ONLY = {"capacity", "cost", "fleet", "webhooks"}

argv = sys.argv[1:]
if not argv:  # every benchmark but BY_NAME_ONLY, the ones taking arguments with defaults
    for name, bench in BENCHES.items():
        if name in BY_NAME_ONLY:
            continue
        bench([]) if name in ARGS_BENCHES else bench()
    sys.exit()
while argv:
    name, argv = argv[0], argv[1:]
    if name not in BENCHES:
        sys.exit(f"unknown benchmark {name!r}; allowed: {', '.join(BENCHES)}")
    if name in ARGS_BENCHES:  # it takes the rest of the command line
        BENCHES[name](argv)
        break
    BENCHES[name]()
