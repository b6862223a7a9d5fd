"""The OpenAI Videos API (Sora 2) under /openai/v1: create, retrieve, list, delete, content,
remix and extensions, with the `{"error": {...}}` envelope, Bearer auth and
`openai-poll-after-ms`. The official `openai` SDK works against it with base_url alone."""

import base64
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import av
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox import files
from sandbox import render as media
from sandbox.errors import BadRequest, Conflict, NotFound, SandboxError, Unauthorized
from sandbox.jobs import Job, Shot
from sandbox.service import Sandbox, account_of
from sandbox.wire import (
    body,
    guarded,
    image_from_base64,
    image_from_bytes,
    json_part,
    resolution_of,
)

MODELS = {"sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-pro-2025-10-06",
          "sora-2-2025-12-08"}
SIZES = {"720x1280", "1280x720", "1024x1792", "1792x1024"}
# the Videos guide adds 1080p for sora-2-pro; no source documents a 4K size (the seed's Sora 4K
# is refused here as the API would, and the router learns it)
PRO_SIZES = SIZES | {"1920x1080", "1080x1920"}
STATUS = {"queued": "queued", "running": "in_progress", "succeeded": "completed",
          "failed": "failed", "cancelled": "failed"}


def error(err: SandboxError, sandbox: Sandbox) -> JSONResponse:
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404:
             "invalid_request_error", 409: "invalid_request_error", 429: "requests"}
    code = {"concurrency": "rate_limit_exceeded", "exhausted": "insufficient_quota",
            "arrears": "insufficient_quota"}.get(err.code, err.code)
    status = 403 if err.code in ("forbidden", "suspended", "ip_blocked") else err.status
    headers = {}
    if err.retry_after_s is not None:
        headers = {"retry-after": str(max(1, round(err.retry_after_s))),
                   "retry-after-ms": str(max(1, int(err.retry_after_s * 1000)))}
    payload = {"message": err.message, "type": kinds.get(status, "server_error"),
               "param": getattr(err, "param", None), "code": code}
    return JSONResponse({"error": payload}, status_code=status, headers=headers)


def _param(message: str, param: str, code: str = "invalid_value") -> BadRequest:
    err = BadRequest(message, code=code)
    err.param = param  # type: ignore[attr-defined]
    return err


