"""The router's cost per decision, against validating the request alone (the floor every
caller pays anyway). Ends with one line of JSON."""

import json
import time
from datetime import UTC, datetime

from models import ClipRequest
from providers.catalog import load_catalog
from providers.router import parse_subscriptions, plan
from settings import load_settings

REQUEST = {"prompt": "Aerial shot of a coastal city at golden hour", "duration": 30,
           "resolution": "1080p"}


def main(rounds: int = 2000) -> None:
    catalog = load_catalog()
    endpoints = load_settings(_env_file=None).endpoints()
    subscriptions = parse_subscriptions(None, catalog)
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    start = time.perf_counter()
    for _ in range(rounds):
        ClipRequest.model_validate(REQUEST)
    floor = (time.perf_counter() - start) / rounds
    request = ClipRequest.model_validate(REQUEST)
    start = time.perf_counter()
    for _ in range(rounds):
        plan(request, catalog, now=now, subscriptions=subscriptions, endpoints=endpoints,
             volume=1000)
    ours = (time.perf_counter() - start) / rounds
    print("router: milliseconds per decision (30 s clip, 7 tiers, with volume)")
    print(f"  plan {ours * 1e3:7.3f} ms  request validation {floor * 1e3:7.3f} ms  "
          f"ratio {ours / floor:6.1f}x")
    print(json.dumps({"router": {"plan_ms": round(ours * 1e3, 3),
                                 "validation_ms": round(floor * 1e3, 3),
                                 "ratio": round(ours / floor, 2)}}, sort_keys=True))


if __name__ == "__main__":
    main()
