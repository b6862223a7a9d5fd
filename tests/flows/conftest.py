"""Flow tests: a Prefect test server for the session, the session's sandbox, a fresh home each."""

import asyncio
import gc
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

# Prefect sets logging up when first imported, replacing the handler caplog reads: before any test
import prefect.main  # noqa: F401
import pytest
from prefect.testing.utilities import prefect_test_harness

from storage.ledger import read_ledger


@pytest.fixture(scope="session")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def home(tmp_path, monkeypatch, sandbox, prefect_server):
    """REELFLOW_HOME in a temp folder, every protocol on the session's sandbox."""
    monkeypatch.setenv("REELFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REELFLOW_SANDBOX", sandbox.url)
    monkeypatch.setenv("REELFLOW_SANDBOX_TIME_SCALE", "0.001")
    # the tiers the sandbox bills its default credentials at (a Kling account is on one plan)
    monkeypatch.setenv("REELFLOW_SUBSCRIPTIONS",
                       "kling:standard,fal:standard,sora:api,atlascloud:payg")
    return tmp_path / "home"


def ledger_by_job(ledger: str | Path, options: dict | None = None) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for row in read_ledger(ledger, options=options):
        if row["job_id"]:
            totals[row["job_id"]] += row["cost_usd"]
    return dict(totals)


def assert_reconciled(home: Path, sandbox, ledger: str | None = None,
                      options: dict | None = None) -> dict[str, Decimal]:
    """reelflow's ledger (the home's, or the one at `ledger`: a folder or fsspec URL with
    `options`) and the sandbox's usage log agree to the cent, job by job."""
    ours = {job: round(usd, 2) for job, usd in
            ledger_by_job(ledger or home / "ledger", options).items()}
    theirs: dict[str, Decimal] = defaultdict(Decimal)
    for row in sandbox.usage():
        if row["job_id"] in ours:
            theirs[row["job_id"]] += Decimal(row["usd"])
    assert ours == {job: round(theirs.get(job, Decimal(0)), 2) for job in ours}
    return ours


def delete_provider_copy(record) -> None:
    """Delete the provider's copy of a clip's last output (as retention or the provider would)."""
    from tasks.runtime import build_runtime

    async def delete() -> None:
        rt = build_runtime("test")
        step = record.steps[-1]
        try:
            await rt.adapter(rt.catalog.row(step.model), step.tier).delete_output(step.handle)
        finally:
            await rt.aclose()

    asyncio.run(delete())


@pytest.fixture(autouse=True)
def collect_prefect_sockets():
    """Prefect's clients outlive each flow call's event loop; collect them here, while this
    test's warning filters apply, rather than in whichever test the garbage collector picks."""
    yield
    gc.collect()
