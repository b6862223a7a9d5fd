"""prices: the cost-at-scale table from the price book, minimums shown, not footnoted; then,
for each subscription key, which of its tiers pays at this calendar month's billed seconds so
far (the ledger's), as a recommendation: the key holds its plan."""

import argparse
import json
from datetime import UTC, datetime

from cli.context import load_context, positive_amount, require
from models import RESOLUTIONS, usd_text
from providers.pricebook import SEED_VOLUMES, TierAdvice, cost_at_scale
from providers.router import parse_subscriptions

HELP_EXAMPLES = """\
  reelflow prices --seconds 5 --resolution 1080p
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", default="5", help="clip length (default 5, as the seed)")
    parser.add_argument("--resolution", default="1080p", help=" | ".join(RESOLUTIONS))


def run(args: argparse.Namespace) -> int:
    context = load_context()
    require(args.resolution in RESOLUTIONS, "resolution", f"{args.resolution!r}",
            list(RESOLUTIONS))
    seconds = float(positive_amount(args.seconds, "seconds", "5", maximum=3600))
    rows = cost_at_scale(context.catalog, seconds, args.resolution, SEED_VOLUMES)
    if args.json:
        print(json.dumps([row.model_dump(mode="json") for row in rows], indent=2))
        return 0
    print(f"{seconds:g} s {args.resolution} clips a month: metered as the seed bills, the "
          "effective cost with the tier's minimum, and what the wire really bills")
    print(f"  {'model':<13} {'tier':<11} {'clips':>8} {'metered':>12} {'minimum':>11} "
          f"{'effective':>12}  {'wire-billed':>12}")
    for row in rows:
        note = " (price assumed)" if row.price_assumed else ""
        wire = usd_text(row.wire_effective_usd)
        print(f"  {row.model:<13} {row.tier:<11} {row.volume:>8,} "
              f"{usd_text(row.seed_metered_usd):>12} {usd_text(row.minimum_usd):>11} "
              f"{usd_text(row.effective_usd):>12}  {wire:>12} at {row.wire_billed_seconds} s{note}")
    for found in month_advice(context):
        print(found.says())
    return 0


def month_advice(context) -> list[TierAdvice]:
    """This month's tier advice for each subscription key that billed seconds."""
    from analytics.month_volume import advice_for, held_tiers, read_month

    now = datetime.now(UTC)
    held = held_tiers(parse_subscriptions(context.settings.subscriptions, context.catalog),
                      context.catalog)
    month = read_month(context.settings.ledger_place, context.settings.ledger_options, now)
    return advice_for(context.catalog, held, month, f"{now:%B %Y} so far, from the ledger")
