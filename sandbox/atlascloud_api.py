"""AtlasCloud's unified API under /atlascloud: generateVideo (answering in either of the two
shapes its own pages show), prediction polling (`completed` or `succeeded` when done), and
uploadMedia; Bearer auth; one price per model. No idempotency key exists on this API.

As its docs say (atlascloud.ai/docs/en/errors): errors are `{code, msg, request_id, data}` with
an X-Request-ID header and no Retry-After; a prediction the content moderation refuses fails
with `data.error_code` 1039 (and, like every failure here, is not billed). Kling v3's variant is
chosen by the model id (`kwaivgi/kling-v3.0-std` makes 720p, `-pro` 1080p).

A submit with `webhook_url` gets one signed POST at the terminal state
(atlascloud.ai/docs/webhooks): `{event_type: "video.task.terminal", session_id,
status: "OK"|"ERROR", payload, error}`, `payload` the prediction as polling shows it, the event
also in X-AtlasCloud-Webhook-Event; signatures as sandbox/signing.py says, the JWKS at
/atlascloud/api/v1/webhooks/jwks.json."""

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.errors import (
    AccountProblem,
    BadRequest,
    NotFound,
    SandboxError,
    Unauthorized,
    Unprocessable,
)
from sandbox.jobs import Job, Shot
from sandbox.service import Sandbox, account_of
from sandbox.webhooks import Delivery, Webhooks
from sandbox.wire import body, callback_url, guarded, image_from_bytes, resolution_of

BOTH = {"text-to-video", "image-to-video"}
# model family -> (modes, durations, the resolution its id fixes, if it does)
MODELS: dict[str, tuple[set[str], set[int], str | None]] = {
    "bytedance/seedance-2.0": (BOTH, set(range(4, 16)), None),
    "alibaba/wan-2.6": (BOTH, {5, 10}, None),
    "kwaivgi/kling-v3.0-std": (BOTH, set(range(3, 16)), "720p"),
    "kwaivgi/kling-v3.0-pro": (BOTH, set(range(3, 16)), "1080p"),
}
SIDES = {"720p": (1280, 720), "1080p": (1920, 1080)}
MODERATION = 1039
TERMINAL_EVENT = "video.task.terminal"


def error(err: SandboxError) -> JSONResponse:
    status = err.status
    if isinstance(err, AccountProblem) and err.status != 401:  # a key it does not know: 401
        status = 402 if err.code == "exhausted" else 403
    request_id = uuid.uuid4().hex
    return JSONResponse({"code": status, "msg": err.message, "request_id": request_id,
                         "data": None}, status_code=status,
                        headers={"x-request-id": request_id})


