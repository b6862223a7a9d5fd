"""clips: list this home's clips, oldest first — what needs attention first (`--state lost`,
`unarchived`, `open`), each with its short id (any unique prefix works in `show` and
`extend`), model, cost, jobs and file or why."""

import argparse
import json
import typing
from datetime import date

from pydantic import BaseModel

from cli.context import load_context, require
from cli.errors import UserError
from storage.records import OPEN_STATES, ClipJournal, ClipState

HELP_EXAMPLES = """\
  reelflow clips
  reelflow clips --state lost
  reelflow clips --model kling-v3 --since 2026-11-01
"""

STATES = [*typing.get_args(ClipState), "open", "all"]


class ClipLine(BaseModel):
    clip_id: str
    state: str
    model: str | None
    job_ids: list[str]
    cost_usd: float
    path: str | None
    reason: str | None
    updated_at: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", default="all",
                        help="lost | unarchived | open (every unfinished state) | done | ... "
                        "| all")
    parser.add_argument("--model", help="only this catalog model's clips")
    parser.add_argument("--since", help="only clips updated since this date (YYYY-MM-DD)")


def run(args: argparse.Namespace) -> int:
    require(args.state in STATES, "state", f"{args.state!r} is not a clip state", STATES)
    context = load_context()
    require(args.model is None or args.model in context.catalog.ids, "model",
            f"{args.model!r} is not a catalog model", context.catalog.ids)
    since = _date(args.since) if args.since else None
    journal = context.journal()
    lines = [_line(r) for r in journal.records() if _wanted(r, args.state)
             and (args.model is None or (r.plan and r.plan.model == args.model))
             and (since is None or r.updated_at.date() >= since)]
    lines.sort(key=lambda line: line.updated_at)
    if args.json:
        print(json.dumps([line.model_dump() for line in lines], indent=2))
        return 0
    for line in lines:
        where = line.reason if line.state in ("lost", "unarchived") else line.path
        print(f"{line.clip_id[:12]}  {line.state:<10} {line.model or '-':<15} "
              f"${line.cost_usd:>8.2f}"
              f"  jobs {', '.join(line.job_ids) or '-'}  {where or ''}")
    for lost in journal.quarantined():
        print(f"{lost.clip_id}  quarantined: {lost.path} ({lost.found.splitlines()[0]})")
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UserError("since", f"{text!r} is not a date", ["YYYY-MM-DD"]) from None


def _wanted(record: ClipJournal, state: str) -> bool:
    return state == "all" or record.state == state or (state == "open"
                                                       and record.state in OPEN_STATES)


def _line(record: ClipJournal) -> ClipLine:
    return ClipLine(clip_id=record.clip_id, state=record.state,
                    model=record.plan.model if record.plan else None, job_ids=record.job_ids,
                    cost_usd=float(record.spent_usd),
                    path=record.archive.path if record.archive else None, reason=record.reason,
                    updated_at=record.updated_at.isoformat())
