"""The flows with the journal in PostgreSQL (REELFLOW_JOURNAL=postgresql://..., a fresh test
database each): the money tests that read the journal through `journal_of`, run again on it —
resumes, recovery by lookup, the sweep, an extension chain, cancels, refusals learned (kept in
the database for every worker) — judged by the sandbox's bill as they are on the folder. (The
other chains — a storyboard, a last-frame continuation — make the same transitions as the one
kept here and cost 18 s more of CI; they run on the folder journal.) Nothing
is written to the home's journal folder, nor beside it."""

import pytest

from storage.journal_postgres import PostgresJournal
from tests.flows.test_cancel import (  # noqa: F401 (collected here, on PostgreSQL)
    test_a_cancelled_run_stops_its_fal_job_and_pays_for_no_generation,
    test_reelflow_cancel_stops_a_clip_no_run_waits_on,
)
from tests.flows.test_extend import (  # noqa: F401
    test_a_refused_native_extension_is_learned_and_continues_from_the_last_frame,
)
from tests.flows.test_generate import (  # noqa: F401
    test_a_prompt_refused_once_is_routed_around_that_provider_on_the_next_request,
)
from tests.flows.test_paid_once import (  # noqa: F401
    test_a_failing_listing_after_a_lost_create_is_retried_not_taken_as_none,
    test_two_takes_of_one_prompt_never_share_a_video,
)
from tests.flows.test_sweep import (  # noqa: F401
    test_a_pending_job_is_completed_by_the_sweep_with_its_charge,
    test_the_sweep_recovers_an_unknown_submit_by_lookup_and_never_sends_it_again,
)

pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture(autouse=True)
def journal_in_postgres(home, postgres_url, monkeypatch):
    """Every run of the test keeps its journal in the test's database, none in the home."""
    monkeypatch.setenv("REELFLOW_JOURNAL", postgres_url)
    yield
    assert not any((home / kept).exists()
                   for kept in ("journal", "capabilities", "refused_prompts"))
    journal = PostgresJournal(postgres_url)
    assert journal.records(), "no run wrote to the database"
    journal.close()
