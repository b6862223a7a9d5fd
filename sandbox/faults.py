"""Misbehaviour on demand: 5xx bursts, 429s, connection resets, slow answers, truncated bodies.

One-shot faults are queued through POST /_admin/faults and consumed by the next matching
requests, so a test says exactly which call misbehaves; the `*_rate` knobs add seeded random
faults for benchmarks and the demo. A reset lets the request take effect (a job may have been
created) and then drops the connection after the headers — the ambiguous outcome a client must
survive without paying twice. A slow fault answers only after `delay_s`, past a client timeout.
"""

import asyncio
import json
import threading
from typing import Any

from pydantic import BaseModel, Field

PREFIXES = {"/openai": "openai", "/fal": "fal", "/kling": "kling", "/atlascloud": "atlascloud",
            "/files": "files"}


class Fault(BaseModel):
    kind: str = Field(pattern="^(5xx|429|reset|slow|truncate)$")
    protocol: str | None = Field(default=None, description="openai | fal | kling | files")
    method: str | None = None
    path: str | None = Field(default=None, description="Substring the path must contain.")
    path_ends: bool = Field(default=False, description="The path must end with `path` (the "
                            "listing /videos, not /videos/{id}).")
    count: int = Field(default=1, ge=1)
    status: int = 503
    delay_s: float = 5.0


def _error_body(protocol: str, status: int, message: str) -> dict[str, Any]:
    if protocol == "openai":
        kind = "server_error" if status >= 500 else "requests"
        code = None if status >= 500 else "rate_limit_exceeded"
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
    if protocol == "kling":
        code = {500: 5000, 503: 5001, 504: 5002, 429: 1302}.get(status, 5000)
        return {"code": code, "message": message, "request_id": "fault"}
    if protocol == "atlascloud":
        return {"code": status, "message": message}
    return {"detail": message}


class FaultQueue:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, protocol: str, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if ((fault.protocol in (None, protocol)) and fault.method in (None, method)
                        and (fault.path is None or (path.endswith(fault.path) if fault.path_ends
                                                    else fault.path in path))):
                    fault.count -= 1
                    if fault.count == 0:
                        self._faults.remove(fault)
                    return fault.model_copy()
        return None


class FaultMiddleware:
    """ASGI middleware applying queued and random faults by path prefix."""

    def __init__(self, app, sandbox, queue: FaultQueue):
        self.app, self.sandbox, self.queue = app, sandbox, queue

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        protocol = next((p for prefix, p in PREFIXES.items() if path.startswith(prefix)), None)
        if protocol is None:
            return await self.app(scope, receive, send)
        self.sandbox.store.count(f"requests:{protocol}")
        fault = self.queue.take(protocol, scope["method"], path) or self._random(protocol, path)
        if fault is None:
            return await self.app(scope, receive, send)
        self.sandbox.store.count(f"fault:{fault.kind}:{protocol}")
        if fault.kind in ("5xx", "429"):
            status = 429 if fault.kind == "429" else fault.status
            body = json.dumps(_error_body(protocol, status, "injected fault")).encode()
            headers = [(b"content-type", b"application/json")]
            if status == 429 and protocol != "kling":
                retry = self.sandbox.scaled(self.sandbox.world(protocol).retry_after_s)
                headers.append((b"retry-after", str(max(1, round(retry))).encode()))
                headers.append((b"retry-after-ms", str(max(1, int(retry * 1000))).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return None
        if fault.kind == "truncate":
            scope = {**scope, "reelflow_truncate": True}
            return await self.app(scope, receive, send)
        if fault.kind == "slow":
            held: list[dict] = []

            async def hold(message):
                held.append(message)

            await self.app(scope, receive, hold)
            await asyncio.sleep(fault.delay_s)
            for message in held:
                await send(message)
            return None

        async def reset(message):  # kind == "reset"
            if message["type"] == "http.response.body":
                raise ConnectionResetError("injected reset after the request took effect")
            await send(message)

        return await self.app(scope, receive, reset)

    def _random(self, protocol: str, path: str) -> Fault | None:
        """Seeded random 5xx and resets on API calls (truncation is the file host's own)."""
        if protocol == "files":
            return None
        world = self.sandbox.world(protocol)
        if not (world.error_5xx_rate or world.reset_rate):
            return None
        draw = self.sandbox.rng(f"fault:{protocol}").random()
        if draw < world.error_5xx_rate:
            return Fault(kind="5xx")
        if draw < world.error_5xx_rate + world.reset_rate:
            return Fault(kind="reset")
        return None
