"""The one settings model (DESIGN.md §8), read once at start and validated.

Prefix `REELFLOW_` for our own settings; the providers' own variable names for their keys and base
URLs. `extra="ignore"` because Prefect reads the same `.env`. A protocol talks to a real provider
only when its base URL is set (or REELFLOW_SANDBOX=off): a key alone in the environment never
sends paid work anywhere. A real endpoint without its key is an error at start naming the setting.
"""

import os
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models import DEFAULT_SUBSCRIPTIONS, Endpoint, Protocol

# protocol -> (base URL setting, default real base URL, key settings)
_PROTOCOL_SETTINGS: dict[Protocol, tuple[str, str, tuple[str, ...]]] = {
    "openai_videos": ("openai_base_url", "https://api.openai.com/v1", ("openai_api_key",)),
    "fal_queue": ("fal_queue_run_host", "queue.fal.run", ("fal_key",)),
    "kling_native": (
        "kling_base_url",
        "https://api-singapore.klingai.com",
        ("kling_access_key", "kling_secret_key"),
    ),
    "atlascloud": ("atlascloud_base_url", "https://api.atlascloud.ai", ("atlascloud_api_key",)),
}


def env_name(field: str) -> str:
    alias = Settings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"REELFLOW_{field.upper()}"


class Settings(BaseSettings):
    """Everything reelflow reads from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="REELFLOW_", env_file=".env", extra="ignore", populate_by_name=True
    )

    home: str = Field(
        default="./.reelflow",
        description="Journal, ledger, DuckDB file, sandbox state and (by default) the archive: "
        "a local or shared folder (the journal relies on POSIX locks), made absolute at load.",
    )
    archive: str | None = Field(
        default=None,
        description="Where clips are archived: a folder, or an fsspec URL such as "
        "s3://bucket/prefix (write-once by conditional put). Default: the home.",
    )
    archive_options: dict[str, Any] = Field(
        default_factory=dict,
        description='fsspec storage options for the archive as JSON, e.g. {"client_kwargs": '
        '{"endpoint_url": "http://127.0.0.1:9000"}}. Credentials come from the store\'s own '
        "environment (AWS_ACCESS_KEY_ID, ...), never from here.",
    )
    journal: str | None = Field(
        default=None,
        description="Where the job journal is kept: a folder (POSIX locks; default: the "
        "home's journal/), or a postgresql:// URL (its own schema `reelflow`, which may share "
        "the Prefect server's database). Every worker and CLI of one deployment names the same.",
    )
    journal_connections: int = Field(
        default=4, gt=0, le=1024,
        description="PostgreSQL journal: connections per process for its transitions and "
        "reads (each a short transaction), plus one that holds every send lock of the process. "
        "The server needs max_connections of at least flow runs in flight x (this + 1), plus "
        "what the Prefect server's own pool takes.")
    ledger: str | None = Field(
        default=None,
        description="Where the ledger's Parquet parts are written: a folder, or an fsspec URL "
        "such as s3://bucket/prefix (create-only puts). Default: the home's ledger/.",
    )
    ledger_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec storage options for the ledger, as JSON.")
    inputs_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options, as JSON, for a batch manifest on an object store "
        "(s3://bucket/prefix/batch.csv) and for its images there: every worker that runs the "
        "batch's chunks reads them with these. Credentials as for the archive.")
    sandbox: str = Field(
        default="auto",
        description="auto: the sandbox serving this home (started if needed) for every protocol "
        "without a real endpoint; a URL: a sandbox already running there; off: none.",
    )
    subscriptions: str = Field(
        default=DEFAULT_SUBSCRIPTIONS,
        description="The one plan each subscription key holds (Kling native, OpenAI), e.g. "
        "kling:pro,sora:api; the provider bills the key at that plan, so reelflow plans only on "
        "it. Pay-as-you-go gateways (fal, AtlasCloud) price each request and need no entry.",
    )
    catalog: Path | None = Field(default=None, description="Another model catalog TOML file.")
    sandbox_time_scale: float = Field(
        default=0.01, gt=0, description="time_scale of a sandbox started by auto: 0.01 makes "
        "a 5 s clip in well under a second, 1.0 waits as long as the providers do. The client "
        "asks the sandbox its speed, so this only sets the speed of one it starts.")
    archive_replica: str | None = Field(
        default=None,
        description="A second archive (folder or fsspec URL) the sweep copies clips to and "
        "verifies; a local file is only ever deleted when its copy there checks out.",
    )
    archive_replica_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec storage options for the replica, as JSON.")
    local_retention_days: float | None = Field(
        default=None, ge=0,
        description="Delete local archive files this many days after the clip was done, once "
        "the replica holds a verified copy. Unset: never delete.",
    )
    concurrency_limits: Literal["local", "prefect"] = Field(
        default="local",
        description="local: jobs in flight per provider:<name>:<tier> limited inside each run; "
        "prefect: also through Prefect global concurrency limits of those names, shared by every "
        "run and worker (create them with `reelflow limits sync`).",
    )
    retry_deadline_s: float = Field(
        default=120.0, gt=0,
        description="How long a call that cannot pay (status, result, download, the lookup "
        "after an ambiguous submit) is retried before it is given up; a lookup given up leaves "
        "the submit unknown, never re-sent.",
    )
    wait: Literal["poll", "suspend"] = Field(
        default="poll",
        description="How a generate-clip run waits on a submitted job: poll (its process "
        "stays), or suspend (a deployment's run only, with a relay at REELFLOW_WEBHOOK_URL: "
        "the process exits until the provider's callback or the backstop resumes the run). "
        "Other flows poll.")
    poll_deadline_k: float = Field(
        default=3.0, gt=0, description="await_job gives up (pending) after k x p95 latency."
    )
    inspection_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 2, gt=0, le=256,
        description="Clips inspected at once in a run (CPU work: decoding the tail); finished "
        "jobs beyond it wait their turn, and the polling of the others goes on meanwhile.")
    archive_concurrency: int = Field(
        default=16, gt=0, le=1024,
        description="Outputs downloaded into the archive at once in a run; a burst of "
        "completions beyond it waits its turn instead of crowding every connection.")
    http_connections: int = Field(
        default=32, gt=0, le=4096,
        description="Sockets per provider account; requests beyond them wait their turn "
        "before anything is sent (so a queue never turns a paid submit into an unknown one).")

    webhook_url: str | None = Field(
        default=None,
        description="The relay's public URL (`reelflow relay` prints it): set, the adapters "
        "send each job a callback there (fal's fal_webhook, Kling's callback_url, "
        "AtlasCloud's webhook_url); unset, nothing is sent and runs poll.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signs the per-job secret in each callback URL (Kling's callbacks carry "
        "no signature); the relay and every worker share it.")
    fal_jwks_url: str | None = Field(
        default=None,
        description="fal's webhook keys (default: https://rest.alpha.fal.ai/.well-known/"
        "jwks.json; the sandbox's own on the sandbox).")
    atlascloud_jwks_url: str | None = Field(
        default=None,
        description="AtlasCloud's webhook keys (default: https://api.atlascloud.ai/api/v1/"
        "webhooks/jwks.json; the sandbox's own on the sandbox).")

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    fal_key: SecretStr | None = Field(default=None, validation_alias="FAL_KEY")
    fal_queue_run_host: str | None = Field(default=None, validation_alias="FAL_QUEUE_RUN_HOST")
    kling_access_key: SecretStr | None = Field(default=None, validation_alias="KLING_ACCESS_KEY")
    kling_secret_key: SecretStr | None = Field(default=None, validation_alias="KLING_SECRET_KEY")
    kling_base_url: str | None = Field(default=None, validation_alias="KLING_BASE_URL")
    atlascloud_api_key: SecretStr | None = Field(
        default=None, validation_alias="ATLASCLOUD_API_KEY"
    )
    atlascloud_base_url: str | None = Field(default=None, validation_alias="ATLASCLOUD_BASE_URL")

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("REELFLOW_HOME must not be empty")
        if "://" in value and not value.startswith("file://"):
            raise ValueError(f"REELFLOW_HOME is {value!r}; allowed: a local or shared folder "
                             "(put clips on an object store with REELFLOW_ARCHIVE)")
        return str(Path(value.removeprefix("file://")).expanduser().resolve())

    @field_validator("archive", "archive_replica", "ledger")
    @classmethod
    def _absolute_archive(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        if "://" in value and not value.startswith("file://"):
            return value.strip().rstrip("/")
        return str(Path(value.removeprefix("file://")).expanduser().resolve())

    @field_validator("journal")
    @classmethod
    def _journal_place(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        value = value.strip()
        if value.startswith(("postgresql://", "postgres://")):
            return value
        if "://" in value and not value.startswith("file://"):
            raise ValueError(f"REELFLOW_JOURNAL is {value!r}; allowed: a folder or a "
                             "postgresql:// URL")
        return str(Path(value.removeprefix("file://")).expanduser().resolve())

    @field_validator("sandbox")
    @classmethod
    def _sandbox_mode(cls, value: str) -> str:
        value = value.strip()
        if value in ("auto", "off") or value.startswith(("http://", "https://")):
            return value.rstrip("/")
        raise ValueError(
            f"REELFLOW_SANDBOX is {value!r}; allowed: auto, off, or the sandbox's http(s) URL"
        )

    @field_validator(
        "openai_api_key", "fal_key", "kling_access_key", "kling_secret_key", "atlascloud_api_key",
        "webhook_secret")
    @classmethod
    def _no_empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator(
        "openai_base_url", "fal_queue_run_host", "kling_base_url", "atlascloud_base_url",
        "webhook_url", "fal_jwks_url", "atlascloud_jwks_url")
    @classmethod
    def _no_empty_url(cls, value: str | None) -> str | None:
        return value.strip().rstrip("/") if value and value.strip() else None

    @model_validator(mode="after")
    def _real_endpoints_have_keys(self) -> Self:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError("REELFLOW_WEBHOOK_SECRET must be set with REELFLOW_WEBHOOK_URL: "
                             "it signs the secret each callback URL carries")
        endpoints = self.endpoints()
        for protocol, (_, _, key_fields) in _PROTOCOL_SETTINGS.items():
            endpoint = endpoints.get(protocol)
            if endpoint is None or endpoint.kind != "real":
                continue
            missing = [env_name(f) for f in key_fields if getattr(self, f) is None]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)} must be set: {protocol} points at a real "
                    f"endpoint ({endpoint.base_url})"
                )
        return self

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    @property
    def archive_url(self) -> str:
        return self.archive or self.home

    @property
    def journal_place(self) -> str:
        """The journal's folder or postgresql:// URL."""
        return self.journal or str(self.home_path / "journal")

    @property
    def ledger_place(self) -> str:
        """The ledger's folder or fsspec URL."""
        return self.ledger or str(self.home_path / "ledger")

    def endpoints(self) -> dict[Protocol, Endpoint]:
        """Each protocol's destination: real where configured, otherwise the sandbox.

        With REELFLOW_SANDBOX=off, a protocol with neither base URL nor key is left out: the
        router then says which setting would enable it.
        """
        result: dict[Protocol, Endpoint] = {}
        sandbox_url = None if self.sandbox in ("auto", "off") else self.sandbox
        for protocol, (url_field, default_url, key_fields) in _PROTOCOL_SETTINGS.items():
            configured = getattr(self, url_field)
            refs = tuple(env_name(f) for f in key_fields)
            on_sandbox = configured is None or bool(
                sandbox_url and configured.startswith(sandbox_url)
            )
            if on_sandbox and self.sandbox != "off":
                kind, url = "sandbox", configured or sandbox_url
            elif configured or all(getattr(self, f) is not None for f in key_fields):
                kind, url = "real", configured or default_url
            else:
                continue
            result[protocol] = Endpoint(
                protocol=protocol, kind=kind, base_url=url, credential_refs=refs
            )
        return result


_JWKS = {"fal_queue": ("fal_jwks_url", "https://rest.alpha.fal.ai/.well-known/jwks.json",
                       "/fal/.well-known/jwks.json"),
         "atlascloud": ("atlascloud_jwks_url",
                        "https://api.atlascloud.ai/api/v1/webhooks/jwks.json",
                        "/atlascloud/api/v1/webhooks/jwks.json")}


def jwks_url(settings: Settings, protocol: Protocol) -> str | None:
    """Where `protocol`'s webhook keys are: the setting, else the sandbox's own when the
    protocol is on the sandbox, else the provider's published JWKS."""
    field, public, on_sandbox = _JWKS[protocol]
    if configured := getattr(settings, field):
        return configured
    endpoint = settings.endpoints().get(protocol)
    if endpoint is not None and endpoint.kind == "sandbox":
        return None if endpoint.base_url is None else endpoint.base_url.rstrip("/") + on_sandbox
    return public


def subscriptions_assumed(settings: Settings) -> bool:
    """No one said which plan each key holds: the default plans are assumed, and plans say so."""
    return "subscriptions" not in settings.model_fields_set


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and `.env`) once; overrides win, for tests and the CLI."""
    return Settings(**overrides)
