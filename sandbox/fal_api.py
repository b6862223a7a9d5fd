"""fal's queue API under /fal: submit on /{owner}/{app}/{path}, status (202 while queued or in
progress, 200 once completed), result, cancel; URLs built on owner/app; `Key` auth; `detail`
errors; Kling v3 argument sets; output `{"video": {url, content_type, file_name, file_size}}`
served by the sandbox's own file host. The official `fal_client` works against it over TLS.

A submit with `?fal_webhook=<url>` gets one signed POST at the terminal state (sandbox/webhooks.py):
`{request_id, gateway_request_id, status: "OK"|"ERROR", payload, error}`, `payload` the result (or
its `{detail}` error); the public key is a JWKS at /fal/.well-known/jwks.json (fal's own:
https://rest.alpha.fal.ai/.well-known/jwks.json)."""

import base64
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.errors import (
    AccountProblem,
    NotFound,
    SandboxError,
    Unauthorized,
    Unprocessable,
)
from sandbox.jobs import Job, Shot
from sandbox.service import Sandbox, account_of
from sandbox.webhooks import Delivery, Webhooks
from sandbox.wire import body, callback_url, guarded, image_from_base64

# the Kling apps fal documents: v1.x-v3 (and turbo) standard/pro/master, v3's 4K, the o-series
ENDPOINT = re.compile(r"^(?P<version>v[\d.]+(?:-turbo)?|o\d+)/"
                      r"(?P<variant>standard|pro|master|4k)/(?P<mode>text|image)-to-video$")
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
HEIGHTS = {"standard": 720, "pro": 1080, "master": 1080, "4k": 2160}


def error(err: SandboxError, detail: Any = None) -> JSONResponse:
    status = err.status
    if isinstance(err, AccountProblem) and err.status != 401:
        status = 403  # fal locks the user ("Exhausted balance", ...) with 403; a bad key is 401
    headers = {}
    if err.retry_after_s is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after_s)))
    return JSONResponse({"detail": detail if detail is not None else err.message},
                        status_code=status, headers=headers)


POLICY_TYPE = "content_policy_violation"


def _error_type(job: Job) -> str:
    return POLICY_TYPE if job.failure_code == "policy" else (job.failure_code or "cancelled")


def _policy_detail(job: Job) -> list[dict[str, Any]]:
    return [{"loc": ["body", "prompt"], "msg": job.failure_message, "type": POLICY_TYPE,
             "url": "https://docs.fal.ai/errors#" + POLICY_TYPE, "input": job.prompt}]


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def _instant(text: str | None, default: float) -> float:
    if not text:
        return default
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _many(query, name: str) -> set[str]:
    """A Platform API list parameter: repeated, or comma-separated."""
    return {v for value in query.getlist(name) for v in value.split(",") if v}


BILLING_RANGE_S = 90 * 86400


def _window(query, now: float, *, default_limit: int) -> tuple[float, float, int, int]:
    """start, end (default: the last 24 h), limit and cursor offset of a Platform API list."""
    try:
        return (_instant(query.get("start"), now - 86400), _instant(query.get("end"), now + 1),
                int(query.get("limit", str(default_limit))), int(query.get("cursor") or 0))
    except ValueError:
        raise _invalid("start", "start and end are ISO 8601 instants; limit and cursor "
                                "integers") from None


def _invalid(field: str, message: str) -> Unprocessable:
    err = Unprocessable(message)
    err.loc = ["body", field]  # type: ignore[attr-defined]
    return err


