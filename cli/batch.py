"""batch: every request of a manifest (CSV, JSONL or Parquet), each paid for once, within a
budget; rerun the same manifest to finish what is left."""

import argparse
from decimal import Decimal

from cli.context import count, load_context, positive_amount, require
from cli.generate import run_flow
from cli.preflight import chunk_deployment, manifest_rows
from cli.progress import add_quiet, showing
from models import usd_text
from tasks.manifest import read_manifest

HELP_EXAMPLES = """\
  reelflow batch examples/requests.csv --budget 25
  reelflow batch examples/requests.jsonl --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="a .csv, .jsonl or .parquet file of requests")
    parser.add_argument("--budget", help="USD the batch may spend in all, across reruns")
    parser.add_argument("--fan-out", default="tasks",
                        help="tasks (one run, async tasks) | deployments (chunks as runs of "
                        "run-batch/chunk on the Prefect server at PREFECT_API_URL)")
    parser.add_argument("--chunk-size", default="25", help="requests per chunk run")
    add_quiet(parser)
    parser.add_argument("--absolute-images", action="store_true",
                        help="let rows name images by absolute path (otherwise image paths "
                        "stay inside the manifest's folder)")


def run(args: argparse.Namespace) -> int:
    budget = float(positive_amount(args.budget, "budget", "25 or 12.50")) \
        if args.budget is not None else None
    require(args.fan_out in ("tasks", "deployments"), "fan_out",
            f"{args.fan_out!r} is not a fan-out", ["tasks", "deployments"])
    chunk_size = count(args.chunk_size, "chunk_size", "requests")
    # every row checked, and planned, before the flow starts
    manifest = read_manifest(args.manifest, absolute_images=args.absolute_images)
    manifest_rows(manifest)
    if args.fan_out == "deployments":
        chunk_deployment()
    from flows.batch import run_batch
    from models.batch import BatchRequest

    batch = BatchRequest(manifest=manifest.path, budget_usd=budget, fan_out=args.fan_out,
                         chunk_size=chunk_size, absolute_images=args.absolute_images)
    clips = [item.request.clip_id for item in manifest.unique()]
    result, code = run_flow(args, run_batch(batch), showing(
        args, load_context().settings.home_path / "journal", clips, batch=True,
        budget=Decimal(str(budget)) if budget is not None else None))
    if code:
        return code
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"batch {result.batch_id}: {result.done} done, {result.already_done} already "
              f"done, {result.failed} failed, {result.left} left of {result.unique} requests "
              f"({result.rows} rows); spent {usd_text(result.spent_usd)} of an estimated "
              f"{usd_text(result.estimated_usd)}")
        for item in result.items:
            if item.status == "left":
                print(f"  left: row {item.row} ({item.clip_id[:12]}, est. "
                      f"{usd_text(item.estimate_usd)})")
    return 0
