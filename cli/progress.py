"""Live progress in the terminal while a command's flow runs: one line per clip (model and
tier, its job, state, elapsed against the plan's expected median, a bar), and for a batch its
counts, spend and an estimate of what is left. It reads the journal — what the flow writes as it
goes — from a background thread, so it needs nothing from the flow. On a terminal the lines are
redrawn in place (rich); elsewhere (CI, a pipe) a plain line is printed every few seconds.
`--quiet` turns it off, and `--json` prints only the final JSON."""

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

from rich.console import Console
from rich.live import Live

from models import usd_text
from storage.journal import open_journal
from storage.records import ClipJournal

BAR = 20
# seconds between plain lines when stderr is not a terminal (a setting so tests can see them)
PLAIN_EVERY_S = float(os.environ.get("REELFLOW_PROGRESS_EVERY_S", "5"))


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no live progress")


def _bar(done: float) -> str:
    filled = round(max(0.0, min(1.0, done)) * BAR)
    return "█" * filled + "░" * (BAR - filled)


def clip_line(record: ClipJournal | None, clip_id: str, now: datetime) -> str:
    """`kling-v3 standard · job 8000… · running · 12 s of ~38 s ████░░░`."""
    if record is None:
        return f"{clip_id[:12]} · planning"
    elapsed = (now - record.created_at).total_seconds()
    plan = record.plan
    if record.state == "done":
        return f"{clip_id[:12]} · done · {usd_text(record.spent_usd)} · {elapsed:.0f} s"
    step = record.steps[-1] if record.steps else None
    job = step.handle.job_id if step and step.handle else "-"
    expected = plan.p50_s if plan else 0
    fraction = elapsed / expected if expected else 0
    model = f"{plan.model} {plan.tier}" if plan else "planning"
    state = step.state if step else record.state
    return (f"{clip_id[:12]} · {model} · job {job[:12]} · {state} · {elapsed:.0f} s of "
            f"~{expected:.0f} s {_bar(fraction)}")


def batch_line(records: list[ClipJournal | None], budget: Decimal | None,
               started: float) -> str:
    """`batch: 12 done · 8 in flight · 30 left · 1 failed · $3.20 of $25 · ~40 s left`."""
    done = sum(1 for r in records if r and r.state == "done")
    failed = sum(1 for r in records if r and r.state in ("failed", "lost", "unarchived"))
    waiting = sum(1 for r in records if r is None)
    flying = len(records) - done - failed - waiting
    spent = sum((r.spent_usd for r in records if r), Decimal(0))
    elapsed = time.monotonic() - started
    left = (elapsed / done * (len(records) - done - failed)) if done else None
    return (f"batch: {done} done · {flying} in flight · {waiting} left · {failed} failed · "
            f"{usd_text(spent)}" + (f" of {usd_text(budget)}" if budget is not None else "")
            + (f" · ~{left:.0f} s left" if left is not None else ""))


@contextmanager
def showing(args: argparse.Namespace, journal_place: str, clip_ids: list[str], *,
            batch: bool = False, budget: Decimal | None = None) -> Iterator[None]:
    """Show the clips' progress while the body runs (nothing with --quiet or --json)."""
    if getattr(args, "quiet", False) or args.json:
        yield
        return
    journal = open_journal(journal_place, connections=2)
    started = time.monotonic()
    stop = threading.Event()

    def lines() -> list[str]:
        records = [journal.read(c) for c in clip_ids]
        if batch:
            return [batch_line(records, budget, started)]
        now = datetime.now(UTC)
        return [clip_line(r, c, now) for r, c in zip(records, clip_ids, strict=True)]

    console = Console(stderr=True)
    if console.is_terminal:
        def draw() -> None:
            with Live("", console=console, refresh_per_second=4, transient=True) as live:
                while not stop.wait(0.25):
                    live.update("\n".join(lines()))
    else:
        def draw() -> None:
            while not stop.wait(PLAIN_EVERY_S):
                for line in lines():
                    print(f"progress: {line}", file=sys.stderr, flush=True)
    thread = threading.Thread(target=draw, name="reelflow-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        journal.close()
