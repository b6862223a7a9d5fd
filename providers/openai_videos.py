"""OpenAI Videos (Sora 2) adapter.

Guarantees: a create is sent once. When its outcome is unknown (timeout after the request left,
a reset, a 5xx), the adapter lists recent videos and claims the one matching prompt, model, size
and seconds created since the submit began (server time, from the Date header); only when two
looks find none does it create again — once. A second unknown outcome is SubmitUnknown.
Images go as a multipart upload of exactly `size`. There is no cancel on this protocol.
"""

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from models import JobHandle, JobStatus, RemoteVideo, SubmitRequest
from providers import http
from providers.adapter import Adapter
from providers.errors import (
    AccountError,
    InvalidRequest,
    JobFailed,
    RateLimited,
    Rejected,
    SubmitUnknown,
    Transient,
)

STATES = {"queued": "queued", "in_progress": "running", "completed": "succeeded",
          "failed": "failed"}
POLICY_CODES = {"policy", "moderation_blocked", "content_policy_violation"}
ACCOUNT_CODES = {"insufficient_quota", "invalid_api_key", "account_deactivated"}


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code") or ""
    message = f"OpenAI {response.status_code} {code}: {error.get('message', '')}".strip()
    status = response.status_code
    if status in (401, 403) or code in ACCOUNT_CODES:
        raise AccountError(message, status=status, code=code)
    if status == 429:
        raise RateLimited(message, status=status, code=code,
                          retry_after_s=http.retry_after_s(response))
    if code in POLICY_CODES:
        raise Rejected(message, status=status, code=code)
    if status == 408 or status >= 500:
        raise Transient(message, status=status, code=code)
    raise InvalidRequest(message, status=status, code=code)


class OpenAIVideos(Adapter):
    protocol = "openai_videos"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.key.get_secret_value()}"}

    async def _create(self, request: SubmitRequest) -> httpx.Response:
        model = request.wire_params.get("model", request.endpoint)
        if request.mode == "extend":
            return await self.send("POST", "/videos/extensions", json={
                "video": {"id": request.parent_video_id}, "prompt": request.prompt,
                "seconds": str(request.seconds)})
        fields = {"model": model, "prompt": request.prompt, "seconds": str(request.seconds),
                  "size": request.size or ""}
        if request.image is not None:
            files = {k: (None, v) for k, v in fields.items()}
            files["input_reference"] = ("reference", request.image, request.image_type)
            return await self.send("POST", "/videos", files=files)
        return await self.send("POST", "/videos", json=fields)

    async def _submit(self, request: SubmitRequest, idempotency_key: str) -> JobHandle:
        started = datetime.now(UTC)
        for attempt in range(2):
            try:
                response = await self._create(request)
                if response.status_code < 500:
                    raise_for(response)
                    return self.handle(response.json()["id"])
            except Transient:
                pass
            found = await self._find(request, started)
            if found is not None:
                return self.handle(found)
            if attempt == 0:
                await asyncio.sleep(http.backoff_s(1, 0.5, 2))
                found = await self._find(request, started)
                if found is not None:
                    return self.handle(found)
        raise SubmitUnknown("Sora create failed twice with an unknown outcome; no matching "
                            "video was listed")

    async def recover(self, request: SubmitRequest, idempotency_key: str,
                      since: datetime) -> JobHandle | None:
        found = await self._find(request, since)
        return self.handle(found) if found else None

    async def _find(self, request: SubmitRequest, started: datetime) -> str | None:
        """The video this request created, if the provider lists one."""
        try:
            response = await self.send("GET", "/videos", params={"limit": 20, "order": "desc"})
            raise_for(response)
        except (Transient, RateLimited):
            return None
        server_now = _server_time(response)
        elapsed = (datetime.now(UTC) - started).total_seconds()
        since = server_now - elapsed - 5 if server_now else None
        model = request.wire_params.get("model", request.endpoint)
        for video in response.json().get("data", []):
            if video.get("prompt") != request.prompt:
                continue
            if request.mode != "extend" and (video.get("model") != model or video.get(
                    "seconds") != str(request.seconds) or (request.size and video.get(
                    "size") != request.size)):
                continue
            if since is not None and video.get("created_at", 0) < since:
                continue
            return video["id"]
        return None

    async def _get_video(self, handle: JobHandle) -> tuple[dict[str, Any], httpx.Response]:
        response = await self.send("GET", f"/videos/{handle.job_id}")
        raise_for(response)
        return response.json(), response

    async def _status(self, handle: JobHandle) -> JobStatus:
        video, response = await self._get_video(handle)
        error = video.get("error") or {}
        hint = response.headers.get("openai-poll-after-ms")
        return JobStatus(
            state=STATES.get(video["status"], "running"), progress=video.get("progress"),
            message=error.get("message"), error_code=error.get("code"),
            policy=error.get("code") in POLICY_CODES,
            poll_after_s=float(hint) / 1000 if hint else None)

    async def _result(self, handle: JobHandle) -> RemoteVideo:
        video, _ = await self._get_video(handle)
        if video["status"] == "failed":
            error = video.get("error") or {}
            raise JobFailed(error.get("message") or "failed", code=error.get("code"),
                            policy=error.get("code") in POLICY_CODES)
        if video["status"] != "completed":
            raise InvalidRequest(f"video {handle.job_id} is {video['status']}, not completed")
        expires = video.get("expires_at")
        return RemoteVideo(
            url=f"{self.base_url}/videos/{handle.job_id}/content", authenticated=True,
            expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
            seconds=float(video["seconds"]), size=video.get("size"), video_id=video["id"])

    async def cancel(self, handle: JobHandle) -> bool:
        """The Videos API has no cancel; a queued job runs to its end."""
        return False

    async def delete_output(self, handle: JobHandle) -> bool:
        """DELETE /videos/{id}; a video already gone counts as deleted."""
        response = await self.send("DELETE", f"/videos/{handle.job_id}")
        if response.status_code == 404:
            return True
        raise_for(response)
        return True


def _server_time(response: httpx.Response) -> float | None:
    try:
        return parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
