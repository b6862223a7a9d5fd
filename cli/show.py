"""show: one clip in full — the request, the plan and its reasons, every attempt and charge,
the inspection, its lineage (parent, children, scenes) and its files; any unique prefix of its
id."""

import argparse
import json
from datetime import datetime
from decimal import Decimal

from cli.context import load_context
from cli.errors import UserError
from models import usd_text
from storage.ledger import read_ledger

HELP_EXAMPLES = """\
  reelflow show 3f2a9c0d5e7b
  reelflow show 3f2a --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clip_id", help="the clip (any unique prefix of its id)")


def run(args: argparse.Namespace) -> int:
    context = load_context()
    settings = context.settings
    journal = context.journal()
    matches = journal.matching(args.clip_id)
    if len(matches) != 1:
        raise UserError("clip_id", f"{args.clip_id!r} starts {len(matches)} clips"
                        + ("" if matches else ": `reelflow clips` lists them"),
                        [m[:16] for m in matches[:5]])
    record = journal.read(matches[0])
    if record is None:
        raise UserError("clip_id", f"the record of {matches[0][:12]} cannot be read: "
                        "`reelflow clips` lists the quarantined ones")
    children = [r.clip_id for r in journal.records() if r.parent_clip_id == record.clip_id]
    charges = [{k: row[k] for k in ("event_time", "event_kind", "model", "tier", "job_id",
                                    "cost_usd", "charge_kind")}
               for row in read_ledger(settings.ledger_place, options=settings.ledger_options)
               if row["clip_id"] == record.clip_id and row["charge_kind"] != "none"]
    charges.sort(key=lambda c: c["event_time"])
    if args.json:
        print(json.dumps({"record": record.model_dump(), "children": children,
                          "charges": charges}, indent=2, default=_json_value))
        return 0
    request, plan = record.request, record.plan
    print(f"clip {record.clip_id[:12]}  {record.state}  ({record.clip_id})")
    print(f"  asked: {request.mode} {request.seconds:g} s {request.resolution} "
          f"{request.aspect_ratio}, policy {request.policy}"
          + (", audio" if request.audio else "") + f"\n  prompt: {request.prompt}")
    if plan:
        print(f"  plan: {plan.model_name} · {plan.tier}, {usd_text(plan.cost_usd)} estimated")
        for reason in plan.reasons:
            print(f"    why: {reason}")
    for attempt in record.attempts:
        print(f"  attempt: {attempt.model or '-'}: {attempt.why}")
    for charge in charges:
        print(f"  charge: {charge['event_time']:%Y-%m-%d %H:%M:%S} {charge['event_kind']:<10} "
              f"{charge['model']} {charge['tier']} job {charge['job_id'] or '-'} "
              f"{usd_text(charge['cost_usd'])}")
    print(f"  spent: {usd_text(record.spent_usd)}")
    if record.outcome:
        found = record.outcome.inspection
        print(f"  inspected: {found.seconds:g} s at {found.size}, {found.codec}"
              + (", flash frame" if found.flash_frame else "")
              + (", soundtrack" if found.audio else ""))
        trim = record.outcome.trim
        for why in trim.trim_reasons if trim else []:
            print(f"    copy: {why}")
    if record.parent_clip_id:
        print(f"  parent: {record.parent_clip_id[:12]}")
    for child in children:
        print(f"  child: {child[:12]}")
    for scene in record.outcome.result.scene_clip_ids if record.outcome else []:
        print(f"  scene: {scene[:12]}")
    for path, _ in record.files():
        print(f"  file: {path}")
    if record.reason:
        print(f"  reason: {record.reason}")
    return 0


def _json_value(value: object) -> object:
    """Money as a number (the journal keeps exact Decimals), times in ISO 8601."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
