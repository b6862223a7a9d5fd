"""What a run needs, built once by the composition root (`clip_run`, or `build_runtime` in
benchmarks and tests) from settings: catalog, journal, archive, ledger, endpoints (the sandbox
started or reused when auto), credentials resolved here — never below — and one adapter per
protocol and account, closed when the run ends. It is frozen: behaviour a caller wants for its
run (a batch's budget guard, no per-clip UI) is given when it is built, or to `with_options`,
which returns a copy sharing the same resources."""

import asyncio
import copy
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from models import ClipRequest, Endpoint, Protocol, RoutePlan, account_key
from providers import http
from providers.adapter import SANDBOX_PREFIX, Adapter
from providers.atlascloud import AtlasCloudAdapter
from providers.catalog import Catalog, ModelRow, load_catalog
from providers.credentials import SANDBOX_API_KEY, SANDBOX_KLING_KEYS, ApiKey, KlingKeys
from providers.fal_queue import FalQueue
from providers.kling_native import KlingNative
from providers.openai_videos import OpenAIVideos
from settings import Settings, load_settings
from storage.archive import Archive
from storage.capabilities import KIND as CAPABILITIES
from storage.capabilities import Capabilities
from storage.journal import Journal, open_journal
from storage.ledger import LedgerWriter
from tasks import sandbox_launcher
from tasks.explained import quiet_explained_tracebacks
from tasks.limits import ProviderSlots

ADAPTERS: dict[Protocol, type[Adapter]] = {
    "openai_videos": OpenAIVideos, "fal_queue": FalQueue, "kling_native": KlingNative,
    "atlascloud": AtlasCloudAdapter,
}
SECRET_PREFIX = "prefect-secret:"
BeforeSubmit = Callable[[ClipRequest, RoutePlan, int], None]


def secret_value(value: SecretStr | None) -> str | None:
    """A key from the environment, or from the Prefect Secret block it names."""
    if value is None:
        return None
    text = value.get_secret_value()
    if text.startswith(SECRET_PREFIX):
        from prefect.blocks.system import Secret

        return Secret.load(text.removeprefix(SECRET_PREFIX)).get()
    return text


