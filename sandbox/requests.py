"""How many provider API requests the sandbox received, per protocol prefix and method: what a
benchmark divides by its jobs (`bench webhooks`: a polled job's status requests against a woken
one's). GET /_admin/requests reads them; POST /_admin/reset sets them to zero.

Counted as they come in, before any fault is applied (a request answered 429 or 5xx by a fault
was still sent): /openai, /fal, /kling, /atlascloud and the file host /files. /_admin and any
other path are not counted. Kept in memory (the store's persistent `requests:*` counters in
/_admin/stats survive a reset; these do not), one process's figures.
"""

import threading
from collections import Counter

from sandbox.faults import PREFIXES


class RequestCounts:
    """Requests per protocol prefix ("fal") and per method and prefix ("POST /fal")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def count(self, method: str, path: str) -> None:
        prefix = next((p for p in PREFIXES if path == p or path.startswith(p + "/")), None)
        if prefix is None:
            return
        with self._lock:
            self._counts[PREFIXES[prefix]] += 1
            self._counts[f"{method} {prefix}"] += 1

    def snapshot(self) -> dict:
        """{"total": n, "by_prefix": {"fal": n, ...}, "by_method": {"GET /fal": n, ...}}."""
        with self._lock:
            counts = dict(self._counts)
        by_prefix = {name: counts.get(name, 0) for name in PREFIXES.values()}
        return {"total": sum(by_prefix.values()), "by_prefix": by_prefix,
                "by_method": {k: v for k, v in sorted(counts.items()) if " " in k}}

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


class RequestCountMiddleware:
    """ASGI middleware counting every HTTP request into `counts` (the outermost layer: a
    faulted request counts too)."""

    def __init__(self, app, counts: RequestCounts):
        self.app, self.counts = app, counts

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.counts.count(scope["method"], scope["path"])
        return await self.app(scope, receive, send)
