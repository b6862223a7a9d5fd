"""The interface every protocol adapter implements, and what they share.

submit(request, idempotency_key) -> JobHandle   paid; never retried blindly (see each adapter)
status(handle) -> JobStatus                      retried within a deadline
result(handle) -> RemoteVideo                    retried within a deadline
cancel(handle) -> bool                           False where the protocol has no cancel
download(remote, sink) -> Download               streamed, resumed, checksummed

An AccountError on submit stops the adapter's account: later submits fail at once with the reason,
without another request. Keys live in the credential object and go out only in request headers.
"""

import abc
import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar, Self
from urllib.parse import urlsplit

import httpx

from models import (
    Download,
    Endpoint,
    JobHandle,
    JobStatus,
    Protocol,
    ProviderCharge,
    RemoteVideo,
    SubmitRequest,
)
from providers import http
from providers.download import stream_to
from providers.errors import AccountError, SubmitUnknown, Transient

# Whether a provider job id is already claimed by another clip step: recovery never adopts one.
Taken = Callable[[str], bool]


def nothing_taken(job_id: str) -> bool:
    return False


SANDBOX_PREFIX: dict[Protocol, str] = {
    "openai_videos": "/openai/v1", "fal_queue": "/fal", "kling_native": "/kling",
    "atlascloud": "/atlascloud",
}


def base_url(endpoint: Endpoint) -> str:
    """Where the protocol's requests go: the sandbox's prefix, or the real base URL."""
    if endpoint.base_url is None:
        raise ValueError(f"{endpoint.protocol}: the sandbox URL is not resolved yet")
    url = endpoint.base_url.rstrip("/")
    if endpoint.kind == "sandbox" and not url.endswith(SANDBOX_PREFIX[endpoint.protocol]):
        return url + SANDBOX_PREFIX[endpoint.protocol]
    if "://" not in url:  # fal's FAL_QUEUE_RUN_HOST is a host
        return "https://" + url
    return url


class Adapter(abc.ABC):
    protocol: ClassVar[Protocol]

    def __init__(self, endpoint: Endpoint, credential: Any, *, account: str,
                 verify: Any = True, retry_deadline_s: float = http.RETRY_DEADLINE_S,
                 timeout: httpx.Timeout = http.TIMEOUT, connections: int = http.CONNECTIONS):
        self.endpoint = endpoint
        self.credential = credential
        self.account = account
        self.base_url = base_url(endpoint)
        self.retry_deadline_s = retry_deadline_s
        self.blocked: AccountError | None = None
        self.trusted_hosts = frozenset()
        if endpoint.kind == "sandbox":  # its own host and port only, not the whole host
            self.trusted_hosts = frozenset({urlsplit(self.base_url).netloc})
        self.client = http.client(self.base_url, verify=verify, timeout=timeout,
                                  connections=connections)
        # Admission to the pool: at most `connections` requests hold or wait for a socket;
        # the rest wait here, with no timeout, before anything is sent — so a thousand jobs
        # in flight never turn a paid submit into an unknown one by waiting out the pool's
        # timeout (and httpcore's pool cannot starve, encode/httpcore#1093).
        self.admission = asyncio.Semaphore(connections)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint.kind} {self.base_url}, {self.credential!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    # the interface
    async def submit(self, request: SubmitRequest, idempotency_key: str, *,
                     taken: Taken = nothing_taken) -> JobHandle:
        if self.blocked:
            raise type(self.blocked)(f"account {self.account} is stopped: "
                                     f"{self.blocked.message}", status=self.blocked.status,
                                     code=self.blocked.code)
        try:
            return await self._submit(request, idempotency_key, taken=taken)
        except AccountError as err:
            self.blocked = err
            raise

    async def status(self, handle: JobHandle) -> JobStatus:
        return await http.retrying(lambda: self._status(handle),
                                   deadline_s=self.retry_deadline_s)

    async def result(self, handle: JobHandle) -> RemoteVideo:
        return await http.retrying(lambda: self._result(handle),
                                   deadline_s=self.retry_deadline_s)

    async def download(self, remote: RemoteVideo, sink: BinaryIO, *,
                       max_bytes: int | None = None) -> Download:
        headers = self.auth_headers() if remote.authenticated else {}
        async with self.admission:
            return await stream_to(self.client, remote.url, sink, headers=headers,
                                   trusted_hosts=self.trusted_hosts, max_bytes=max_bytes)

    async def recover(self, request: SubmitRequest, idempotency_key: str,
                      since: datetime, *, taken: Taken = nothing_taken) -> JobHandle | None:
        """The job a submit that died mid-flight created, if the provider can say; None when
        it answers that there is none. A lookup that cannot answer, and protocols without a
        lookup, raise SubmitUnknown: never "none"."""
        raise SubmitUnknown(f"{self.protocol} has no lookup for an interrupted submit")

    async def charges(self, since: datetime, until: datetime) -> list[ProviderCharge] | None:
        """This key's charges in [since, until), job by job, from the provider's usage API;
        None where the protocol documents none that names jobs (reconciliation then says the
        provider cannot be reconciled job by job)."""
        return None

    async def daily_costs(self, since: datetime, until: datetime) -> dict[date, Decimal] | None:
        """What the key's organization was charged per UTC day, where the protocol has only
        day-level costs (no job named); None where it has none at all."""
        return None

    def echo_signature(self, request: SubmitRequest) -> str | None:
        """For a protocol whose lookup matches what the provider echoes back (no idempotency
        key), the signature whose sends must be serialised; None where a lookup is exact (or
        there is none)."""
        return None

    @abc.abstractmethod
    async def cancel(self, handle: JobHandle) -> bool: ...

    async def delete_output(self, handle: JobHandle) -> bool:
        """Delete the provider's copy of a finished output (retention, once archived); False
        where the protocol has no delete and the copy simply expires."""
        return False

    @abc.abstractmethod
    async def _submit(self, request: SubmitRequest, idempotency_key: str, *,
                      taken: Taken) -> JobHandle: ...

    @abc.abstractmethod
    async def _status(self, handle: JobHandle) -> JobStatus: ...

    @abc.abstractmethod
    async def _result(self, handle: JobHandle) -> RemoteVideo: ...

    @abc.abstractmethod
    def auth_headers(self) -> dict[str, str]: ...

    # shared helpers
    def handle(self, job_id: str, **extra: str) -> JobHandle:
        return JobHandle(protocol=self.protocol, endpoint=self.base_url,
                         endpoint_kind=self.endpoint.kind, account=self.account,
                         credential_ref=self.credential.ref, job_id=job_id,
                         submitted_at=datetime.now(UTC), extra=extra)

    async def send_once(self, url: str, **kwargs: Any) -> httpx.Response:
        """A paid POST on a protocol with no lookup: sent exactly once. No answer, or a 5xx,
        leaves the outcome unknown — SubmitUnknown, a possible charge, never a resend."""
        try:
            response = await self.send("POST", url, **kwargs)
        except Transient:
            raise SubmitUnknown(f"{self.protocol} submit got no answer; it may be charged and "
                                "there is no lookup to tell") from None
        if response.status_code >= 500:
            raise SubmitUnknown(f"{self.protocol} submit answered {response.status_code}; it "
                                "may have started and there is no lookup to tell")
        return response

    async def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request with the credential; transport failures become Transient."""
        headers = {**self.auth_headers(), **kwargs.pop("headers", {})}
        async with self.admission:
            try:
                return await self.client.request(method, url, headers=headers, **kwargs)
            except httpx.HTTPError as err:
                raise http.transport_error(err) from None
