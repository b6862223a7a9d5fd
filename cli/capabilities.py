"""capabilities: what this home's endpoints were found to refuse — capabilities the catalog
claims (Kling v3's video-extend, a 4K size) and prompts a provider's content policy refused —
when, and in the provider's words; `--forget` clears both, so the router offers those
capabilities again and sends those prompts to those providers again."""

import argparse
import json

from cli.context import load_context
from storage.capabilities import KIND as CAPABILITIES
from storage.capabilities import Capabilities
from storage.prompt_refusals import KIND as PROMPTS
from storage.prompt_refusals import RefusedPrompts

HELP_EXAMPLES = """\
  reelflow capabilities
  reelflow capabilities --prompts
  reelflow capabilities --forget
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prompts", action="store_true",
                        help="list the prompts a provider's content policy refused instead")
    parser.add_argument("--forget", action="store_true",
                        help="clear what was learned (after the provider adds the capability "
                             "or changes its content policy)")


def run(args: argparse.Namespace) -> int:
    journal = load_context().journal()  # what every worker learned is kept with it
    learned = Capabilities(journal.learned(CAPABILITIES))
    prompts = RefusedPrompts(journal.learned(PROMPTS))
    if args.forget:
        gone, words = learned.forget(), prompts.forget()
        print(json.dumps({"forgotten": gone, "prompts_forgotten": words}) if args.json
              else f"forgot {gone} refusal(s) and {words} refused prompt(s)")
        return 0
    if args.prompts:
        refused = prompts.refusals()
        if args.json:
            print(json.dumps([r.model_dump(mode="json") for r in refused], indent=2))
            return 0
        for p in refused:
            print(f"{p.provider:<11} {p.model:<15} {p.learned_at:%Y-%m-%d %H:%M} UTC  "
                  f"\"{p.excerpt}\"  {p.message}")
        if not refused:
            print("no prompt refused: every provider is offered every prompt")
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