class Runtime:
    """A plain class on purpose: Prefect walks dataclasses and models passed to a task, and
    walking the catalog, journal and adapters at every task call cost ~0.3 s of CPU a clip.

    `per_clip_ui`: artifacts per clip and per job, provider/model/tier tags on each task. A
    batch turns it off: it shows its own progress and summary table, and a tagged task run
    costs two more API calls (Prefect takes tag-concurrency slots for every tag).
    `before_submit`: asked before each job is submitted (a batch's budget guard); raises to
    refuse it."""

    def __init__(self, settings: Settings, catalog: Catalog, journal: Journal, archive: Archive,
                 ledger: LedgerWriter, endpoints: dict[Protocol, Endpoint],
                 slots: ProviderSlots, *, run_id: str, capabilities: Capabilities,
                 sandbox_time_scale: float = 1.0,
                 replica: Archive | None = None,
                 per_clip_ui: bool = True, before_submit: BeforeSubmit | None = None):
        fields = dict(settings=settings, catalog=catalog, journal=journal, archive=archive,
                      capabilities=capabilities, sandbox_time_scale=sandbox_time_scale,
                      replica=replica, ledger=ledger,
                      endpoints=endpoints, slots=slots,
                      run_id=run_id, per_clip_ui=per_clip_ui, before_submit=before_submit,
                      wait_key=uuid.uuid4().hex,
                      # shared by every copy: one adapter per account, one waiter per echo
                      # signature and per clip's send lock in this process
                      # (tasks/submission.py)
                      _adapters={}, signature_locks={}, send_locks={}, admissions={},
                      # post-processing's own bounds, shared by every clip of the run
                      archiving=asyncio.Semaphore(settings.archive_concurrency),
                      inspecting=asyncio.Semaphore(settings.inspection_concurrency))
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    settings: Settings
    catalog: Catalog
    journal: Journal
    capabilities: Capabilities
    sandbox_time_scale: float
    archive: Archive
    replica: Archive | None
    ledger: LedgerWriter
    endpoints: dict[Protocol, Endpoint]
    slots: ProviderSlots
    run_id: str
    per_clip_ui: bool
    before_submit: BeforeSubmit | None
    wait_key: str  # the pause key this run's next suspension takes (tasks/suspending.py)
    signature_locks: dict[str, asyncio.Lock]
    admissions: dict[str, Any]  # an account's admission in this process (tasks/suspending.py)
    send_locks: dict[str, asyncio.Lock]
    archiving: asyncio.Semaphore
    inspecting: asyncio.Semaphore

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"the runtime is frozen: use with_options({name}=...)")

    def with_options(self, *, per_clip_ui: bool | None = None,
                     before_submit: BeforeSubmit | None = None,
                     wait_key: str | None = None) -> "Runtime":
        """This runtime, same resources, with a run's own behaviour."""
        clone = copy.copy(self)
        if wait_key is not None:
            object.__setattr__(clone, "wait_key", wait_key)
        if per_clip_ui is not None:
            object.__setattr__(clone, "per_clip_ui", per_clip_ui)
        if before_submit is not None:
            object.__setattr__(clone, "before_submit", before_submit)
        return clone

    @property
    def step_log_level(self) -> int:
        """The level of a step's routine lines (its plan, its submit, its archive): INFO for a
        single clip; DEBUG in a batch, whose plan and summary table hold the same, and where
        at ~3 ms of CPU a record (console and API handlers) they were a tenth of a row's. What
        a job cost, and every warning, stays at its own level."""
        return logging.INFO if self.per_clip_ui else logging.DEBUG

    def time_scale(self, protocol: Protocol) -> float:
        """The speed the provider runs at: the sandbox's own (learned from it, so client and
        server cannot disagree), 1 for a real endpoint."""
        endpoint = self.endpoints[protocol]
        return self.sandbox_time_scale if endpoint.kind == "sandbox" else 1.0

    def credential(self, protocol: Protocol) -> ApiKey | KlingKeys:
        s = self.settings
        sandbox = self.endpoints[protocol].kind == "sandbox"
        if protocol == "kling_native":
            default_access, default_secret = SANDBOX_KLING_KEYS if sandbox else (None, None)
            access = secret_value(s.kling_access_key) or default_access
            secret = secret_value(s.kling_secret_key) or default_secret
            return KlingKeys(access_key=SecretStr(access or ""),
                             secret_key=SecretStr(secret or ""))
        field_name, ref = {"openai_videos": ("openai_api_key", "OPENAI_API_KEY"),
                           "fal_queue": ("fal_key", "FAL_KEY"),
                           "atlascloud": ("atlascloud_api_key", "ATLASCLOUD_API_KEY")}[protocol]
        key = secret_value(getattr(s, field_name)) or (SANDBOX_API_KEY if sandbox else None)
        return ApiKey(key=SecretStr(key or ""), ref=ref)

    def adapter(self, row: ModelRow, tier: str) -> Adapter:
        """One adapter per protocol and account (provider:tier), reused for the run."""
        account = account_key(row.provider, tier)
        key = f"{row.protocol}:{account}"
        adapters: dict[str, Adapter] = self._adapters  # type: ignore[attr-defined]
        if key not in adapters:
            endpoint = self.endpoints[row.protocol]
            cls = ADAPTERS[row.protocol]
            adapters[key] = cls(endpoint, self.credential(row.protocol), account=account,
                                verify=self._verify(endpoint),
                                retry_deadline_s=self.settings.retry_deadline_s,
                                connections=self.settings.http_connections)
        return adapters[key]

    def _verify(self, endpoint: Endpoint):
        ca = os.environ.get("REELFLOW_SANDBOX_CA")
        if endpoint.kind == "sandbox" and ca:
            return http.tls_context(ca)
        return True

    async def aclose(self) -> None:
        adapters: dict[str, Adapter] = self._adapters  # type: ignore[attr-defined]
        for adapter in adapters.values():
            await adapter.aclose()
        adapters.clear()
        await asyncio.to_thread(self.journal.close)