class OpenAIVideos:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def routes(self) -> list[Route]:
        return [
            Route("/v1/videos", self.handle(self.create), methods=["POST"]),
            Route("/v1/videos", self.handle(self.list), methods=["GET"]),
            Route("/v1/videos/extensions", self.handle(self.extend), methods=["POST"]),
            Route("/v1/videos/{video_id}", self.handle(self.retrieve), methods=["GET"]),
            Route("/v1/videos/{video_id}", self.handle(self.delete), methods=["DELETE"]),
            Route("/v1/videos/{video_id}/content", self.handle(self.content), methods=["GET"]),
            Route("/v1/videos/{video_id}/remix", self.handle(self.remix), methods=["POST"]),
            Route("/v1/organization/costs", self.handle(self.costs), methods=["GET"]),
        ]

    def handle(self, endpoint):
        async def wrapped(request: Request) -> Response:
            account = tier = None
            try:
                account, tier = self.auth(request)
                response = await guarded(endpoint(request, account, tier))
            except SandboxError as err:
                response = error(err, self.sandbox)
            response.headers.update(self.headers(account, tier))
            return response
        return wrapped

    def headers(self, account: str | None, tier: str | None) -> dict[str, str]:
        """What every OpenAI answer carries: `x-request-id`, and the `x-ratelimit-*` request
        headers — here the tier's jobs in flight and what is left of them."""
        found = {"x-request-id": "req_" + uuid.uuid4().hex}
        if account is not None and tier is not None:
            limit = self.sandbox.prices["openai"].tiers[tier].concurrency
            busy = self.sandbox.active("openai", account, tier, self.sandbox.clock.now())
            found.update({"x-ratelimit-limit-requests": str(limit),
                          "x-ratelimit-remaining-requests": str(max(0, limit - busy)),
                          "x-ratelimit-reset-requests": "1s"})
        return found

    def auth(self, request: Request) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise Unauthorized("You didn't provide an API key.", code="missing_api_key")
        key = header[7:].strip()
        return account_of(key), self.sandbox.tier_for_key("openai", key)

    def poll_headers(self) -> dict[str, str]:
        hint = self.sandbox.scaled(self.sandbox.world("openai").poll_hint_s)
        return {"openai-poll-after-ms": str(max(1, int(hint * 1000)))}

    def video(self, job: Job) -> dict[str, Any]:
        now = self.sandbox.clock.now()
        state = job.state(now)
        done = state in ("succeeded", "failed", "cancelled")
        failed = state in ("failed", "cancelled")
        return {
            "id": job.id, "object": "video", "model": job.model, "status": STATUS[state],
            "progress": job.progress(now), "created_at": int(job.created_at),
            "completed_at": int(job.completes_at) if done else None,
            "expires_at": int(job.expires_at) if state == "succeeded" else None,
            "prompt": job.prompt, "size": f"{job.width}x{job.height}",
            "seconds": str(job.total_seconds),
            "remixed_from_video_id": job.parent_id if job.kind == "remix" else None,
            "error": {"code": job.failure_code or "cancelled", "message":
                      job.failure_message or "cancelled"} if failed else None,
            "quality": "standard",
        }

    def _seconds(self, value: Any, allowed: set[str]) -> int:
        if self.sandbox.knobs.sora_long_seconds:
            allowed = allowed | {"16", "20"}
        if not isinstance(value, str):
            raise _param(f"Invalid type for 'seconds': expected one of {sorted(allowed)}, but "
                         f"got {type(value).__name__} instead.", "seconds", "invalid_type")
        if value not in allowed:
            raise _param(f"Invalid value: '{value}'. Supported values are: "
                         f"{', '.join(sorted(allowed, key=int))}.", "seconds")
        return int(value)

    async def create(self, request: Request, account: str, tier: str) -> Response:
        data = await body(request)
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not 1 <= len(prompt) <= 32000:
            raise _param("'prompt' is required (1 to 32000 characters).", "prompt",
                         "missing_required_parameter")
        model = data.get("model", "sora-2")
        if model not in MODELS:
            raise _param(f"Invalid model '{model}'.", "model")
        seconds = self._seconds(data.get("seconds", "4"), {"4", "8", "12"})
        size = data.get("size", "720x1280")
        allowed = PRO_SIZES if "pro" in model else SIZES
        if size not in allowed:
            raise _param(f"Invalid size '{size}' for {model}. Supported: "
                         f"{', '.join(sorted(allowed))}.", "size")
        width, height = (int(v) for v in size.split("x"))
        reference, sent = data.get("input_reference"), None
        if reference is not None:
            image, sent = await self._reference(reference)
            if image.size != (width, height):
                raise _param(f"Inpaint image must match the requested width and height "
                             f"({size}); got {image.width}x{image.height}.", "input_reference")
        job = self.sandbox.submit(
            protocol="openai", family="videos", account=account, tier=tier, model=model,
            kind="generate", prompt=prompt, shots=[Shot(text=prompt, seconds=seconds)],
            seconds=seconds, total_seconds=seconds, width=width, height=height,
            resolution=resolution_of(width, height), job_id="video_" + uuid.uuid4().hex,
            policy_as_failure=True, audio=True,  # Sora 2 always makes a soundtrack
            image=sent,
        )
        return JSONResponse(self.video(job), headers=self.poll_headers())

    async def _reference(self, reference: Any) -> tuple[Image.Image, bytes]:
        """The input image, decoded, and its bytes as sent (what the clip starts from)."""
        if isinstance(reference, dict):
            url = reference.get("image_url")
            if isinstance(url, str) and url.startswith("data:"):
                image = image_from_base64(url)
                return image, base64.b64decode(url.split(",", 1)[-1])
            raise _param("input_reference must be an uploaded image or a data URL",
                         "input_reference")
        if isinstance(reference, str):  # a form field, not a file: the API's own words
            raise _param("Invalid type for 'input_reference': expected a file, but got a "
                         "string instead.", "input_reference", "invalid_type")
        if not isinstance(reference, UploadFile):
            raise BadRequest("expected an uploaded image file")
        sent = await reference.read()
        return image_from_bytes(sent), sent

    async def retrieve(self, request: Request, account: str, tier: str) -> Response:
        job = self._own(request.path_params["video_id"], account)
        return JSONResponse(self.video(job), headers=self.poll_headers())

    def _own(self, video_id: str, account: str) -> Job:
        try:
            job = self.sandbox.job(video_id, "openai")
        except NotFound:
            raise NotFound(f"Video with id '{video_id}' not found.", code=None) from None
        if job.account != account:
            raise NotFound(f"Video with id '{video_id}' not found.", code=None)
        return job

    async def list(self, request: Request, account: str, tier: str) -> Response:
        query = request.query_params
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise _param("limit must be an integer", "limit") from None
        if not 0 <= limit <= 100:
            raise _param("limit must be between 0 and 100", "limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _param("order must be asc or desc", "order")
        jobs = [self.sandbox.settle(j) for j in self.sandbox.store.jobs("openai", account)
                if not j.deleted]
        if order == "desc":
            jobs.reverse()
        after = query.get("after")
        if after:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        page = jobs[:limit]
        data = [self.video(j) for j in page]
        return JSONResponse({"object": "list", "data": data,
                             "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None,
                             "has_more": len(jobs) > limit})

    async def delete(self, request: Request, account: str, tier: str) -> Response:
        job = self._own(request.path_params["video_id"], account)
        if job.state(self.sandbox.clock.now()) in ("queued", "running"):
            raise Conflict("Only completed or failed videos can be deleted.")
        self.sandbox.delete(job)
        return JSONResponse({"id": job.id, "object": "video.deleted", "deleted": True})

    async def content(self, request: Request, account: str, tier: str) -> Response:
        job = self._own(request.path_params["video_id"], account)
        now = self.sandbox.clock.now()
        state = job.state(now)
        if state != "succeeded":
            raise BadRequest(f"Video is not ready: its status is {STATUS[state]}.",
                             code="video_not_ready")
        if now >= job.expires_at:
            raise NotFound("The video's assets have expired.", code="video_expired")
        variant = request.query_params.get("variant", "video")
        path = await run_in_threadpool(self.sandbox.video, job)
        if variant == "video":
            truncate = bool(request.scope.get("reelflow_truncate"))
            return files.serve(request, path, "video/mp4", truncate=truncate)
        if variant in ("thumbnail", "spritesheet"):
            image = await run_in_threadpool(_first_frame, path)
            out = io.BytesIO()
            fmt, kind = ("WEBP", "image/webp") if variant == "thumbnail" else ("JPEG",
                                                                                 "image/jpeg")
            image.save(out, fmt)
            return Response(out.getvalue(), media_type=kind)
        raise _param(f"Invalid variant '{variant}'.", "variant")

    async def remix(self, request: Request, account: str, tier: str) -> Response:
        source = self._completed(request.path_params["video_id"], account)
        data = await body(request)
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _param("'prompt' is required.", "prompt", "missing_required_parameter")
        job = self.sandbox.submit(
            protocol="openai", family="videos", account=account, tier=tier, model=source.model,
            kind="remix", prompt=prompt, shots=[Shot(text=prompt, seconds=source.seconds)],
            seconds=source.seconds, total_seconds=source.total_seconds, width=source.width,
            height=source.height, resolution=source.resolution, parent_id=source.id,
            job_id="video_" + uuid.uuid4().hex, policy_as_failure=True, audio=True,
        )
        return JSONResponse(self.video(job.model_copy(update={"parent_id": source.id})),
                            headers=self.poll_headers())

    def _completed(self, video_id: str, account: str) -> Job:
        job = self._own(video_id, account)
        if job.state(self.sandbox.clock.now()) != "succeeded":
            raise BadRequest(f"Video '{video_id}' is not completed.", code="video_not_ready")
        return job

    async def extend(self, request: Request, account: str, tier: str) -> Response:
        """Extend a completed video named by id, or an uploaded video file."""
        data = await body(request)
        video = json_part(data.get("video"))
        prompt = data.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _param("'prompt' is required.", "prompt", "missing_required_parameter")
        seconds = self._seconds(data.get("seconds", "4"), {"4", "8", "12", "16", "20"})
        if isinstance(video, UploadFile):
            parent = await self._upload(video)
            info = await run_in_threadpool(media.probe, parent)
            source = {"parent_id": None, "extra": {"parent_file": str(parent)},
                      "model": "sora-2", "total": round(info["seconds"]),
                      "width": info["width"], "height": info["height"]}
        elif isinstance(video, dict) and isinstance(video.get("id"), str):
            job = self._completed(video["id"], account)
            source = {"parent_id": job.id, "extra": {}, "model": job.model,
                      "total": job.total_seconds, "width": job.width, "height": job.height}
        else:
            raise _param("'video' must be {\"id\": ...} of a completed video or a video "
                         "file.", "video", "missing_required_parameter")
        job = self.sandbox.submit(
            protocol="openai", family="videos", account=account, tier=tier,
            model=source["model"], kind="extend", prompt=prompt,
            shots=[Shot(text=prompt, seconds=seconds)], seconds=seconds,
            total_seconds=source["total"] + seconds, width=source["width"],
            height=source["height"], resolution=resolution_of(source["width"],
                                                              source["height"]),
            parent_id=source["parent_id"], extra=source["extra"],
            job_id="video_" + uuid.uuid4().hex, policy_as_failure=True, audio=True,
        )
        return JSONResponse(self.video(job), headers=self.poll_headers())

    async def costs(self, request: Request, account: str, tier: str) -> Response:
        """The organization costs API (GET /organization/costs): daily buckets of what this
        key's organization was charged, from `start_time` (required, unix seconds) to
        `end_time`, `limit` buckets (1–180, default 7) a page, grouped by `line_item` (the
        model here) when asked. Never per job: that is the API as documented."""
        query = request.query_params
        try:
            start = int(query["start_time"])
            end = int(query.get("end_time", int(self.sandbox.clock.now()) + 1))
            limit = int(query.get("limit", "7"))
            page = int(query.get("page") or 0)
        except KeyError:
            raise _param("start_time is required", "start_time",
                         "missing_required_parameter") from None
        except ValueError:
            raise _param("start_time, end_time, limit and page are integers", "start_time"
                         ) from None
        if query.get("bucket_width", "1d") != "1d" or not 1 <= limit <= 180:
            raise _param("bucket_width is 1d; limit is 1 to 180", "limit")
        by_line = "line_item" in {g for v in query.getlist("group_by") for g in v.split(",")}
        mine = {j.id: j for j in self.sandbox.store.jobs("openai", account)}
        day0 = start - start % 86400
        buckets = []
        for day in range(day0 + page * limit * 86400, min(end, day0 + (page + 1) * limit * 86400),
                         86400):
            totals: dict[str | None, float] = {}
            for u in self.sandbox.usage():
                if u["job_id"] in mine and max(day, start) <= float(u["at"]) < min(
                        day + 86400, end):
                    line = mine[u["job_id"]].model if by_line else None
                    totals[line] = totals.get(line, 0.0) + float(u["usd"])
            buckets.append({"object": "bucket", "start_time": day, "end_time": day + 86400,
                            "results": [{"object": "organization.costs.result",
                                         "amount": {"value": round(v, 6), "currency": "usd"},
                                         "line_item": line, "project_id": None}
                                        for line, v in sorted(totals.items(),
                                                              key=lambda x: str(x[0]))]})
        more = day0 + (page + 1) * limit * 86400 < end
        return JSONResponse({"object": "page", "data": buckets, "has_more": more,
                             "next_page": str(page + 1) if more else None})

    async def _upload(self, upload: UploadFile) -> Path:
        data = await upload.read()
        digest = hashlib.sha256(data).hexdigest()[:32]
        path = self.sandbox.state / "uploads" / f"{digest}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        try:
            await run_in_threadpool(media.probe, path)
        except av.error.FFmpegError:
            path.unlink()
            raise _param("the uploaded video could not be decoded", "video") from None
        return path


def _first_frame(path) -> Image.Image:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.to_image()
