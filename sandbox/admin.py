"""Admin endpoints under /_admin (loopback only): knobs, clock, faults, usage, counters, request
counts, webhook deliveries and signing secrets — how a test sets up the world it needs and reads
the bill it must reconcile against."""

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sandbox.faults import Fault, FaultQueue
from sandbox.knobs import Knobs
from sandbox.requests import RequestCounts
from sandbox.service import Sandbox, account_of
from sandbox.signing import account_secret
from sandbox.webhooks import Webhooks


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in (
                "api_keys", "kling_keys", "account_status"):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Admin:
    def __init__(self, sandbox: Sandbox, faults: FaultQueue, webhooks: Webhooks,
                 requests: RequestCounts | None = None):
        self.sandbox, self.faults, self.webhooks = sandbox, faults, webhooks
        self.requests = requests or RequestCounts()

    def routes(self) -> list[Route]:
        return [
            Route("/health", self.health, methods=["GET"]),
            Route("/knobs", self.get_knobs, methods=["GET"]),
            Route("/knobs", self.patch_knobs, methods=["POST"]),
            Route("/reset", self.reset, methods=["POST"]),
            Route("/clock", self.clock, methods=["POST"]),
            Route("/faults", self.add_faults, methods=["POST"]),
            Route("/faults", self.clear_faults, methods=["DELETE"]),
            Route("/usage", self.usage, methods=["GET"]),
            Route("/stats", self.stats, methods=["GET"]),
            Route("/requests", self.request_counts, methods=["GET"]),
            Route("/jobs", self.jobs, methods=["GET"]),
            Route("/jobs/{job_id}", self.job, methods=["GET"]),
            Route("/webhooks", self.deliveries, methods=["GET"]),
            Route("/webhooks/secret", self.webhook_secret, methods=["GET"]),
        ]

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "state": str(self.sandbox.state),
                             "now": self.sandbox.clock.now_dt().isoformat(),
                             "time_scale": self.sandbox.knobs.time_scale})

    async def get_knobs(self, request: Request) -> JSONResponse:
        return JSONResponse(self.sandbox.knobs.model_dump(mode="json"))

    async def patch_knobs(self, request: Request) -> JSONResponse:
        patch = await request.json()
        try:
            knobs = Knobs.model_validate(_merge(self.sandbox.knobs.model_dump(mode="json"),
                                                patch))
        except ValidationError as err:
            return JSONResponse({"error": err.errors(include_url=False)}, status_code=422)
        self.sandbox.set_knobs(knobs)
        return JSONResponse(knobs.model_dump(mode="json"))

    async def reset(self, request: Request) -> JSONResponse:
        """Defaults again (`?calm=1`: with every random misbehaviour off), keeping time_scale."""
        knobs = Knobs(time_scale=self.sandbox.knobs.time_scale)
        if request.query_params.get("calm") in ("1", "true"):
            knobs = knobs.calm()
        self.sandbox.set_knobs(knobs)
        self.sandbox.set_clock(0.0)
        self.faults.clear()
        self.webhooks.clear()
        self.requests.clear()
        return JSONResponse(knobs.model_dump(mode="json"))

    async def clock(self, request: Request) -> JSONResponse:
        data = await request.json()
        if "now" in data:
            when = datetime.fromisoformat(data["now"])
            self.sandbox.set_clock(when.timestamp() - self.sandbox.clock.now()
                                   + self.sandbox.clock.offset_s)
        elif "advance_s" in data:
            self.sandbox.set_clock(self.sandbox.clock.offset_s + float(data["advance_s"]))
        return JSONResponse({"now": self.sandbox.clock.now_dt().isoformat()})

    async def add_faults(self, request: Request) -> JSONResponse:
        try:
            faults = TypeAdapter(list[Fault]).validate_python(await request.json())
        except ValidationError as err:
            return JSONResponse({"error": err.errors(include_url=False)}, status_code=422)
        self.faults.add(faults)
        return JSONResponse({"queued": len(faults)})

    async def clear_faults(self, request: Request) -> JSONResponse:
        self.faults.clear()
        return JSONResponse({"queued": 0})

    async def usage(self, request: Request) -> JSONResponse:
        rows = self.sandbox.usage()
        for name in ("account", "protocol", "job_id"):
            value = request.query_params.get(name)
            if value:
                rows = [r for r in rows if r[name] == value]
        return JSONResponse({"rows": rows,
                             "total_usd": f"{sum(float(r['usd']) for r in rows):.6f}"})

    async def jobs(self, request: Request) -> JSONResponse:
        """Every job created (`?prompt=` keeps those whose prompt contains it): how a test
        counts what was sent, whatever reelflow believes."""
        text = request.query_params.get("prompt", "")
        return JSONResponse({"jobs": [
            {"id": j.id, "protocol": j.protocol, "account": j.account, "prompt": j.prompt,
             "created_at": j.created_at, "external_id": j.external_id}
            for j in self.sandbox.store.jobs() if text in j.prompt]})

    async def job(self, request: Request) -> JSONResponse:
        """A job's whole timeline (when it really finished: what detection delay is measured
        against)."""
        job = self.sandbox.store.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(self.sandbox.settle(job).model_dump(mode="json"))

    async def stats(self, request: Request) -> JSONResponse:
        return JSONResponse(self.sandbox.store.counters())

    async def request_counts(self, request: Request) -> JSONResponse:
        """Provider API requests received since the start or the last reset, per protocol
        prefix and per method (sandbox/requests.py); /_admin is not counted."""
        return JSONResponse(self.requests.snapshot())

    async def deliveries(self, request: Request) -> JSONResponse:
        """Every webhook delivery (`?job_id=` keeps one job's) with its state — pending,
        sending, delivered, failed (out of attempts), dropped (the knob, or a reset) — and its
        attempts: {attempt, at, status_code, error}."""
        return JSONResponse({"deliveries": self.webhooks.deliveries(
            request.query_params.get("job_id"))})

    async def webhook_secret(self, request: Request) -> JSONResponse:
        """An AtlasCloud account's webhook signing secret, by its API key (`?key=`) or its
        account name (`?account=`): what a relay verifying its deliveries is configured with."""
        key, account = request.query_params.get("key"), request.query_params.get("account")
        if key:
            account = account_of("atlascloud:" + key)
        if not account:
            return JSONResponse({"error": "give key or account"}, status_code=400)
        return JSONResponse({"account": account, "secret": account_secret(account)})