def resolve_endpoints(settings: Settings) -> dict[Protocol, Endpoint]:
    """Sandbox endpoints get the URL of the sandbox serving this home (started if needed)."""
    endpoints = settings.endpoints()
    if any(e.kind == "sandbox" and e.base_url is None for e in endpoints.values()):
        info = sandbox_launcher.ensure_running(settings.home_path / "sandbox",
                                               time_scale=settings.sandbox_time_scale)
        endpoints = {p: e.model_copy(update={"base_url": e.base_url or info["url"]})
                     if e.kind == "sandbox" else e for p, e in endpoints.items()}
    return endpoints


# the speed each sandbox (by root URL) said it runs at: asked once per process, since building
# an HTTP client costs ~80 ms of CPU (its TLS context) and a flow run starts per clip
_SPEEDS: dict[str, float] = {}


def sandbox_speed(settings: Settings, endpoints: dict[Protocol, Endpoint]) -> float:
    """The time scale of the sandbox these endpoints reach, asked of the sandbox itself
    (`/_admin/health`); REELFLOW_SANDBOX_TIME_SCALE only when it cannot say."""
    for endpoint in endpoints.values():
        if endpoint.kind == "sandbox" and endpoint.base_url:
            root = endpoint.base_url.rstrip("/").removesuffix(SANDBOX_PREFIX[endpoint.protocol])
            if root not in _SPEEDS:
                ca = os.environ.get("REELFLOW_SANDBOX_CA")
                try:
                    answer = httpx.get(root + "/_admin/health", timeout=5,
                                       verify=http.tls_context(ca))
                    _SPEEDS[root] = float(answer.json()["time_scale"])
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    break
            return _SPEEDS[root]
    return settings.sandbox_time_scale


def build_runtime(run_id: str, settings: Settings | None = None, *,
                  per_clip_ui: bool = True) -> Runtime:
    settings = settings or load_settings()
    catalog = load_catalog(settings.catalog)
    endpoints = resolve_endpoints(settings)
    journal = open_journal(settings.journal_place, connections=settings.journal_connections)
    return Runtime(
        settings=settings, catalog=catalog, journal=journal,
        capabilities=Capabilities(journal.learned(CAPABILITIES)),
        archive=Archive(settings.archive_url, settings.archive_options),
        replica=Archive(settings.archive_replica, settings.archive_replica_options)
        if settings.archive_replica else None,
        ledger=LedgerWriter(settings.ledger_place, run_id, settings.ledger_options),
        endpoints=endpoints,
        sandbox_time_scale=sandbox_speed(settings, endpoints),
        slots=ProviderSlots(catalog, use_prefect=settings.concurrency_limits == "prefect"),
        run_id=run_id, per_clip_ui=per_clip_ui)


@asynccontextmanager
async def clip_run(*, per_clip_ui: bool = True, may_suspend: bool = False,
                   wait: Literal["poll", "suspend"] | None = None) -> AsyncIterator[Runtime]:
    """The runtime of the current flow run, closed after it (every flow's body runs in one).
    `wait`: the run's parameter, over the REELFLOW_WAIT setting, for a flow that `may_suspend`;
    the others poll (the sweep is what collects for everyone)."""
    from prefect.context import get_run_context

    quiet_explained_tracebacks()  # a user's mistake is one line in the UI's run logs too

    run_id = str(get_run_context().flow_run.id)
    settings = load_settings()
    settings = settings.model_copy(update={
        "wait": (wait or settings.wait) if may_suspend else "poll"})
    rt = await asyncio.to_thread(build_runtime, run_id, settings, per_clip_ui=per_clip_ui)
    try:
        yield rt
    finally:
        await rt.aclose()
