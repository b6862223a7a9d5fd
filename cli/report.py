"""report: cost and latency analytics over the ledger — the period's spend, clips and cost per
delivered second, the projection and advice, the budget; with no ledger yet, the projection for
the catalog; with --by KEY, the spend grouped by the value of that label (requests' --label
KEY=VALUE), "(none)" for charges without it. With --json every amount is a number, rounded as it
is printed."""

import argparse
import json
import sys
from decimal import Decimal

from cli.context import load_context, output_path, positive_amount, require
from cli.errors import UserError
from models import usd_text
from models.request import LABEL_KEY

HELP_EXAMPLES = """\
  reelflow report --period month --budget 500 --html /tmp/report.html
  reelflow report --by customer --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", default="month", help="month | all | Nd | YYYY-MM")
    parser.add_argument("--budget", help="monthly budget in USD, for the projection")
    parser.add_argument("--html", help="write the self-contained HTML report here")
    parser.add_argument("--by", metavar="LABEL", help="group spend by this label's value, "
                        "e.g. customer (requests are labelled with --label customer=acme)")


def run(args: argparse.Namespace) -> int:
    # Prefect, DuckDB and matplotlib: loaded for this command, not at every CLI start
    from analytics.report import budget_sentence, describe_period
    from analytics.tables import rate
    from tasks.reporting import make_report, write_report

    context = load_context()
    budget = positive_amount(args.budget, "budget", "500") if args.budget is not None \
        else None
    html_out = output_path(args.html, "html") if args.html else None
    require(args.by is None or bool(LABEL_KEY.fullmatch(args.by)), "by",
            f"{args.by!r} is not a label key", ["1-32 lowercase letters, digits, _ or -, "
                                                "e.g. customer"])
    try:
        report = make_report(context.settings, period=args.period, budget_usd=budget,
                             by=args.by)
    except ValueError as err:
        raise UserError("period", str(err).split(": ", 1)[-1],
                        ["month", "all", "Nd", "YYYY-MM"]) from None
    files = write_report(context.settings, report, html_out)
    if args.json:
        print(json.dumps({"report": report.model_dump(mode="json"), "files":
                          files.model_dump()}, indent=2, default=str))
        return 0
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    h = report.headline
    per_second = ("" if h.cost_per_delivered_second is None
                  else f", ${rate(h.cost_per_delivered_second)} per delivered second")
    b = report.budget
    used = (f", {h.budget_used:.0%} of the {usd_text(b.budget_usd)} budget for {b.month} used"
            if h.budget_used is not None else "")
    print(f"{describe_period(report)}: {usd_text(h.spent_usd)} spent, "
          f"{h.clips_delivered:,} clips delivered ({h.delivered_seconds:g} s){per_second}"
          f"{used}")
    print(report.advice.advice)
    print(budget_sentence(report.budget))
    for row in report.tables["unit_costs"]:
        per_second, cost = row["cost_per_delivered_second"], Decimal(row["cost_usd"] or 0)
        print(f"  {row['model']:<13} {row['tier']:<10} {usd_text(cost):>10}"
              f"  {row['accepted_clips']:>6} clips"
              + (f"  ${rate(per_second)}/s" if per_second else ""))
    _by_label(report)
    print(f"report: {files.html}")
    return 0


def _by_label(report) -> None:
    """The --by table, one line per value of the label (or the keys there are to group by)."""
    from analytics.tables import rate

    spend = report.by_label
    if spend is None:
        if report.label_keys:
            print(f"labels: {', '.join(report.label_keys)} (--by KEY groups spend by one)")
        return
    print(f"by {spend.label}:" + ("" if spend.label in report.label_keys else
                                  " no charge in the period carries this label"))
    for row in spend.rows:
        per_second = row["cost_per_delivered_second"]
        print(f"  {row['label_value']:<24} {usd_text(Decimal(row['cost_usd'] or 0)):>10}"
              f"  {row['clips_delivered']:>6} clips  {float(row['delivered_seconds']):g} s"
              + (f"  ${rate(per_second)}/s" if per_second else ""))
