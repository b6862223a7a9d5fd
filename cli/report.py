"""report: cost and latency analytics over the ledger — the period's spend, clips and cost per
delivered second, the projection and advice, the budget; with no ledger yet, the projection for
the catalog. With --json every amount is a number, rounded as it is printed."""

import argparse
import json
import sys
from decimal import Decimal

from cli.context import load_context, output_path, positive_amount
from cli.errors import UserError
from models import usd_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", default="month", help="month | all | Nd | YYYY-MM")
    parser.add_argument("--budget", help="monthly budget in USD, for the projection")
    parser.add_argument("--html", help="write the self-contained HTML report here")


def run(args: argparse.Namespace) -> int:
    # Prefect, DuckDB and matplotlib: loaded for this command, not at every CLI start
    from analytics.report import budget_sentence, describe_period
    from analytics.tables import rate
    from tasks.reporting import make_report, write_report

    context = load_context()
    budget = positive_amount(args.budget, "budget", "500") if args.budget is not None \
        else None
    html_out = output_path(args.html, "html") if args.html else None
    try:
        report = make_report(context.settings, period=args.period, budget_usd=budget)
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
    print(f"report: {files.html}")
    return 0
