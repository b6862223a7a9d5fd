"""The adapters' HTTP discipline: one AsyncClient per adapter with timeouts and limits chosen on
purpose, and retries for calls that cannot pay (status, result, download) within one deadline,
with exponential backoff and full jitter, honouring Retry-After and retry-after-ms.

A paid submit never goes through `retrying`: its ambiguity is resolved by each adapter's lookup.
"""

import asyncio
import functools
import os
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import certifi
import httpx

from providers.errors import RateLimited, Transient

T = TypeVar("T")

# Connect fast or fail; a status call answers in well under 30 s; downloads stream in chunks,
# so `read` bounds the gap between chunks, not the whole file.
TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=10.0)
# Enough sockets for hundreds of jobs polled at adaptive intervals, not one per job. Callers
# are admitted to the pool (Adapter.admission) so none ever waits in it into a pool timeout.
CONNECTIONS = 32
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RETRY_DEADLINE_S = 120.0


@functools.cache
def tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """One verifying TLS context per CA bundle, shared by every client: building one loads the
    bundle (~50 ms of CPU), and each flow run builds its adapters afresh. The bundle: `cafile`,
    else SSL_CERT_FILE, else certifi's (as httpx itself chooses)."""
    return ssl.create_default_context(
        cafile=cafile or os.environ.get("SSL_CERT_FILE") or certifi.where())


def client(base_url: str, *, verify: object = True, timeout: httpx.Timeout = TIMEOUT,
           connections: int = CONNECTIONS) -> httpx.AsyncClient:
    verify = tls_context() if verify is True else verify
    limits = httpx.Limits(max_connections=connections,
                          max_keepalive_connections=max(1, connections // 2), keepalive_expiry=30)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, verify=verify,
                             follow_redirects=False)


def retry_after_s(response: httpx.Response) -> float | None:
    """retry-after-ms, then Retry-After (seconds or an HTTP date)."""
    if (ms := response.headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    if (value := response.headers.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def backoff_s(attempt: int, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


async def retrying(call: Callable[[], Awaitable[T]], *, deadline_s: float = RETRY_DEADLINE_S,
                   base_s: float = BACKOFF_BASE_S) -> T:
    """Run an idempotent call, retrying Transient and RateLimited until the deadline."""
    stop = time.monotonic() + deadline_s
    attempt = 0
    while True:
        try:
            return await call()
        except (Transient, RateLimited) as err:
            wait = getattr(err, "retry_after_s", None)
            wait = backoff_s(attempt, base_s) if wait is None else wait
            if time.monotonic() + wait > stop:
                raise
            attempt += 1
            await asyncio.sleep(wait)


def transport_error(err: httpx.HTTPError) -> Transient:
    """Timeouts, resets and broken bodies are transient; the text never carries headers."""
    return Transient(f"{type(err).__name__}: the connection failed or timed out")
