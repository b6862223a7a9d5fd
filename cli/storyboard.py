"""storyboard: scenes (a JSON file) into one clip — native multi-shot where the model has it,
else scene by scene with last-frame continuity, stitched."""

import argparse

from cli.generate import run_and_report
from cli.plan import add_request_arguments, request_from_args
from cli.preflight import planned
from cli.progress import add_quiet

HELP_EXAMPLES = """\
  reelflow storyboard examples/lighthouse-storyboard.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_request_arguments(parser)
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    args.mode = args.mode or "storyboard"
    request = request_from_args(args)
    planned(request)  # a mistake exits 2 here, before a Prefect server starts
    from flows.storyboard import generate_storyboard

    return run_and_report(args, generate_storyboard(request), request.clip_id)
