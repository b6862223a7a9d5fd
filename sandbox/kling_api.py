"""Kling's native API under /kling: text2video, image2video, video-extend (query and list per
family), HS256 JWT auth with the real codes (1000–1004), the `{code, message, request_id, data}`
envelope, millisecond timestamps, numeric task ids, and `external_task_id` unique per account
(a repeat answers with the existing task — what makes a lost submit recoverable)."""

import uuid
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.errors import (
    AccountProblem,
    BadRequest,
    NotFound,
    PolicyRejected,
    RateLimited,
    SandboxError,
    Unauthorized,
    Unprocessable,
)
from sandbox.jobs import Job, Shot
from sandbox.service import Sandbox, account_of
from sandbox.wire import body, guarded, image_from_base64

FAMILIES = ("text2video", "image2video", "video-extend")
STATUS = {"queued": "submitted", "running": "processing", "succeeded": "succeed",
          "failed": "failed", "cancelled": "failed"}
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
HEIGHTS = {"std": 720, "pro": 1080}
ACCOUNT_CODES = {"suspended": (1100, 429), "arrears": (1101, 429), "exhausted": (1102, 429),
                 "forbidden": (1103, 403), "ip_blocked": (1304, 429)}
MAX_CLIP_S = 180
EXTEND_S = 5


def _size(aspect: str, short: int) -> tuple[int, int]:
    a, b = ASPECTS[aspect]
    if a >= b:
        return round(short * a / b / 2) * 2, short
    return short, round(short * b / a / 2) * 2


def envelope(data: Any, status: int = 200, code: int = 0, message: str = "SUCCEED"):
    return JSONResponse({"code": code, "message": message, "request_id": str(uuid.uuid4()),
                         "data": data}, status_code=status)


def error(err: SandboxError) -> JSONResponse:
    if isinstance(err, Unauthorized):
        code = int(err.code) if err.code.isdigit() else 1000
        return envelope(None, 401, code, err.message)
    if isinstance(err, AccountProblem):
        code, status = ACCOUNT_CODES.get(err.code, (1100, 429))
        return envelope(None, status, code, err.message)
    if isinstance(err, RateLimited):
        return envelope(None, 429, 1303, "parallel task over resource pack limit")
    if isinstance(err, PolicyRejected):
        return envelope(None, 400, 1301, "content security policy triggered")
    if isinstance(err, NotFound):
        return envelope(None, 404, 1203, err.message)
    if isinstance(err, Unprocessable):
        return envelope(None, 422, 1201, err.message)
    return envelope(None, err.status if err.status < 500 else 500,
                    1201 if err.status < 500 else 5000, err.message)


