"""Shared fixtures: a clean environment, the real catalog, a fixed clock, endpoints."""

from datetime import UTC, datetime

import pytest

from providers.catalog import Catalog, load_catalog
from providers.router import parse_subscriptions
from settings import load_settings

_PROVIDER_ENV = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "FAL_KEY", "FAL_QUEUE_RUN_HOST", "KLING_ACCESS_KEY",
    "KLING_SECRET_KEY", "KLING_BASE_URL", "ATLASCLOUD_API_KEY", "ATLASCLOUD_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No test sees the developer's keys, settings or .env."""
    import os

    for name in list(os.environ):
        if name.startswith("REELFLOW_") or name in _PROVIDER_ENV:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture
def now() -> datetime:
    """Noon UTC after the Sora shutdown, outside its 02:00–04:00 spike."""
    return datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def sandbox_endpoints():
    return load_settings().endpoints()


@pytest.fixture
def real_endpoints():
    return load_settings(
        openai_base_url="https://api.openai.com/v1", openai_api_key="sk-test",
        kling_base_url="https://api-singapore.klingai.com", kling_access_key="ak",
        kling_secret_key="sk", fal_queue_run_host="queue.fal.run", fal_key="fk",
        atlascloud_base_url="https://api.atlascloud.ai", atlascloud_api_key="ak",
    ).endpoints()


@pytest.fixture
def default_subscriptions(catalog):
    return parse_subscriptions(None, catalog)


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory):
    """One sandbox process for the session (http, time_scale 0.001)."""
    from tests.sandbox_process import start_sandbox

    server = start_sandbox(tmp_path_factory.mktemp("sandbox-state"), "--calm")
    server.started_time_scale = server.knobs()["time_scale"]
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server):
    """The session's sandbox, reset to a calm world with no queued faults, at the time scale it
    started with (a reset keeps the time scale, which a test may have changed)."""
    sandbox_server.reset(calm=True)
    sandbox_server.knobs(time_scale=sandbox_server.started_time_scale)
    return sandbox_server


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL cluster for the session (fsync off: its data need not survive
    a crash); skipped where PostgreSQL is not installed, a failure under CI, which installs it."""
    import os

    from scripts.local_services import PostgresNotInstalled, start_postgres

    try:
        cluster = start_postgres(fsync=False)
    except PostgresNotInstalled as missing:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is missing under CI: .ci/run installs it ({missing})")
        pytest.skip(f"PostgreSQL not installed here (CI installs it): {missing}")
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster):
    """A fresh, empty database on the session's cluster: its postgresql:// URL; dropped after."""
    import uuid

    name = f"t_{uuid.uuid4().hex}"
    url = postgres_cluster.create_database(name)
    yield url
    postgres_cluster.drop_database(name)
