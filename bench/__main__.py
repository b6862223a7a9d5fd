"""`python -m bench [name ...]`: run every benchmark (or the named ones) and print ratios."""

import sys

from bench import (
    batch_bench,
    crop_bench,
    download_bench,
    orchestration_bench,
    polling_bench,
    report_bench,
    router_bench,
    sandbox_bench,
)

BENCHES = {
    "sandbox": sandbox_bench.main,
    "router": router_bench.main,
    "polling": polling_bench.main,
    "download": download_bench.main,
    "crop": crop_bench.main,
    "orchestration": orchestration_bench.main,
    "report": report_bench.main,
    "batch": batch_bench.main,
}

names = sys.argv[1:] or list(BENCHES)
for name in names:
    if name not in BENCHES:
        sys.exit(f"unknown benchmark {name!r}; allowed: {', '.join(BENCHES)}")
    BENCHES[name]()
