"""report: cost and latency analytics over the ledger — tables, projection, advice, budget;
with no ledger yet, the projection for the catalog."""

import argparse
import json
import sys

from cli.context import load_context, output_path, positive_amount
from cli.errors import UserError
from tasks.reporting import make_report, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--period", default="month", help="month | all | Nd | YYYY-MM")
    parser.add_argument("--budget", help="monthly budget in USD, for the projection")
    parser.add_argument("--html", help="write the self-contained HTML report here")


def run(args: argparse.Namespace) -> int:
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
    b = report.budget
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{report.advice.advice}")
    print(f"month to date ({b.month}): ${b.spent_usd:,.2f}, projected ${b.projected_usd:,.2f}"
          + (f" of ${b.budget_usd:,.2f}" + (" — OVER BUDGET" if b.over_budget else "")
             if b.budget_usd else ""))
    for row in report.tables["unit_costs"]:
        per_second = row["cost_per_delivered_second"]
        print(f"  {row['model']:<13} {row['tier']:<10} ${float(row['cost_usd']):>10,.2f}"
              f"  {row['accepted_clips']:>6} clips"
              + (f"  ${float(per_second):.4f}/s" if per_second else ""))
    print(f"report: {files.html}")
    return 0
