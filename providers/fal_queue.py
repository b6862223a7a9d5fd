"""fal queue adapter (Key auth; status, result and cancel through the URLs submit returned).

Guarantees: a submit is sent once. fal has no idempotency key and no lookup by client id, so a
submit whose outcome is unknown (timeout after the request left, a reset, a 5xx) raises
SubmitUnknown — a possible charge the caller records — and is never re-sent. (fal_client itself
retries its submit on 408/409/429/5xx: it can pay twice.) Images go as data URIs.
"""

import base64
from typing import Any

import httpx

from models import JobHandle, JobStatus, RemoteVideo, SubmitRequest
from providers import http
from providers.adapter import Adapter, Taken
from providers.errors import InvalidRequest, JobFailed, raise_by_status

POLICY_TYPES = {"content_policy_violation"}


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    kinds = {d.get("type") for d in detail if isinstance(d, dict)} if isinstance(
        detail, list) else set()
    raise_by_status(response.status_code, f"fal {response.status_code}: {detail}",
                    policy=bool(kinds & POLICY_TYPES),
                    retry_after_s=http.retry_after_s(response))


class FalQueue(Adapter):
    protocol = "fal_queue"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.credential.key.get_secret_value()}"}

    def arguments(self, request: SubmitRequest) -> dict[str, Any]:
        args: dict[str, Any] = {"aspect_ratio": request.aspect_ratio}
        if request.mode == "storyboard":
            args["multi_prompt"] = [{"prompt": s.prompt, "duration": str(s.seconds)}
                                    for s in request.shots]
        else:
            args.update({"prompt": request.prompt, "duration": str(request.seconds)})
        if request.negative_prompt:
            args["negative_prompt"] = request.negative_prompt
        if request.mode == "image":
            data = base64.b64encode(request.image or b"").decode()
            args["start_image_url"] = f"data:{request.image_type};base64,{data}"
            args.pop("aspect_ratio")
        return args

    def app_path(self, request: SubmitRequest) -> str:
        app = request.wire_params.get("app", request.endpoint)
        kind = "image-to-video" if request.mode == "image" else "text-to-video"
        return f"/{app}/{kind}"

    async def _submit(self, request: SubmitRequest, idempotency_key: str, *,
                      taken: Taken) -> JobHandle:
        if request.mode == "extend":
            raise InvalidRequest("fal has no extension endpoint for this model")
        response = await self.send_once(self.app_path(request), json=self.arguments(request))
        raise_for(response)
        body = response.json()
        return self.handle(body["request_id"], status_url=body["status_url"],
                           response_url=body["response_url"], cancel_url=body["cancel_url"])

    async def _status(self, handle: JobHandle) -> JobStatus:
        response = await self.send("GET", handle.extra["status_url"], params={"logs": 1})
        raise_for(response)
        body = response.json()
        if body["status"] == "IN_QUEUE":
            return JobStatus(state="queued", queue_position=body.get("queue_position"))
        if body["status"] == "IN_PROGRESS":
            logs = body.get("logs") or []
            return JobStatus(state="running", message=logs[-1]["message"] if logs else None)
        if body.get("error"):
            return JobStatus(state="failed", message=str(body["error"]),
                             error_code=body.get("error_type"),
                             policy=body.get("error_type") in POLICY_TYPES)
        return JobStatus(state="succeeded", progress=100.0)

    async def _result(self, handle: JobHandle) -> RemoteVideo:
        response = await self.send("GET", handle.extra["response_url"])
        if response.status_code == 400:
            raise InvalidRequest(f"request {handle.job_id} is not finished")
        if response.status_code >= 500 and response.headers.get("x-fal-error-type"):
            raise JobFailed(str(response.json().get("detail", "failed")),
                            code=response.headers["x-fal-error-type"])
        raise_for(response)
        video = response.json()["video"]
        return RemoteVideo(url=video["url"])

    async def cancel(self, handle: JobHandle) -> bool:
        response = await self.send("PUT", handle.extra["cancel_url"])
        return response.status_code == 202
