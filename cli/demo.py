"""demo: generate a small mixed set of clips against the sandbox (or, with --plan-only, plan
every example request in examples/) and print where each clip is and what it cost."""

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from cli.context import load_context, require
from cli.plan import make_plan, render
from models import ClipRequest, usd_text

HELP_EXAMPLES = """\
  reelflow demo
  reelflow demo --plan-only
"""

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GENERATED = ("coastal-city.json", "sora-named.json", "harbour-from-photo.json",
             "wan-atlascloud.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", default=str(EXAMPLES), help="folder of request JSON files")
    parser.add_argument("--plan-only", action="store_true", help="plan every example, pay none")


def _requests(folder: Path, names: tuple[str, ...] | None) -> list[tuple[str, ClipRequest]]:
    files = sorted(folder.glob("*.json"))
    require(bool(files), "examples", f"no request files (*.json) in {folder}")
    chosen = [f for f in files if names is None or f.name in names]
    requests = []
    for path in chosen:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("image") and not Path(data["image"]).is_absolute():
            data["image"] = str(folder.parent / data["image"])
        requests.append((path.name, ClipRequest.model_validate(data)))
    return requests


def run(args: argparse.Namespace) -> int:
    context = load_context()
    folder = Path(args.examples)
    if args.plan_only:
        return _plan_all(context, folder, args.json)
    require(context.settings.sandbox != "off" and all(
        e.kind == "sandbox" for e in context.settings.endpoints().values()), "REELFLOW_SANDBOX",
        "the demo runs against the sandbox only; unset the providers' base URLs", ["auto"])
    from flows.generate import generate_clip

    started = time.monotonic()
    results = []
    for name, request in _requests(folder, GENERATED):
        result = asyncio.run(generate_clip(request))
        results.append({"example": name, **result.model_dump(mode="json")})
        if not args.json:
            print(f"# {name}: {result.model} {result.tier}, {usd_text(result.cost_usd)}, "
                  f"{result.seconds_delivered:g} s at {result.resolution_actual}\n  {result.path}"
                  + (f"\n  trimmed: {result.trimmed_path}" if result.trimmed_path else ""))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        total = sum(r["cost_usd"] for r in results)
        print(f"{len(results)} clips archived under {context.settings.home} in "
              f"{time.monotonic() - started:.0f} s; {usd_text(total)} on the sandbox's bill "
              "(a rerun pays nothing: each clip is already archived)\n"
              "the sandbox is still running for the next commands; `reelflow clips` lists "
              "the clips, `reelflow sandbox stop` stops it")
    return 0


def _plan_all(context, folder: Path, as_json: bool) -> int:
    now = datetime.now(UTC)
    decisions = []
    for name, request in _requests(folder, None):
        decision = make_plan(context, request, None, None, now)
        decisions.append({"example": name, "plan": decision.model_dump(mode="json")})
        if not as_json:
            print(f"# {name}\n{render(request, decision)}\n")
    if as_json:
        print(json.dumps(decisions, indent=2))
    else:
        total = sum(d["plan"]["cost_usd"] for d in decisions)
        print(f"{len(decisions)} requests planned; nothing was paid; these would cost "
              f"{usd_text(total)} in all.")
    return 0
