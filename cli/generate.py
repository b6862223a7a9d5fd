"""generate: run generate_clip for one request (flags or a JSON file) and say where the clip is
and what it cost."""

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal
from typing import Any

import httpx
from pydantic import TypeAdapter

from cli.context import load_context, require
from cli.errors import UserError, one_line
from cli.plan import add_request_arguments, request_from_args
from cli.preflight import planned
from cli.progress import add_quiet, showing
from models import ClipRequest, usd_text
from tasks.explained import advised_failures

HELP_EXAMPLES = """\
  reelflow generate --prompt "A paper boat drifts" --duration 5
  reelflow generate examples/coastal-city.json --json
  reelflow generate --prompt "A paper boat drifts" --duration 5 --label customer=acme
  reelflow generate --prompt "A paper boat drifts" --duration 5 --wait suspend --json
"""
DEPLOYMENT = "generate-clip/on-demand"
WAITS = ["poll", "suspend"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_request_arguments(parser)
    add_quiet(parser)
    parser.add_argument("--wait", default="poll", help="poll: this process waits for the "
                        "clip; suspend: a run of the generate-clip deployment is started, "
                        "which waits with no process (PREFECT_API_URL, a relay)")


def run(args: argparse.Namespace) -> int:
    require(args.wait in WAITS, "wait", f"{args.wait!r} is not a way to wait", WAITS)
    request = request_from_args(args)
    planned(request)  # a mistake exits 2 here, before a Prefect server starts
    if args.wait == "suspend":
        return _started_suspended(args, request)
    from flows.generate import generate_clip

    return run_and_report(args, generate_clip(request), request.clip_id)


def _started_suspended(args: argparse.Namespace, request: ClipRequest) -> int:
    """Only a deployment's run can suspend: start one on the server PREFECT_API_URL names and
    say how to follow it (its workers and their relay do the rest)."""
    require(bool(os.environ.get("PREFECT_API_URL")), "wait", "suspend starts a run of the "
            f"{DEPLOYMENT} deployment: set PREFECT_API_URL to its server", ["poll"])
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from tasks.forms import ClipForm

    form = TypeAdapter(ClipForm).validate_python(request, from_attributes=True)
    try:
        run = run_deployment(DEPLOYMENT, timeout=0, parameters={  # sync here: its own loop
            "request": form.model_dump(mode="json", exclude_none=True), "wait": "suspend"})
    except ObjectNotFound:
        raise UserError("wait", f"no {DEPLOYMENT} deployment on {os.environ['PREFECT_API_URL']}"
                        ": deploy it (prefect deploy --all)", ["poll"]) from None
    except httpx.HTTPError as err:
        raise UserError("wait", f"the Prefect server at {os.environ['PREFECT_API_URL']} did "
                        f"not answer ({type(err).__name__})", ["poll"]) from None
    said = {"clip_id": request.clip_id, "flow_run_id": str(run.id), "flow_run": run.name}
    print(json.dumps(said, indent=2) if args.json else
          f"clip {request.clip_id[:12]}: run {run.name} ({run.id}) started; it suspends while "
          f"the provider renders\n  follow it: prefect flow-run inspect {run.id}")
    return 0


def run_flow(args: argparse.Namespace, work: Coroutine,
             watching: AbstractContextManager | None = None) -> tuple[Any, int]:
    """(the flow's result, 0), or (None, 1) after saying why when it ended in a provider or
    disk failure with advice — not a user mistake (exit 2), not a bug (a traceback).
    `watching` (the live progress) ends before anything is said."""
    try:
        with watching or nullcontext():
            return asyncio.run(work), 0
    except advised_failures() as err:
        print(json.dumps({"error": {"field": None, "message": str(err)}}) if args.json
              else f"reelflow: {one_line(str(err))}", file=sys.stdout if args.json else sys.stderr)
        return None, 1


def run_and_report(args: argparse.Namespace, work: Coroutine, clip_id: str) -> int:
    """Run a flow that makes one clip, showing its progress; exit 1 when its job is still
    pending at the deadline, or its output could not be archived (yet) or was lost."""
    result, code = run_flow(args, work, showing(
        args, load_context().settings.journal_place, [clip_id]))
    if code:
        return code
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(f"clip {result.clip_id[:12]}: {result.path}\n  {result.model} {result.tier}, "
              f"{usd_text(Decimal(str(result.cost_usd)))}, "
              f"{result.seconds_delivered:g} s at {result.resolution_actual}"
              + (f"\n  trimmed copy: {result.trimmed_path}" if result.trimmed_path else "")
              + (f"\n  {len(result.scene_clip_ids)} scenes, stitched by "
                 f"{result.stitch_method}" if result.scene_clip_ids else ""))
    return 0
