"""The journal a flow test's runs wrote: the one REELFLOW_JOURNAL names (a PostgreSQL test
database in tests/flows/test_journal_in_postgres.py), else the home's folder."""

import os
from pathlib import Path

from storage.journal import Journal, open_journal


def journal_of(home: Path) -> Journal:
    return open_journal(os.environ.get("REELFLOW_JOURNAL") or str(home / "journal"))
