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
  reelflow batch examples/requests.csv --fan-out deployments --wait suspend
"""
WAITS = ["poll", "suspend"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="a .csv, .jsonl or .parquet file of requests, or its "
                        "object-store URL (s3://bucket/prefix/batch.csv)")
    parser.add_argument("--budget", help="USD the batch may spend in all, across reruns")
    parser.add_argument("--fan-out", default="tasks",
                        help="tasks (one run, async tasks) | deployments (chunks as runs of "
                        "run-batch/chunk on the Prefect server at PREFECT_API_URL)")
    parser.add_argument("--chunk-size", default="25", help="requests per chunk run")
    parser.add_argument("--wait", default="poll", help="poll | suspend (with --fan-out "
                        "deployments: each chunk run waits with no process, resumed by the "
                        "relay once its jobs are back)")
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
    require(args.wait in WAITS, "wait", f"{args.wait!r} is not a way to wait", WAITS)
    # this process runs the batch's own run, which cannot suspend: its chunk runs can
    require(args.wait == "poll" or args.fan_out == "deployments", "wait", "suspend needs "
            "--fan-out deployments here (a local run cannot suspend; its chunk runs can)",
            ["poll"])
    # every row checked, and planned, before the flow starts
    settings = load_context().settings
    manifest = read_manifest(args.manifest, absolute_images=args.absolute_images,
                             options=settings.inputs_options)
    manifest_rows(manifest)
    if args.fan_out == "deployments":
        chunk_deployment()
    from flows.batch import run_batch
    from models.batch import BatchRequest

    batch = BatchRequest(manifest=manifest.path, budget_usd=budget, fan_out=args.fan_out,
                         chunk_size=chunk_size, absolute_images=args.absolute_images,
                         wait=args.wait)
    clips = [item.request.clip_id for item in manifest.unique()]
    result, code = run_flow(args, run_batch(batch), showing(
        args, settings.journal_place, clips, batch=True,
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
