"""journal: `journal migrate --to postgresql://...` copies this home's folder journal (every
record, claim and quarantined record) into PostgreSQL, idempotently, and checks by counts that
everything is there; then set REELFLOW_JOURNAL to that URL on every worker and CLI."""

import argparse
from pathlib import Path

from cli.context import load_context, require
from cli.errors import UserError
from storage.journal import JournalUnavailable
from storage.journal_folder import FolderJournal

HELP_EXAMPLES = """\
  reelflow journal migrate --to postgresql://reelflow@db.internal:5432/reelflow
  reelflow journal migrate --from /mnt/shared/reelflow/journal --to postgresql://... --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", help="migrate")
    parser.add_argument("--to", help="the PostgreSQL journal: a postgresql:// URL")
    parser.add_argument("--from", dest="source",
                        help="the folder journal (default: REELFLOW_JOURNAL if a folder, "
                             "else the home's journal/)")


def run(args: argparse.Namespace) -> int:
    require(args.action == "migrate", "action", f"{args.action!r} is not an action",
            ["migrate"])
    require(bool(args.to) and args.to.startswith(("postgresql://", "postgres://")), "to",
            f"{args.to!r} is not a PostgreSQL journal", ["a postgresql:// URL"])
    settings = load_context().settings
    place = settings.journal_place
    source = Path(args.source or (place if "://" not in place else
                                  settings.home_path / "journal")).expanduser()
    require(source.is_dir(), "from", f"no folder journal at {source}",
            ["a folder journal (REELFLOW_HOME's journal/)"])
    from storage.journal_migration import migrate  # psycopg: this command's only
    from storage.journal_postgres import PostgresJournal

    try:
        target = PostgresJournal(args.to, connections=4)
    except JournalUnavailable as err:
        raise UserError("to", str(err), ["a reachable postgresql:// URL"]) from None
    try:
        done = migrate(FolderJournal(source), target)
    finally:
        target.close()
    if args.json:
        print(done.model_dump_json(indent=2))
    else:
        print(f"{done.records} records ({done.copied} copied), {done.claims} claims "
              f"({done.claims_copied} copied), {done.quarantined} quarantined "
              f"({done.quarantined_copied} copied) from {source}")
        for problem in done.missing + done.conflicts:
            print(f"not migrated: {problem}")
        print("verified: every record and claim is in the database" if done.verified else
              "NOT verified: see above; the folder is untouched")
    return 0 if done.verified else 1
