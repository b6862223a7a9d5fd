"""AtlasCloud adapter (Bearer auth): one API reaching Kling, Seedance, Wan and others.

Guarantees: a submit is sent once. AtlasCloud has no idempotency key and no lookup by client
id, so a submit whose outcome is unknown raises SubmitUnknown — a possible charge the caller
records — and is never re-sent. The submit answer comes in two shapes (`{data: {id}}` or a
top-level `{id}`: AtlasCloud's own pages show both); both are read. `completed` and
`succeeded` both mean done. Images are uploaded first (uploadMedia) and passed as a URL.

The model id chooses the variant (`kwaivgi/kling-v3.0-std/...` or `-pro/...`): a catalog row's
wire spelling names it as `model`, and the mode is appended. Errors come as `{code, msg,
request_id, data}`; a failed prediction carries `data.error_code`, 1039 meaning the content
moderation refused it (atlascloud.ai docs/en/errors) — decided by that code, not by the text.
"""

from typing import Any

import httpx

from models import JobHandle, JobStatus, RemoteVideo, SubmitRequest
from providers import http
from providers.adapter import Adapter, Taken
from providers.errors import InvalidRequest, JobFailed, raise_by_status

DONE = {"completed", "succeeded"}
MODERATION_CODES = {1039}


def _error_code(data: Any) -> int | None:
    code = data.get("error_code") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        text = body.get("msg") or body.get("message") or ""
        code = _error_code(body.get("data"))
    except (ValueError, AttributeError):
        text, code = response.text[:200], None
    request_id = response.headers.get("x-request-id")
    raise_by_status(response.status_code, f"AtlasCloud {response.status_code}: {text}"
                    + (f" (request {request_id})" if request_id else ""),
                    policy=code in MODERATION_CODES, account_statuses=(401, 402, 403),
                    retry_after_s=http.retry_after_s(response))


class AtlasCloudAdapter(Adapter):
    protocol = "atlascloud"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.key.get_secret_value()}"}

    async def _upload(self, request: SubmitRequest) -> str:
        response = await self.send("POST", "/api/v1/model/uploadMedia", files={
            "file": ("input.jpg", request.image or b"", request.image_type)})
        raise_for(response)
        data = response.json().get("data", response.json())
        return data.get("download_url") or data["url"]

    async def _submit(self, request: SubmitRequest, idempotency_key: str, *,
                      taken: Taken) -> JobHandle:
        if request.mode in ("extend", "storyboard"):
            raise InvalidRequest(f"AtlasCloud models here take no {request.mode}")
        kind = "image-to-video" if request.mode == "image" else "text-to-video"
        params = dict(request.wire_params)
        model = params.pop("model", request.endpoint)
        body: dict[str, Any] = {"model": f"{model}/{kind}", "prompt": request.prompt,
                                "duration": request.seconds, "resolution": request.resolution,
                                "aspect_ratio": request.aspect_ratio, **params}
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.callback_url:
            body["webhook_url"] = request.callback_url
        if request.mode == "image":
            body["image_url"] = await self._upload(request)
        response = await self.send_once("/api/v1/model/generateVideo", json=body)
        raise_for(response)
        answer = response.json()
        data = answer.get("data") if isinstance(answer.get("data"), dict) else answer
        return self.handle(str(data["id"]))

    async def _prediction(self, handle: JobHandle) -> dict[str, Any]:
        response = await self.send("GET", f"/api/v1/model/prediction/{handle.job_id}")
        raise_for(response)
        answer = response.json()
        return answer.get("data") if isinstance(answer.get("data"), dict) else answer

    async def _status(self, handle: JobHandle) -> JobStatus:
        data = await self._prediction(handle)
        status = data.get("status", "processing")
        if status in DONE:
            return JobStatus(state="succeeded", progress=100.0)
        if status == "failed":
            code = _error_code(data)
            return JobStatus(state="failed", message=str(data.get("error") or "failed"),
                             error_code=None if code is None else str(code),
                             policy=code in MODERATION_CODES)
        # `starting` is what AtlasCloud's own skill docs show right after a submit
        return JobStatus(state="queued" if status in ("queued", "pending", "starting")
                         else "running")

    async def _result(self, handle: JobHandle) -> RemoteVideo:
        data = await self._prediction(handle)
        if data.get("status") == "failed":
            raise JobFailed(str(data.get("error") or "failed"),
                            policy=_error_code(data) in MODERATION_CODES)
        if data.get("status") not in DONE or not data.get("outputs"):
            raise InvalidRequest(f"prediction {handle.job_id} is {data.get('status')}")
        return RemoteVideo(url=data["outputs"][0])

    async def cancel(self, handle: JobHandle) -> bool:
        """No cancel is documented."""
        return False
