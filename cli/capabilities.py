"""capabilities: what this home's endpoints were found to refuse that the catalog claims (Kling
v3's video-extend, a 4K size), when, and in the provider's words; `--forget` clears it so the
router offers those capabilities again."""

import argparse
import json

from cli.context import load_context
from storage.capabilities import Capabilities

HELP_EXAMPLES = """\
  reelflow capabilities
  reelflow capabilities --forget
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--forget", action="store_true",
                        help="clear what was learned (after the provider adds the capability)")


def run(args: argparse.Namespace) -> int:
    learned = Capabilities(load_context().settings.home_path / "capabilities")
    if args.forget:
        gone = learned.forget()
        print(json.dumps({"forgotten": gone}) if args.json else f"forgot {gone} refusal(s)")
        return 0
    refusals = learned.refusals()
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in refusals], indent=2))
        return 0
    for r in refusals:
        when = f"{r.learned_at:%Y-%m-%d %H:%M} UTC"
        print(f"{r.model:<15} {r.capability:<7} {r.kind} {r.base_url}  {when}  {r.message}")
    if not refusals:
        print("nothing refused: every capability the catalog claims is offered")
    return 0
