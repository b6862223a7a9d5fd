"""cancel: stop the spending of a clip, or of every clip a flow run sent, where the provider can
stop a job (fal's queue); what cannot be stopped (Kling, OpenAI, AtlasCloud) runs to its end, is
billed, stays `pending` and is archived by the sweep or a rerun — the command lists which is
which. Given a flow run's id with PREFECT_API_URL set, the run itself is cancelled too."""

import argparse
import asyncio
import json
import os
import re

from cli.context import load_context
from cli.errors import UserError
from settings import Settings
from storage.journal import Journal
from storage.ledger import read_ledger

HELP_EXAMPLES = """\
  reelflow cancel 3f2a9c0d5e7b          # a clip: its short id or any unique prefix
  reelflow cancel 1c0e7d2a-5b1f-4c3e-9a8d-2f6b0e4c1a7d --json   # a flow run's clips
"""
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", help="a clip id (any unique prefix) or a flow run's id")


def _clips(journal: Journal, settings: Settings, target: str) -> tuple[list[str], str | None]:
    """(the clips `target` names, the flow run it names, if it is one)."""
    if RUN_ID.match(target):
        rows = read_ledger(settings.ledger_place, options=settings.ledger_options)
        clips = sorted({row["clip_id"] for row in rows
                        if row["flow_run_id"] == target and row["event_kind"] == "submit"})
        return clips, target
    matches = journal.matching(target)
    if len(matches) > 1:
        raise UserError("target", f"{target!r} starts {len(matches)} clips: give more of it",
                        [m[:16] for m in matches[:5]])
    return matches, None


async def _cancel_run(run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelling

    async with get_client() as client:
        await client.set_flow_run_state(run_id, Cancelling(message="reelflow cancel"),
                                        force=True)


async def _cancel(clips: list[str]) -> list:
    from tasks.cancelling import cancel_clip
    from tasks.runtime import build_runtime

    rt = build_runtime("cli-cancel")
    try:
        return [c for clip in clips for c in await cancel_clip(rt, clip)]
    finally:
        await rt.aclose()


def run(args: argparse.Namespace) -> int:
    context = load_context()
    journal = context.journal()
    clips, run_id = _clips(journal, context.settings, args.target)
    if not clips and run_id is None:
        raise UserError("target", f"no clip {args.target!r} in this home",
                        ["a clip id `reelflow clips` lists", "a flow run's id"])
    if run_id and os.environ.get("PREFECT_API_URL"):
        asyncio.run(_cancel_run(run_id))
    found = asyncio.run(_cancel(clips))
    if args.json:
        print(json.dumps({"clips": clips, "flow_run": run_id,
                          "jobs": [c.model_dump() for c in found]}, indent=2))
        return 0
    for c in found:
        print(f"{'stopped' if c.stopped else 'running on'}: clip {c.clip_id[:12]} job "
              f"{c.job_id} ({c.model}) — {c.why}")
    if not found:
        print(f"nothing in flight for {args.target}: no job to stop")
    return 0
