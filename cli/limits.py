"""limits: `limits sync` creates or updates a Prefect global concurrency limit per provider
account (provider:<name>:<tier>) from the catalog; `limits show` lists them without writing."""

import argparse
import asyncio

from cli.context import load_context, require

HELP_EXAMPLES = """\
  reelflow limits sync
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", help="sync | show")


def run(args: argparse.Namespace) -> int:
    require(args.action in ("sync", "show"), "action", f"{args.action!r} is not an action",
            ["sync", "show"])
    from tasks.limits import LimitChange, catalog_limits, sync_limits  # Prefect: this command's

    catalog = load_context().catalog
    if args.action == "sync":
        changes = asyncio.run(sync_limits(catalog))
    else:
        changes = [LimitChange(name=name, limit=limit, action="in catalog")
                   for name, limit in sorted(catalog_limits(catalog).items())]
    if args.json:
        print("[" + ",".join(c.model_dump_json() for c in changes) + "]")
    else:
        for change in changes:
            print(f"{change.name:34} {change.limit:4d}  {change.action}")
    return 0
