"""Serving bytes like a CDN: Content-Length, Range (206), expiry — and, on request, a body cut
short after its headers promised more (a truncated download)."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

CHUNK = 256 * 1024


class Truncated(Exception):
    """Raised mid-body so the server drops the connection before the promised length."""


def _chunks(path: Path, start: int, length: int, cut_after: int | None) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        sent = 0
        with path.open("rb") as handle:
            handle.seek(start)
            while sent < length:
                if cut_after is not None and sent >= cut_after:
                    raise Truncated(f"cut after {sent} bytes")
                data = handle.read(min(CHUNK, length - sent,
                                       (cut_after - sent) if cut_after is not None else CHUNK))
                if not data:
                    break
                sent += len(data)
                yield data
            if cut_after is not None:
                raise Truncated(f"cut after {sent} bytes")

    return body()


def serve(request: Request, path: Path, media_type: str, *, truncate: bool = False) -> Response:
    """The file, whole or the asked Range; `truncate` stops halfway through the body."""
    size = path.stat().st_size
    headers = {"accept-ranges": "bytes", "content-type": media_type}
    start, end, status = 0, size - 1, 200
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", request.headers.get("range", "").strip())
    if match and (match.group(1) or match.group(2)):
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
        else:
            start, end = max(0, size - int(match.group(2))), size - 1
        if start >= size or start > end:
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        status = 206
        headers["content-range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1
    headers["content-length"] = str(length)
    cut = length // 2 if truncate else None
    return StreamingResponse(_chunks(path, start, length, cut), status_code=status,
                             headers=headers, media_type=media_type)