class FalQueue:
    def __init__(self, sandbox: Sandbox, webhooks: Webhooks):
        self.sandbox, self.webhooks = sandbox, webhooks
        webhooks.register("fal", self)

    def routes(self) -> list[Route]:
        base = "/{owner}/{app}/requests/{request_id}"
        return [
            Route("/.well-known/jwks.json", self.jwks, methods=["GET"]),
            Route("/platform/v1/models/requests/by-endpoint", self.handle(self.requests),
                  methods=["GET"]),
            Route("/platform/v1/models/billing-events", self.handle(self.billing_events),
                  methods=["GET"]),
            Route(base + "/status", self.handle(self.status), methods=["GET"]),
            Route(base + "/cancel", self.handle(self.cancel), methods=["PUT"]),
            Route(base, self.handle(self.result), methods=["GET"]),
            Route("/{owner}/{app}/{path:path}", self.handle(self.submit), methods=["POST"]),
        ]

    def handle(self, endpoint):
        async def wrapped(request: Request) -> Response:
            try:
                account, tier = self.auth(request)
                return await guarded(endpoint(request, account, tier))
            except Unprocessable as err:
                loc = getattr(err, "loc", ["body"])
                return error(err, [{"loc": loc, "msg": err.message, "type": "value_error"}])
            except SandboxError as err:
                return error(err)
        return wrapped

    def auth(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if not header.startswith("Key ") or not header[4:].strip():
            raise Unauthorized("Missing or invalid Authorization header: expected 'Key <key>'")
        key = header[4:].strip()
        return account_of("fal:" + key), self.sandbox.tier_for_key("fal", key)

    def urls(self, request: Request, job: Job) -> dict[str, str]:
        base = f"{str(request.base_url).rstrip('/')}/fal/{job.extra['app_id']}/requests/{job.id}"
        return {"request_id": job.id, "response_url": base, "status_url": base + "/status",
                "cancel_url": base + "/cancel"}

    async def submit(self, request: Request, account: str, tier: str) -> Response:
        owner, app = request.path_params["owner"], request.path_params["app"]
        path = request.path_params["path"]
        match = ENDPOINT.match(path)
        if f"{owner}/{app}" != "fal-ai/kling-video" or not match:
            raise NotFound(f"Application '{owner}/{app}/{path}' not found")
        data = await body(request)
        spec = self._arguments(match, data)
        hook = callback_url(request.query_params.get("fal_webhook"), "fal_webhook",
                            "query")
        # fal takes the request and reports a content-policy refusal at status/result time
        # (a COMPLETED request with an error, a 422 result), never at submit
        job = self.sandbox.submit(
            protocol="fal", family=path, account=account, tier=tier, job_id=str(uuid.uuid4()),
            extra={"app_id": f"{owner}/{app}", "endpoint": f"{owner}/{app}/{path}",
                   "input": data}, policy_as_failure=True, **spec,
        )
        now = self.sandbox.clock.now()
        state = job.state(now)
        answer = {"status": "IN_QUEUE" if state == "queued" else "IN_PROGRESS",
                  **self.urls(request, job), "queue_position": job.queue_position(now)}
        if hook:
            self.webhooks.subscribe(job, hook, str(request.base_url).rstrip("/"))
            answer["gateway_request_id"] = job.id
        return JSONResponse(answer)

    async def jwks(self, request: Request) -> Response:
        """The webhook signing key, public and unauthenticated as fal's own JWKS is."""
        return JSONResponse(self.webhooks.signer.jwks("fal"))

    # webhook deliveries (the Hook sandbox/webhooks.py calls)
    def events(self, job: Job) -> list[tuple[float, str]]:
        return job.transitions()[-1:]

    def callback(self, job: Job, at: float, base: str) -> dict[str, Any]:
        state = job.state(at)
        sent = {"request_id": job.id, "gateway_request_id": job.id}
        if state == "succeeded":
            return {**sent, "status": "OK", "payload": self._output(base, job), "error": None}
        if job.failure_code == "policy":
            return {**sent, "status": "ERROR", "payload": {"detail": _policy_detail(job)},
                    "error": "Invalid status code: 422"}
        return {**sent, "status": "ERROR",
                "payload": {"detail": job.failure_message or "cancelled"},
                "error": "Invalid status code: 500"}

    def headers(self, delivery: Delivery, body: bytes, timestamp: str) -> dict[str, str]:
        return self.webhooks.signer.fal(delivery.job_id, delivery.account, timestamp, body,
                                        wrong=delivery.wrong_signature)

    def _output(self, base: str, job: Job) -> dict[str, Any]:
        """The result of a succeeded request (renders its clip once)."""
        path = self.sandbox.video(job)
        return {"video": {"url": f"{base}/files/{job.id}.mp4", "content_type": "video/mp4",
                          "file_name": "output.mp4", "file_size": path.stat().st_size}}

    def _arguments(self, match: re.Match, data: dict[str, Any]) -> dict[str, Any]:
        v3 = match["version"].startswith(("v3", "v4", "o"))
        allowed = {str(d) for d in range(3, 16)} if v3 else {"5", "10"}
        prompt, shots_in = data.get("prompt"), data.get("multi_prompt")
        if bool(prompt) == bool(shots_in):
            raise _invalid("prompt", "give exactly one of prompt and multi_prompt")
        if shots_in is not None and not v3:
            raise _invalid("multi_prompt", "multi_prompt needs v3 or later")
        duration = data.get("duration", "5")
        shots: list[Shot] = []
        if shots_in:
            if not isinstance(shots_in, list) or not 1 <= len(shots_in) <= 6:
                raise _invalid("multi_prompt", "multi_prompt holds 1 to 6 shots")
            for shot in shots_in:
                d = str(shot.get("duration", ""))
                if not shot.get("prompt") or d not in allowed:
                    raise _invalid("multi_prompt", f"each shot needs a prompt and a duration "
                                                   f"in {sorted(allowed, key=int)}")
                shots.append(Shot(text=shot["prompt"], seconds=int(d)))
            total = sum(s.seconds for s in shots)
            if "duration" in data and str(duration) != str(total):
                raise _invalid("duration", f"duration {duration} differs from the shots' sum "
                                           f"{total}")
            seconds = total
        else:
            if not isinstance(duration, str) or duration not in allowed:
                raise _invalid("duration", f"duration must be one of "
                                           f"{sorted(allowed, key=int)} (a string)")
            seconds = int(duration)
            shots = [Shot(text=prompt, seconds=seconds)]
        short = HEIGHTS[match["variant"]]
        image = None
        if match["mode"] == "image":
            aspect, image = self._image_aspect(data)
        else:
            aspect = data.get("aspect_ratio", "16:9")
            if aspect not in ASPECTS:
                raise _invalid("aspect_ratio", "aspect_ratio must be 16:9, 9:16 or 1:1")
        a, b = ASPECTS[aspect]
        width, height = ((round(short * a / b / 2) * 2, short) if a >= b
                         else (short, round(short * b / a / 2) * 2))
        sound = data.get("generate_audio", True)  # fal's Kling apps: on unless turned off
        if not isinstance(sound, bool):
            raise _invalid("generate_audio", "generate_audio must be true or false")
        return {"model": f"kling-video/{match['version']}/{match['variant']}",
                "kind": "generate", "prompt": prompt or shots[0].text, "shots": shots,
                "seconds": seconds, "total_seconds": seconds, "width": width, "height": height,
                "resolution": {720: "720p", 1080: "1080p"}.get(short, "4k"), "audio": sound,
                "image": image}

    @staticmethod
    def _image_aspect(data: dict[str, Any]) -> tuple[str, bytes]:
        """The input image's aspect name and its bytes as sent."""
        field = "start_image_url" if "start_image_url" in data else "image_url"
        url = data.get(field)
        if not isinstance(url, str) or not url:
            raise _invalid(field, "an image URL or data URI is required")
        if not url.startswith("data:"):
            raise _invalid(field, "the sandbox cannot fetch remote images: send a data URI")
        image = image_from_base64(url)
        ratio = image.width / image.height
        for name, (a, b) in ASPECTS.items():
            if abs(ratio / (a / b) - 1) <= 0.01:
                return name, base64.b64decode(url.split(",", 1)[-1])
        raise _invalid(field, f"image aspect ratio {image.width}:{image.height} is not one of "
                              "16:9, 9:16, 1:1")

    def _own(self, request: Request, account: str) -> Job:
        job = self.sandbox.store.get(request.path_params["request_id"])
        app = f"{request.path_params['owner']}/{request.path_params['app']}"
        if job is None or job.protocol != "fal" or job.account != account or (
                job.extra.get("app_id") != app):
            raise NotFound("Request not found")
        return self.sandbox.settle(job)

    async def requests(self, request: Request, account: str, tier: str) -> Response:
        """fal's Platform API request listing (GET /v1/models/requests/by-endpoint): this
        key's requests to the endpoints named, sent since `start` (default 24 h ago), with
        their inputs and outputs under `expand=payloads`; newest first by sent_at here (fal's
        own default orders by ended_at), paged by an opaque cursor."""
        query = request.query_params
        endpoints = _many(query, "endpoint_id")
        if not endpoints:
            raise _invalid("endpoint_id", "endpoint_id is required")
        now = self.sandbox.clock.now()
        start, end, limit, offset = _window(query, now, default_limit=50)
        if not 1 <= limit <= 100:
            raise _invalid("limit", "limit is 1 to 100")
        payloads = "payloads" in _many(query, "expand")
        jobs = [j for j in reversed(self.sandbox.store.jobs("fal", account))
                if j.extra.get("endpoint") in endpoints and start <= j.created_at < end]
        page = jobs[offset:offset + limit]
        items = [self._request_item(j, now, payloads) for j in page]
        more = offset + limit < len(jobs)
        return JSONResponse({"items": items, "has_more": more,
                             "next_cursor": str(offset + limit) if more else None})

    async def billing_events(self, request: Request, account: str, tier: str) -> Response:
        """fal's per-request billing events (GET /v1/models/billing-events): every charge of
        this key's requests in [start, end), filtered by endpoint_id or request_id, paged by
        cursor; costs in USD."""
        query = request.query_params
        start, end, limit, offset = _window(query, self.sandbox.clock.now(), default_limit=1000)
        if end - start > BILLING_RANGE_S:  # fal: "Date range capped at 90 days per request"
            raise _invalid("start", "the date range is capped at 90 days per request")
        endpoints, ids = _many(query, "endpoint_id"), _many(query, "request_id")
        mine = {j.id: j for j in self.sandbox.store.jobs("fal", account)}
        events = [u for u in self.sandbox.usage() if u["job_id"] in mine
                  and start <= float(u["at"]) < end
                  and (not ids or u["job_id"] in ids)
                  and (not endpoints or mine[u["job_id"]].extra.get("endpoint") in endpoints)]
        page = events[offset:offset + limit]
        items = [{"request_id": u["job_id"],
                  "endpoint_id": mine[u["job_id"]].extra.get("endpoint"),
                  "timestamp": _iso(float(u["at"])), "output_units": float(u["seconds"]),
                  "unit_price": float(u["usd"]) / float(u["seconds"]) if float(
                      u["seconds"]) else None, "percent_discount": 0,
                  "cost_subtotal": float(u["usd"]), "cost_discount": 0,
                  "cost_total": float(u["usd"]),
                  "cost_estimate_nano_usd": round(float(u["usd"]) * 1e9)} for u in page]
        more = offset + limit < len(events)
        return JSONResponse({"billing_events": items, "has_more": more,
                             "next_cursor": str(offset + limit) if more else None})

    def _request_item(self, job: Job, now: float, payloads: bool) -> dict[str, Any]:
        state = job.state(now)
        ended = state in ("succeeded", "failed", "cancelled")
        item = {"request_id": job.id, "endpoint_id": job.extra["endpoint"],
                "sent_at": _iso(job.created_at), "started_at": _iso(job.started_at),
                "ended_at": _iso(job.completes_at) if ended else None,
                "status_code": (200 if state == "succeeded" else 500) if ended else None,
                "duration": round(job.completes_at - job.started_at, 3) if ended else None}
        if payloads:
            item["json_input"] = job.extra.get("input")
            item["json_output"] = None
        return item

    async def status(self, request: Request, account: str, tier: str) -> Response:
        job = self._own(request, account)
        now = self.sandbox.clock.now()
        state = job.state(now)
        logs = request.query_params.get("logs") in ("1", "true", "True")
        body: dict[str, Any] = {**self.urls(request, job)}
        if state == "queued":
            return JSONResponse({**body, "status": "IN_QUEUE",
                                 "queue_position": job.queue_position(now)}, status_code=202)
        log = [{"message": f"generating: {job.progress(now)}%", "level": "INFO",
                "source": "user", "timestamp": self.sandbox.clock.now_dt().isoformat(),
                "labels": {}}]
        if state == "running":
            return JSONResponse({**body, "status": "IN_PROGRESS", "metrics": {},
                                 "logs": log if logs else None}, status_code=202)
        body.update({"status": "COMPLETED", "logs": log if logs else None,
                     "metrics": {"inference_time": round(job.completes_at - job.started_at,
                                                         3)}})
        if state != "succeeded":
            body.update({"error": job.failure_message or "cancelled",
                         "error_type": _error_type(job)})
        return JSONResponse(body, status_code=200)

    async def result(self, request: Request, account: str, tier: str) -> Response:
        job = self._own(request, account)
        state = job.state(self.sandbox.clock.now())
        if state in ("queued", "running"):
            return JSONResponse({"detail": "Request is still in progress"}, status_code=400)
        if job.failure_code == "policy":  # fal's input/policy error: 422 with detail
            return JSONResponse({"detail": _policy_detail(job)}, status_code=422)
        if state != "succeeded":
            return JSONResponse({"detail": job.failure_message or "cancelled"},
                                status_code=500,
                                headers={"x-fal-error-type": _error_type(job)})
        return JSONResponse(await run_in_threadpool(
            self._output, str(request.base_url).rstrip("/"), job))

    async def cancel(self, request: Request, account: str, tier: str) -> Response:
        job = self._own(request, account)
        if job.state(self.sandbox.clock.now()) in ("queued", "running"):
            self.sandbox.cancel(job)
            self.webhooks.poke(job.id)
            return JSONResponse({"status": "CANCELLATION_REQUESTED"}, status_code=202)
        return JSONResponse({"status": "ALREADY_COMPLETED"}, status_code=400)
