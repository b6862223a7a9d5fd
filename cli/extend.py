"""extend: continue an archived clip by N seconds with its model's native extension."""

import argparse

from cli.context import load_context, require
from cli.generate import run_flow
from cli.preflight import archived_clip
from cli.progress import add_quiet, showing
from models import ClipRequest, usd_text

HELP_EXAMPLES = """\
  reelflow extend 3f2a9c0d5e7b --prompt "the boats leave" --seconds 10
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clip_id", help="the archived clip to continue (any unique prefix of "
                        "its id)")
    parser.add_argument("--prompt", required=True, help="what happens next")
    parser.add_argument("--seconds", required=True, help="seconds to add")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    require(args.clip_id.isalnum(), "clip_id", f"{args.clip_id!r} is not a clip id")
    clip_id = archived_clip(args.clip_id)  # before a Prefect server starts
    request = ClipRequest(mode="extend", source_clip=clip_id, prompt=args.prompt,
                          duration=args.seconds)  # validates seconds and prompt first
    from flows.extend import extend_clip

    result, code = run_flow(args, extend_clip(clip_id, request.prompt, request.seconds),
                            showing(args, load_context().settings.journal_place,
                                    [request.clip_id]))
    if code:
        return code
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"{result.path}\n  {result.model} {result.tier}, {usd_text(result.cost_usd)}, "
              f"{result.seconds_delivered:g} s (parent {args.clip_id[:12]})")
    return 0
