"""The journal's tests run against each backend: a folder, and PostgreSQL (a fresh database
per test on the session's throwaway cluster)."""

import pytest

from storage.journal import open_journal


@pytest.fixture(params=["folder", "postgresql"])
def journal_place(request, tmp_path) -> str:
    """Where a journal is kept: a folder or a postgresql:// URL."""
    if request.param == "folder":
        return str(tmp_path / "journal")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def journal(journal_place):
    opened = open_journal(journal_place)
    yield opened
    opened.close()
