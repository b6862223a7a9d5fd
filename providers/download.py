"""Streaming downloads: chunks straight to the sink, sha256 on the fly, Range resume after a
truncated body, size and content-type checks, bounded redirects, and a refusal to fetch private
or loopback addresses (other than the configured sandbox). Memory stays flat whatever the size.

The body is written and hashed off the event loop, a batch of about BATCH_BYTES at a time in the
download's own thread, while the loop receives the next batch (hashlib and file writes release
the GIL): at most two batches are held. Batches are stored in order and every accepted byte is
stored before the body's loop is left, however it is left, so `_Stored.written` is what the sink
and the digest hold when a resume asks for the rest.
"""

import asyncio
import hashlib
import ipaddress
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from models import Download
from providers.errors import Expired, InvalidRequest, Transient
from providers.http import backoff_s, retry_after_s

MAX_REDIRECTS = 5
MAX_RESUMES = 8
BATCH_BYTES = 2 << 20
VIDEO_TYPES = ("video/", "application/octet-stream", "binary/octet-stream",
               "application/binary")


async def check_url(url: str, trusted_hosts: frozenset[str]) -> None:
    """https only, or the trusted (sandbox) host:port; no private, loopback or link-local
    targets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    if netloc in trusted_hosts:  # host:port as configured: another port is another server
        return
    if parts.scheme != "https":
        raise InvalidRequest(f"refusing to download over {parts.scheme or 'no scheme'}: "
                             f"only https (or the sandbox) is allowed")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as err:
        raise Transient(f"cannot resolve {host}: {err}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (address.is_private or address.is_loopback or address.is_link_local
                or address.is_reserved or address.is_multicast or address.is_unspecified):
            raise InvalidRequest(f"refusing to download from {host}: it resolves to a "
                                 f"non-public address ({address})")


async def stream_to(client: httpx.AsyncClient, url: str, sink: BinaryIO, *,
                    headers: dict[str, str] | None = None,
                    trusted_hosts: frozenset[str] = frozenset(),
                    max_bytes: int | None = None, deadline_s: float = 1800) -> Download:
    """Download `url` into `sink` (a binary file open for writing); resume with Range."""
    with ThreadPoolExecutor(1, thread_name_prefix="download") as store:
        return await _download(client, url, sink, store, headers=headers,
                               trusted_hosts=trusted_hosts, max_bytes=max_bytes,
                               deadline_s=deadline_s)


async def _download(client: httpx.AsyncClient, url: str, sink: BinaryIO,
                    store: ThreadPoolExecutor, *, headers: dict[str, str] | None,
                    trusted_hosts: frozenset[str], max_bytes: int | None,
                    deadline_s: float) -> Download:
    started = time.monotonic()
    stored = _Stored(hashlib.sha256())
    resumes, attempt = 0, 0
    content_type = ""
    while True:
        request_headers = dict(headers or {})
        if stored.written:
            request_headers["Range"] = f"bytes={stored.written}-"
        try:
            response, final_url = await _open(client, url, request_headers, trusted_hosts)
            try:
                if response.status_code in (404, 410, 403) and stored.written == 0:
                    raise Expired(f"the output at {urlsplit(final_url).netloc} is gone "
                                  f"({response.status_code})", status=response.status_code)
                if response.status_code == 429 or response.status_code >= 500:
                    err = Transient(f"download answered {response.status_code}",
                                    status=response.status_code)
                    err.retry_after_s = retry_after_s(response)  # type: ignore[attr-defined]
                    raise err
                if response.status_code not in (200, 206):
                    raise InvalidRequest(f"download answered {response.status_code}",
                                         status=response.status_code)
                content_type = response.headers.get("content-type", "")
                if not content_type.startswith(VIDEO_TYPES):
                    raise InvalidRequest(f"expected a video, got {content_type or 'no type'}")
                if stored.written and response.status_code == 200:
                    sink.seek(0)
                    sink.truncate()
                    stored = _Stored(hashlib.sha256())
                elif stored.written and not response.headers.get("content-range", "").startswith(
                        f"bytes {stored.written}-"):
                    raise Transient("the server resumed at the wrong offset")
                expected = _total(response, stored.written)
                if max_bytes is not None and expected is not None and expected > max_bytes:
                    raise InvalidRequest(f"the file is {expected} bytes, over {max_bytes}")
                await _store_body(response, sink, stored, max_bytes, store)
            finally:
                await response.aclose()
            if expected is not None and stored.written < expected:
                raise httpx.RemoteProtocolError("body shorter than its length")
            sink.flush()
            return Download(bytes=stored.written, sha256=stored.digest.hexdigest(),
                            content_type=content_type.split(";")[0], resumed=resumes,
                            seconds=time.monotonic() - started)
        except (httpx.TransportError, Transient) as err:
            wait = getattr(err, "retry_after_s", None) or backoff_s(attempt, 0.2, 10)
            if time.monotonic() - started + wait > deadline_s or attempt >= MAX_RESUMES:
                raise Transient(f"download failed after {attempt + 1} attempts: "
                                f"{type(err).__name__}") from None
            attempt += 1
            resumes += 1 if stored.written else 0
            await asyncio.sleep(wait)


@dataclass
class _Stored:
    """What the sink and the digest hold: the offset a resume asks from."""

    digest: "hashlib._Hash"
    written: int = 0


def _write(sink: BinaryIO, digest: "hashlib._Hash", batch: list[bytes]) -> None:
    """One write and one hash per batch: each call gives the GIL back to the loop once."""
    data = b"".join(batch)
    sink.write(data)
    digest.update(data)


async def _store_body(response: httpx.Response, sink: BinaryIO, stored: _Stored,
                      max_bytes: int | None, store: ThreadPoolExecutor) -> None:
    """Receive the body into `sink` and `stored`. A batch is handed to `store` when the one
    before it is stored; on any way out (a cut body, the cap, a cancel) the batch in flight is
    waited for and the rest stored here, nothing past the cap, before `stored.written` moves."""
    batch: list[bytes] = []
    size = 0
    accepted = stored.written
    in_flight: Future | None = None
    identity = response.headers.get("content-encoding", "identity").lower() == "identity"
    try:  # raw when nothing is to be decoded: no decoder and re-chunker between socket and file
        async for chunk in (response.aiter_raw() if identity else response.aiter_bytes()):
            if max_bytes is not None and accepted + len(chunk) > max_bytes:
                raise InvalidRequest(f"the file passed {max_bytes} bytes")
            batch.append(chunk)
            size += len(chunk)
            accepted += len(chunk)
            if size >= BATCH_BYTES:
                if in_flight is not None:
                    await asyncio.wrap_future(in_flight)
                in_flight = store.submit(_write, sink, stored.digest, batch)
                batch, size = [], 0
    finally:
        if in_flight is not None:
            in_flight.result()  # at most one batch's write: the offset must be true on return
        _write(sink, stored.digest, batch)
        stored.written = accepted


def _total(response: httpx.Response, offset: int) -> int | None:
    if response.status_code == 206:
        total = response.headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("content-length")
    return int(length) if length and length.isdigit() else None


async def _open(client: httpx.AsyncClient, url: str, headers: dict[str, str],
                trusted_hosts: frozenset[str]) -> tuple[httpx.Response, str]:
    """Send the GET, following at most MAX_REDIRECTS redirects, each one checked."""
    for _ in range(MAX_REDIRECTS + 1):
        await check_url(url, trusted_hosts)
        response = await client.send(client.build_request("GET", url, headers=headers),
                                     stream=True)
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            await response.aclose()
            url = urljoin(url, response.headers["location"])
            continue
        return response, url
    raise InvalidRequest(f"more than {MAX_REDIRECTS} redirects")