class KlingNative:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos/{family}", self.handle(self.create), methods=["POST"]),
            Route("/v1/videos/{family}", self.handle(self.list), methods=["GET"]),
            Route("/v1/videos/{family}/{task_id}", self.handle(self.query), methods=["GET"]),
            Route("/account/billing/balance", self.handle(self.deductions), methods=["POST"]),
        ]

    def handle(self, endpoint):
        async def wrapped(request: Request) -> Response:
            try:
                family = request.path_params.get("family")
                if family is not None and family not in FAMILIES:
                    raise NotFound(f"unknown family {family}")
                account, tier = self.auth(request)
                return await guarded(endpoint(request, account, tier))
            except SandboxError as err:
                return error(err)
        return wrapped

    def auth(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise Unauthorized("Authorization is empty", code="1001")
        token = header[7:].strip()
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
            access = claims.get("iss")
            key = self.sandbox.knobs.kling_keys.get(access)
            if key is None:
                raise Unauthorized("Authorization is invalid: unknown access key", code="1002")
            claims = jwt.decode(token, key.secret, algorithms=["HS256"],
                                options={"verify_exp": False, "verify_nbf": False})
        except jwt.PyJWTError:
            raise Unauthorized("Authorization is invalid", code="1002") from None
        now = self.sandbox.clock.now()
        if "nbf" in claims and now < float(claims["nbf"]):
            raise Unauthorized("Authorization is not active yet", code="1003")
        if "exp" not in claims or now >= float(claims["exp"]):
            raise Unauthorized("Authorization has expired", code="1004")
        return account_of("kling:" + access), key.tier

    def task(self, job: Job) -> dict[str, Any]:
        now = self.sandbox.clock.now()
        job = self.sandbox.settle(job, now)  # the deduction shown is the bill at this instant
        state = job.state(now)
        info: dict[str, Any] = {}
        if job.external_id:
            info["external_task_id"] = job.external_id
        if job.kind == "extend" and job.parent_id:
            parent = self.sandbox.job(job.parent_id)
            info["parent_video"] = {"id": parent.extra["video_id"],
                                    "url": parent.extra.get("url", ""),
                                    "duration": str(parent.total_seconds)}
        task: dict[str, Any] = {
            "task_id": job.id, "task_status": STATUS[state],
            "task_info": info, "created_at": int(job.created_at * 1000),
            "updated_at": int(min(now, job.completes_at) * 1000),
        }
        if state in ("failed", "cancelled"):
            task["task_status_msg"] = job.failure_message or "cancelled"
        if state in ("succeeded", "failed") and self.sandbox.knobs.kling_deduction:
            task["final_unit_deduction"] = self._units(job)
        if state == "succeeded":
            task["task_result"] = {"videos": [{"id": job.extra["video_id"],
                                               "url": job.extra["url"],
                                               "duration": str(job.total_seconds)}]}
        return task

    def _units(self, job: Job) -> str:
        """Units deducted for the task (one unit an output-second at the key's plan): the
        generation, a failure's share, and every re-queue billed again — what the provider's
        own ledger says, so a client learns of a re-queue it never saw."""
        prices = self.sandbox.prices["kling"]
        shares = {"complete": 1.0, "requeue": 1.0, "fail": prices.failed_share}
        units = sum(job.seconds * shares[kind] for kind in job.billed if kind in shares)
        return f"{units:g}"

    async def create(self, request: Request, account: str, tier: str) -> Response:
        family = request.path_params["family"]
        data = await body(request)
        self.sandbox.check_account(account)
        external = data.get("external_task_id")
        if external is not None:
            existing = self.sandbox.store.by_external("kling", account, str(external))
            if existing is not None:
                return envelope(self.task(existing))
        spec = (self._extend(data) if family == "video-extend"
                else self._generate(family, data))
        task_id = str(800_000_000_000_000_000 + self.sandbox.store.count("kling:task_id"))
        video_id = str(uuid.uuid4())
        url = f"{str(request.base_url).rstrip('/')}/files/{task_id}.mp4"
        job = self.sandbox.submit(
            protocol="kling", family=family, account=account, tier=tier,
            external_id=str(external) if external is not None else None, job_id=task_id,
            extra={"video_id": video_id, "url": url}, **spec,
        )
        return envelope(self.task(job))

    def _generate(self, family: str, data: dict[str, Any]) -> dict[str, Any]:
        model = data.get("model_name", "kling-v1")
        if not isinstance(model, str):
            raise BadRequest("model_name must be a string, e.g. kling-v3")
        model = model or "kling-v1"
        mode = data.get("mode", "std")
        if mode not in HEIGHTS:
            raise BadRequest("mode must be std or pro")
        durations = ({str(d) for d in range(3, 16)} if model.startswith("kling-v3")
                     else {"5", "10"})
        duration = data.get("duration", "5")
        if not isinstance(duration, str) or duration not in durations:
            raise BadRequest(f"duration must be a string in {sorted(durations, key=int)}")
        seconds = int(duration)
        short = HEIGHTS[mode]
        if data.get("resolution") == "4k":
            if mode != "pro" or not model.startswith("kling-v3"):
                raise BadRequest("resolution 4k needs kling-v3 in pro mode")
            short = 2160
        self._camera(data.get("camera_control"))
        prompt = data.get("prompt") or ""
        shots = self._shots(data, seconds, prompt)
        if family == "image2video":
            aspect = self._image_aspect(data)
        else:
            aspect = data.get("aspect_ratio", "16:9")
            if aspect not in ASPECTS:
                raise BadRequest("aspect_ratio must be one of 16:9, 9:16, 1:1")
        width, height = _size(aspect, short)
        return {"model": model, "kind": "generate", "prompt": prompt, "shots": shots,
                "seconds": seconds, "total_seconds": seconds, "width": width,
                "height": height, "resolution": {720: "720p", 1080: "1080p"}.get(short, "4k")}

    def _shots(self, data: dict[str, Any], seconds: int, prompt: str) -> list[Shot]:
        if not data.get("multi_shot"):
            if not prompt or len(prompt) > 2500:
                raise BadRequest("prompt is required (at most 2500 characters)")
            return [Shot(text=prompt, seconds=seconds)]
        if data.get("shot_type", "customize") != "customize":
            return [Shot(text=prompt or "intelligent shots", seconds=seconds)]
        shots = data.get("multi_prompt")
        if not isinstance(shots, list) or not 1 <= len(shots) <= 6:
            raise BadRequest("multi_prompt must hold 1 to 6 shots")
        result = []
        for shot in shots:
            text, duration = shot.get("prompt"), str(shot.get("duration", ""))
            if not text or len(text) > 512 or not duration.isdigit() or int(duration) < 1:
                raise BadRequest("each shot needs a prompt (at most 512) and a duration >= 1")
            result.append(Shot(text=text, seconds=int(duration)))
        if sum(s.seconds for s in result) != seconds:
            raise BadRequest(f"shot durations add up to {sum(s.seconds for s in result)}, "
                             f"not the task duration {seconds}")
        return result

    @staticmethod
    def _camera(control: Any) -> None:
        if control is None:
            return
        kinds = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
        if not isinstance(control, dict) or control.get("type") not in kinds:
            raise BadRequest(f"camera_control.type must be one of {', '.join(kinds)}")
        if control["type"] == "simple":
            config = control.get("config") or {}
            axes = ("horizontal", "vertical", "pan", "tilt", "roll", "zoom")
            values = [float(config.get(axis, 0)) for axis in axes]
            if set(config) - set(axes) or sum(1 for v in values if v) != 1 or any(
                    abs(v) > 10 for v in values):
                raise BadRequest("camera_control.config needs exactly one non-zero axis "
                                 "in [-10, 10]")

    def _image_aspect(self, data: dict[str, Any]) -> str:
        raw = data.get("image")
        if not isinstance(raw, str) or not raw:
            raise BadRequest("image is required (raw base64 or URL)")
        if raw.startswith("data:"):
            raise BadRequest("image must be raw base64 without a data: prefix")
        if raw.startswith(("http://", "https://")):
            raise BadRequest("image URL could not be fetched")
        image = image_from_base64(raw)
        if min(image.size) < 300:
            raise BadRequest(f"image must be at least 300 px; got {image.width}x{image.height}")
        ratio = image.width / image.height
        for name, (a, b) in ASPECTS.items():
            if abs(ratio / (a / b) - 1) <= 0.01:
                return name
        raise Unprocessable(f"image aspect ratio {image.width}:{image.height} is not supported;"
                            " use 16:9, 9:16 or 1:1")

    def _extend(self, data: dict[str, Any]) -> dict[str, Any]:
        video_id = data.get("video_id")
        if not video_id:
            raise BadRequest("video_id is required")
        parent = next((j for j in self.sandbox.store.jobs("kling")
                       if j.extra.get("video_id") == video_id), None)
        if parent is None:
            raise NotFound(f"video {video_id} not found")
        parent = self.sandbox.settle(parent)
        if parent.state(self.sandbox.clock.now()) != "succeeded":
            raise BadRequest("the video to extend is not finished")
        if parent.total_seconds + EXTEND_S > MAX_CLIP_S:
            raise BadRequest(f"an extension would pass the {MAX_CLIP_S} s limit")
        prompt = data.get("prompt") or "continue"
        return {"model": data.get("model_name") or parent.model, "kind": "extend",
                "prompt": prompt, "shots": [Shot(text=prompt, seconds=EXTEND_S)],
                "seconds": EXTEND_S, "total_seconds": parent.total_seconds + EXTEND_S,
                "width": parent.width, "height": parent.height,
                "resolution": parent.resolution, "parent_id": parent.id}

    async def query(self, request: Request, account: str, tier: str) -> Response:
        key = request.path_params["task_id"]
        job = self.sandbox.store.get(key) or self.sandbox.store.by_external("kling", account, key)
        if job is None or job.account != account or job.protocol != "kling":
            raise NotFound(f"task {key} not found")
        return envelope(self.task(job))

    async def deductions(self, request: Request, account: str, tier: str) -> Response:
        """Balance Deduction Detail (POST /account/billing/balance): one row per deduction of
        this key's account in [start_time, end_time) (ms), 500 a page by cursor — the bill a
        client reconciles its ledger with, job by job. Amounts in USD at the key's plan."""
        data = await body(request)
        cursor = data.get("cursor") or ""
        try:
            offset = int(cursor) if cursor else 0
            start = float(data.get("start_time", 0)) / 1000
            end = float(data.get("end_time", 1e13 * 1000)) / 1000
            limit = int(data.get("limit", 500))
        except (TypeError, ValueError):
            raise BadRequest("start_time and end_time are milliseconds; limit an integer"
                             ) from None
        if not 1 <= limit <= 500:
            raise BadRequest("limit is 1 to 500")
        mine = {j.id: j for j in self.sandbox.store.jobs("kling", account)}
        rows = [u for u in self.sandbox.usage()
                if u["job_id"] in mine and start <= float(u["at"]) < end]
        page = rows[offset:offset + limit]
        detail = [{"task_id": u["job_id"], "api_key_name": "default",
                   "product_function": mine[u["job_id"]].family,
                   "model_name": mine[u["job_id"]].model, "resolution": u["resolution"],
                   "duration": f"{float(u['seconds']):g}",
                   "deduction_time": str(int(float(u["at"]) * 1000)),
                   "cash_type": "balance", "deduction_amount": u["usd"],
                   "list_price": u["usd"], "currency": "USD"} for u in page]
        more = offset + limit < len(rows)
        return envelope({"result": {"detail": detail, "count": len(rows)},
                         "next_cursor": str(offset + limit) if more else "",
                         "has_more": more})

    async def list(self, request: Request, account: str, tier: str) -> Response:
        family = request.path_params["family"]
        try:
            page = int(request.query_params.get("pageNum", "1"))
            size = int(request.query_params.get("pageSize", "30"))
        except ValueError:
            raise BadRequest("pageNum and pageSize must be integers") from None
        if not (page >= 1 and 1 <= size <= 500):
            raise BadRequest("pageNum >= 1 and pageSize in 1..500")
        jobs = [j for j in self.sandbox.store.jobs("kling", account) if j.family == family]
        jobs.reverse()
        chunk = jobs[(page - 1) * size: page * size]
        return envelope([self.task(j) for j in chunk])
