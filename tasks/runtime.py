"""What a run needs, built once from settings: catalog, journal, archive, ledger, endpoints
(the sandbox started or reused when auto), credentials resolved here — never below — and one
adapter per protocol and account, closed when the run ends."""

import asyncio
import os
import ssl
from collections.abc import Callable

from pydantic import SecretStr

from models import ClipRequest, Endpoint, Protocol, RoutePlan
from providers.adapter import Adapter
from providers.atlascloud import AtlasCloudAdapter
from providers.catalog import Catalog, ModelRow, load_catalog
from providers.credentials import ApiKey, KlingKeys
from providers.fal_queue import FalQueue
from providers.kling_native import KlingNative
from providers.openai_videos import OpenAIVideos
from sandbox import launcher
from sandbox.knobs import KLING_ACCESS_KEY, KLING_SECRET_KEY
from settings import Settings, load_settings
from storage.archive import Archive
from storage.journal import Journal
from storage.ledger import LedgerWriter
from tasks.limits import ProviderSlots

ADAPTERS: dict[Protocol, type[Adapter]] = {
    "openai_videos": OpenAIVideos, "fal_queue": FalQueue, "kling_native": KlingNative,
    "atlascloud": AtlasCloudAdapter,
}
SECRET_PREFIX = "prefect-secret:"
SANDBOX_KEY = "reelflow-sandbox"


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
    walking the catalog, journal and adapters at every task call cost ~0.3 s of CPU a clip."""

    def __init__(self, settings: Settings, catalog: Catalog, journal: Journal, archive: Archive,
                 ledger: LedgerWriter, endpoints: dict[Protocol, Endpoint],
                 slots: ProviderSlots):
        self.settings, self.catalog, self.journal = settings, catalog, journal
        self.archive, self.ledger, self.endpoints, self.slots = archive, ledger, endpoints, slots
        self.adapters: dict[str, Adapter] = {}
        # one waiter per echo signature in this process (tasks/generation.py _serialised)
        self.signature_locks: dict[str, asyncio.Lock] = {}
        # Per-clip UI: artifacts per clip and per job, provider/model/tier tags on each task. A
        # batch turns it off: it shows its own progress and summary table, and a tagged task
        # run costs two more API calls (Prefect takes tag-concurrency slots for every tag).
        self.per_clip_ui = True
        # asked before each job is submitted (a batch's budget guard); raises to refuse it
        self.before_submit: Callable[[ClipRequest, RoutePlan, int], None] | None = None

    def time_scale(self, protocol: Protocol) -> float:
        endpoint = self.endpoints[protocol]
        return self.settings.sandbox_time_scale if endpoint.kind == "sandbox" else 1.0

    def credential(self, protocol: Protocol):
        s = self.settings
        sandbox = self.endpoints[protocol].kind == "sandbox"
        if protocol == "kling_native":
            access = secret_value(s.kling_access_key) or (KLING_ACCESS_KEY if sandbox else None)
            secret = secret_value(s.kling_secret_key) or (KLING_SECRET_KEY if sandbox else None)
            return KlingKeys(access_key=SecretStr(access or ""), secret_key=SecretStr(secret or
                                                                                       ""))
        field_name, ref = {"openai_videos": ("openai_api_key", "OPENAI_API_KEY"),
                           "fal_queue": ("fal_key", "FAL_KEY"),
                           "atlascloud": ("atlascloud_api_key", "ATLASCLOUD_API_KEY")}[protocol]
        key = secret_value(getattr(s, field_name)) or (SANDBOX_KEY if sandbox else None)
        return ApiKey(key=SecretStr(key or ""), ref=ref)

    def adapter(self, row: ModelRow, tier: str) -> Adapter:
        """One adapter per protocol and account (provider:tier), reused for the run."""
        account = f"{row.provider}:{tier}"
        key = f"{row.protocol}:{account}"
        if key not in self.adapters:
            endpoint = self.endpoints[row.protocol]
            cls = ADAPTERS[row.protocol]
            self.adapters[key] = cls(endpoint, self.credential(row.protocol), account=account,
                                     verify=self._verify(endpoint),
                                     retry_deadline_s=self.settings.retry_deadline_s)
        return self.adapters[key]

    def _verify(self, endpoint: Endpoint):
        ca = os.environ.get("REELFLOW_SANDBOX_CA")
        if endpoint.kind == "sandbox" and ca:
            return ssl.create_default_context(cafile=ca)
        return True

    async def aclose(self) -> None:
        for adapter in self.adapters.values():
            await adapter.aclose()
        self.adapters.clear()


def resolve_endpoints(settings: Settings) -> dict[Protocol, Endpoint]:
    """Sandbox endpoints get the URL of the sandbox serving this home (started if needed)."""
    endpoints = settings.endpoints()
    if any(e.kind == "sandbox" and e.base_url is None for e in endpoints.values()):
        info = launcher.ensure_running(settings.home_path / "sandbox",
                                       time_scale=settings.sandbox_time_scale)
        endpoints = {p: e.model_copy(update={"base_url": e.base_url or info["url"]})
                     if e.kind == "sandbox" else e for p, e in endpoints.items()}
    return endpoints


def build_runtime(run_id: str, settings: Settings | None = None) -> Runtime:
    settings = settings or load_settings()
    home = settings.home_path
    catalog = load_catalog(settings.catalog)
    return Runtime(
        settings=settings, catalog=catalog,
        journal=Journal(home / "journal"),
        archive=Archive(settings.archive_url, settings.archive_options),
        ledger=LedgerWriter(home / "ledger", run_id), endpoints=resolve_endpoints(settings),
        slots=ProviderSlots(catalog, use_prefect=settings.concurrency_limits == "prefect"),
    )
