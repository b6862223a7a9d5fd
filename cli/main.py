"""`reelflow`: the entry point. Each command lives in its own module and takes --json."""

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from cli import (
    batch,
    cancel,
    capabilities,
    clips,
    crop,
    demo,
    extend,
    generate,
    journal,
    limits,
    plan,
    prices,
    prompt,
    relay,
    report,
    sandbox,
    show,
    storyboard,
)
from cli.errors import UserError, as_user_error, report_error
from tasks.explained import choose_tracebacks

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None],
                          Callable[[argparse.Namespace], int]]] = {
    "plan": (plan.add_arguments, plan.run),
    "prices": (prices.add_arguments, prices.run),
    "demo": (demo.add_arguments, demo.run),
    "sandbox": (sandbox.add_arguments, sandbox.run),
    "crop": (crop.add_arguments, crop.run),
    "prompt": (prompt.add_arguments, prompt.run),
    "generate": (generate.add_arguments, generate.run),
    "report": (report.add_arguments, report.run),
    "extend": (extend.add_arguments, extend.run),
    "storyboard": (storyboard.add_arguments, storyboard.run),
    "batch": (batch.add_arguments, batch.run),
    "clips": (clips.add_arguments, clips.run),
    "show": (show.add_arguments, show.run),
    "limits": (limits.add_arguments, limits.run),
    "capabilities": (capabilities.add_arguments, capabilities.run),
    "cancel": (cancel.add_arguments, cancel.run),
    "journal": (journal.add_arguments, journal.run),
    "relay": (relay.add_arguments, relay.run),
}


# No network here: Prefect's telemetry would log an error at every temporary server start.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UserError instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError("arguments", message)


def summary(doc: str) -> str:
    """A module docstring's first sentence, on one line (help lists end where a sentence
    ends, not where a line does)."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    head, _, _ = paragraph.partition(". ")
    return head.rstrip(".") + "."


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reelflow", description="Video clips from Kling, Sora, fal and "
                     "AtlasCloud, each paid for once, archived, inspected and in the ledger. "
                     "`reelflow COMMAND --help` for a command; every command takes --json.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (add_arguments, _) in COMMANDS.items():
        module = sys.modules[COMMANDS[name][1].__module__]
        examples = getattr(module, "HELP_EXAMPLES", "")
        command = sub.add_parser(name, help=summary(module.__doc__ or ""),
                                 description=module.__doc__,
                                 epilog=f"examples:\n{examples}" if examples else None,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("--debug", action="store_true",
                             help="show tracebacks of failures the CLI explains in one line")
        add_arguments(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in argv
    choose_tracebacks(quiet="--debug" not in argv)
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command][1](args)
    except Exception as err:
        user_error = as_user_error(err)
        if user_error is None:
            raise
        return report_error(user_error, as_json)


if __name__ == "__main__":
    sys.exit(main())