class AtlasCloud:
    def __init__(self, sandbox: Sandbox, webhooks: Webhooks):
        self.sandbox, self.webhooks = sandbox, webhooks
        self.submits = 0
        webhooks.register("atlascloud", self)

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/webhooks/jwks.json", self.jwks, methods=["GET"]),
            Route("/api/v1/model/generateVideo", self.handle(self.generate), methods=["POST"]),
            Route("/api/v1/model/prediction/{id}", self.handle(self.prediction),
                  methods=["GET"]),
            Route("/api/v1/model/uploadMedia", self.handle(self.upload), methods=["POST"]),
        ]

    def handle(self, endpoint):
        async def wrapped(request: Request) -> Response:
            try:
                header = request.headers.get("authorization", "")
                if not header.startswith("Bearer ") or not header[7:].strip():
                    raise Unauthorized("missing or invalid API key")
                key = header[7:].strip()
                account = account_of("atlascloud:" + key)
                return await guarded(endpoint(request, account,
                                      self.sandbox.tier_for_key("atlascloud", key)))
            except SandboxError as err:
                return error(err)
        return wrapped

    async def generate(self, request: Request, account: str, tier: str) -> Response:
        data = await body(request)
        model = str(data.get("model", ""))
        family, _, mode = model.rpartition("/")
        if family not in MODELS or mode not in MODELS[family][0]:
            raise NotFound(f"model {model!r} not found")
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest("prompt is required")
        duration = data.get("duration", 5)
        if not isinstance(duration, int) or duration not in MODELS[family][1]:
            raise Unprocessable(f"duration must be an integer in "
                                f"{sorted(MODELS[family][1])}")
        resolution = MODELS[family][2] or data.get("resolution", "720p")
        if resolution not in SIDES:
            raise Unprocessable("resolution must be 720p or 1080p")
        width, height = SIDES[resolution]
        if data.get("aspect_ratio") == "9:16":
            width, height = height, width
        elif data.get("aspect_ratio") == "1:1":
            width = height
        image = None
        if mode == "image-to-video":
            url = data.get("image_url")
            if not isinstance(url, str) or "/atlascloud/media/" not in url:
                raise Unprocessable("image_url must be a URL from uploadMedia")
            path = self.sandbox.state / "media" / url.rsplit("/", 1)[-1]
            if not path.is_file():
                raise Unprocessable("image_url does not exist")
            image = path.read_bytes()
        hook = callback_url(data.get("webhook_url"), "webhook_url")
        job = self.sandbox.submit(
            protocol="atlascloud", family=mode, account=account, tier=tier, model=model,
            kind="generate", prompt=prompt, shots=[Shot(text=prompt, seconds=duration)],
            seconds=duration, total_seconds=duration, width=width, height=height,
            resolution=resolution_of(width, height), job_id="pred_" + uuid.uuid4().hex,
            policy_as_failure=True, image=image,
        )
        self.submits += 1
        if hook:
            self.webhooks.subscribe(job, hook, str(request.base_url).rstrip("/"))
        shape = self.sandbox.knobs.atlascloud_response
        top = shape == "top" or (shape == "alternate" and self.submits % 2 == 0)
        answer = {"id": job.id, "status": "processing", "model": model,
                  "created_at": int(job.created_at)}
        return JSONResponse(answer if top else {"code": 200, "data": answer})

    async def jwks(self, request: Request) -> Response:
        """The webhook signing key, public and unauthenticated."""
        return JSONResponse(self.webhooks.signer.jwks("atlascloud"))

    # webhook deliveries (the Hook sandbox/webhooks.py calls)
    def events(self, job: Job) -> list[tuple[float, str]]:
        return [(at, TERMINAL_EVENT) for at, _ in job.transitions()[-1:]]

    def callback(self, job: Job, at: float, base: str) -> dict[str, Any]:
        prediction = self._prediction(base, self.sandbox.settle(job, at), at)
        failed = prediction["status"] == "failed"
        return {"event_type": TERMINAL_EVENT, "session_id": job.id,
                "status": "ERROR" if failed else "OK", "payload": prediction,
                "error": prediction["error"] if failed else None}

    def headers(self, delivery: Delivery, body: bytes, timestamp: str) -> dict[str, str]:
        return self.webhooks.signer.atlascloud(delivery.job_id, TERMINAL_EVENT,
                                               delivery.account, timestamp, body,
                                               wrong=delivery.wrong_signature)

    def _prediction(self, base: str, job: Job, now: float | None = None) -> dict[str, Any]:
        """The prediction as polling shows it at `now` (default: the clock's now)."""
        state = job.state(self.sandbox.clock.now() if now is None else now)
        status = {"queued": "processing", "running": "processing",
                  "succeeded": "completed" if int(job.id[-1], 16) % 2 else "succeeded",
                  "failed": "failed", "cancelled": "failed"}[state]
        outputs = [f"{base}/files/{job.id}.mp4"] if (
            state == "succeeded") else []
        failed = status == "failed"
        answer = {"id": job.id, "model": job.model, "status": status, "outputs": outputs,
                  "error": (job.failure_message or "failed") if failed else ""}
        if failed and job.failure_code == "policy":
            answer["error_code"] = MODERATION
        return answer

    async def prediction(self, request: Request, account: str, tier: str) -> Response:
        job = self.sandbox.store.get(request.path_params["id"])
        if job is None or job.protocol != "atlascloud" or job.account != account:
            raise NotFound("prediction not found")
        job = self.sandbox.settle(job)
        return JSONResponse({"code": 200, "data": self._prediction(
            str(request.base_url).rstrip("/"), job)})

    async def upload(self, request: Request, account: str, tier: str) -> Response:
        form = await request.form()
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            raise BadRequest("multipart field 'file' is required")
        data = await upload.read()
        image_from_bytes(data)  # refuse what is not an image
        name = self.sandbox.keep_image(data)
        url = f"{str(request.base_url).rstrip('/')}/atlascloud/media/{name}"
        return JSONResponse({"code": 200, "data": {"download_url": url}})
