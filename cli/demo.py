"""demo: plan every example request in examples/ against the sandbox and print the decisions."""

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from cli.context import load_context, require
from cli.plan import make_plan, render
from models import ClipRequest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--examples", default=str(EXAMPLES), help="folder of request JSON files")


def run(args: argparse.Namespace) -> int:
    context = load_context()
    folder = Path(args.examples)
    files = sorted(folder.glob("*.json"))
    require(bool(files), "examples", f"no request files (*.json) in {folder}")
    now = datetime.now(UTC)
    decisions = []
    for path in files:
        request = ClipRequest.model_validate_json(path.read_text(encoding="utf-8"))
        decision = make_plan(context, request, None, None, now)
        decisions.append({"example": path.name, "plan": decision.model_dump(mode="json")})
        if not args.json:
            print(f"# {path.name}\n{render(request, decision)}\n")
    if args.json:
        print(json.dumps(decisions, indent=2))
    else:
        total = sum(d["plan"]["cost_usd"] for d in decisions)
        print(f"{len(decisions)} requests planned; nothing was paid. Generation comes with "
              f"generate_clip; these would cost ${total:,.2f} in all.")
    return 0
