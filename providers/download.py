"""Streaming downloads: chunks straight to the sink, sha256 on the fly, Range resume after a
truncated body, size and content-type checks, bounded redirects, and a refusal to fetch private
or loopback addresses (other than the configured sandbox). Memory stays flat whatever the size.
"""

import asyncio
import hashlib
import ipaddress
import socket
import time
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from models import Download
from providers.errors import Expired, InvalidRequest, Transient
from providers.http import backoff_s, retry_after_s

MAX_REDIRECTS = 5
MAX_RESUMES = 8
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
    started = time.monotonic()
    digest = hashlib.sha256()
    written, resumes, attempt = 0, 0, 0
    content_type = ""
    while True:
        request_headers = dict(headers or {})
        if written:
            request_headers["Range"] = f"bytes={written}-"
        try:
            response, final_url = await _open(client, url, request_headers, trusted_hosts)
            try:
                if response.status_code in (404, 410, 403) and written == 0:
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
                if written and response.status_code == 200:
                    sink.seek(0)
                    sink.truncate()
                    digest, written = hashlib.sha256(), 0
                elif written and not response.headers.get("content-range", "").startswith(
                        f"bytes {written}-"):
                    raise Transient("the server resumed at the wrong offset")
                expected = _total(response, written)
                if max_bytes is not None and expected is not None and expected > max_bytes:
                    raise InvalidRequest(f"the file is {expected} bytes, over {max_bytes}")
                async for chunk in response.aiter_bytes():
                    if max_bytes is not None and written + len(chunk) > max_bytes:
                        raise InvalidRequest(f"the file passed {max_bytes} bytes")
                    sink.write(chunk)
                    digest.update(chunk)
                    written += len(chunk)
            finally:
                await response.aclose()
            if expected is not None and written < expected:
                raise httpx.RemoteProtocolError("body shorter than its length")
            sink.flush()
            return Download(bytes=written, sha256=digest.hexdigest(),
                            content_type=content_type.split(";")[0], resumed=resumes,
                            seconds=time.monotonic() - started)
        except (httpx.TransportError, Transient) as err:
            wait = getattr(err, "retry_after_s", None) or backoff_s(attempt, 0.2, 10)
            if time.monotonic() - started + wait > deadline_s or attempt >= MAX_RESUMES:
                raise Transient(f"download failed after {attempt + 1} attempts: "
                                f"{type(err).__name__}") from None
            attempt += 1
            resumes += 1 if written else 0
            await asyncio.sleep(wait)


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
