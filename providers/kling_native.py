"""Kling native adapter (HS256 JWT from the access/secret pair, refreshed before expiry).

Guarantees: every submit carries `external_task_id` = the idempotency key. When a submit's
outcome is unknown (timeout, reset, 5xx) the adapter looks the task up by that id and resubmits
only when Kling answers that no such task exists (and then once). Images go as raw base64.
Kling sends no Retry-After: a 429 (1302/1303) carries none and the caller backs off. There is
no cancel on this protocol.
"""

import base64
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from models import JobHandle, JobStatus, ProviderCharge, RemoteVideo, SubmitRequest
from providers import http
from providers.adapter import Adapter, Taken, nothing_taken
from providers.errors import (
    AccountError,
    CapabilityRefused,
    CredentialsRefused,
    InvalidRequest,
    JobFailed,
    RateLimited,
    Rejected,
    SubmitUnknown,
    Transient,
)

FAMILY = {"text": "text2video", "image": "image2video", "extend": "video-extend",
          "storyboard": "text2video"}
STATES = {"submitted": "queued", "processing": "running", "succeed": "succeeded",
          "failed": "failed"}
TOKEN_CODES = {1003, 1004}


def raise_for(response: httpx.Response, claimed: str | None = None) -> None:
    """The envelope's code as an exception; `claimed` names the capability the request asks
    for (extension, 4K), which a 400 with an invalid-parameter code refuses."""
    if response.status_code < 400:
        body = response.json()
        if body.get("code", 0) == 0:
            return
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = int(body.get("code") or 0)
    status = response.status_code
    message = f"Kling {status} code {code}: {body.get('message', '')}"
    if 1000 <= code <= 1004 or status == 401:
        raise CredentialsRefused(message, status=status, code=str(code))
    if 1100 <= code <= 1103 or code == 1304 or status == 403:
        raise AccountError(message, status=status, code=str(code))
    if code in (1302, 1303) or status == 429:
        raise RateLimited(message, status=status, code=str(code))
    if code in (1300, 1301):
        raise Rejected(message, status=status, code=str(code))
    if status >= 500 or 5000 <= code <= 5002 or status == 408:
        raise Transient(message, status=status, code=str(code))
    if claimed and status == 400 and code in (1200, 1201):
        raise CapabilityRefused(message, capability=claimed, status=status, code=str(code))
    raise InvalidRequest(message, status=status, code=str(code))


def claimed_capability(request: SubmitRequest) -> str | None:
    """What a request asks for that public references say Kling may refuse: video-extend
    (documented for v1.x videos only) and the 4K mode."""
    if request.mode == "extend":
        return "extend"
    return request.resolution if request.wire_params.get("mode") == "4k" else None


class KlingNative(Adapter):
    protocol = "kling_native"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credential.token()}"}

    async def call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """A request that renews the token once if Kling says it is not (or no longer) valid."""
        response = await self.send(method, url, **kwargs)
        if response.status_code == 401:
            try:
                code = int(response.json().get("code", 0))
            except ValueError:
                code = 0
            if code in TOKEN_CODES:
                self.credential.invalidate()
                response = await self.send(method, url, **kwargs)
        return response

    def body(self, request: SubmitRequest, key: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model_name": request.endpoint, "external_task_id": key}
        if request.callback_url:
            body["callback_url"] = request.callback_url
        if request.mode == "extend":
            body.update({"video_id": request.parent_video_id, "prompt": request.prompt})
            return body
        body.update({"duration": str(request.seconds), **request.wire_params})
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.camera_control:
            body["camera_control"] = request.camera_control
        if request.mode == "storyboard":
            body.update({"multi_shot": True, "shot_type": "customize", "multi_prompt": [
                {"index": i, "prompt": s.prompt, "duration": str(s.seconds)}
                for i, s in enumerate(request.shots, start=1)], "prompt": request.prompt})
        else:
            body["prompt"] = request.prompt
        if request.mode == "image":
            body["image"] = base64.b64encode(request.image or b"").decode()
        else:
            body["aspect_ratio"] = request.aspect_ratio
        return body

    async def _submit(self, request: SubmitRequest, idempotency_key: str, *,
                      taken: Taken) -> JobHandle:
        family = FAMILY[request.mode]
        body = self.body(request, idempotency_key)
        for _ in range(2):
            try:
                response = await self.call("POST", f"/v1/videos/{family}", json=body)
                if response.status_code < 500:
                    raise_for(response, claimed_capability(request))
                    return self.handle(response.json()["data"]["task_id"], family=family)
            except Transient:
                pass
            found = await self._lookup(family, idempotency_key, taken)
            if found is not None:
                return self.handle(found, family=family)
        raise SubmitUnknown("Kling submit failed twice and no task has its external_task_id")

    async def recover(self, request: SubmitRequest, idempotency_key: str,
                      since: object = None, *, taken: Taken = nothing_taken
                      ) -> JobHandle | None:
        family = FAMILY[request.mode]
        found = await self._lookup(family, idempotency_key, taken)
        return self.handle(found, family=family) if found else None

    async def _lookup(self, family: str, key: str, taken: Taken) -> str | None:
        """The task with this external_task_id; None only when Kling answers that there is
        none (404). A lookup that keeps failing is retried within the deadline, then
        SubmitUnknown: a failed lookup is not "not found"."""
        async def query() -> httpx.Response:
            response = await self.call("GET", f"/v1/videos/{family}/{key}")
            if response.status_code != 404:
                raise_for(response)
            return response

        try:
            response = await http.retrying(query, deadline_s=self.retry_deadline_s)
        except (Transient, RateLimited):
            raise SubmitUnknown("Kling submit outcome unknown and the lookup by "
                                "external_task_id did not answer") from None
        if response.status_code == 404:
            return None
        task_id = response.json()["data"]["task_id"]
        if taken(task_id):
            raise SubmitUnknown(f"task {task_id} with this external_task_id is claimed by "
                                "another clip")
        return task_id

    async def _task(self, handle: JobHandle) -> dict[str, Any]:
        family = handle.extra.get("family", "text2video")
        response = await self.call("GET", f"/v1/videos/{family}/{handle.job_id}")
        raise_for(response)
        return response.json()["data"]

    async def _status(self, handle: JobHandle) -> JobStatus:
        task = await self._task(handle)
        state = STATES.get(task["task_status"], "running")
        units = task.get("final_unit_deduction")
        return JobStatus(state=state, message=task.get("task_status_msg"),
                         progress=100.0 if state == "succeeded" else None,
                         billed_units=float(units) if units not in (None, "") and state in (
                             "succeeded", "failed") else None)

    async def _result(self, handle: JobHandle) -> RemoteVideo:
        task = await self._task(handle)
        if task["task_status"] == "failed":
            raise JobFailed(task.get("task_status_msg") or "failed")
        if task["task_status"] != "succeed":
            raise InvalidRequest(f"task {handle.job_id} is {task['task_status']}")
        video = task["task_result"]["videos"][0]
        return RemoteVideo(url=video["url"], seconds=float(video["duration"]),
                           video_id=video["id"])

    async def charges(self, since: datetime, until: datetime) -> list[ProviderCharge]:
        """Balance Deduction Detail (POST /account/billing/balance), every page."""
        body: dict[str, Any] = {"start_time": int(since.timestamp() * 1000),
                                "end_time": int(until.timestamp() * 1000), "limit": 500}
        found: list[ProviderCharge] = []
        while True:
            response = await http.retrying(lambda b=dict(body): self._deductions(b),
                                           deadline_s=self.retry_deadline_s)
            data = response.json()["data"]
            found += [ProviderCharge(job_id=row["task_id"], usd=Decimal(row["deduction_amount"]),
                                     at=datetime.fromtimestamp(int(row["deduction_time"]) / 1000,
                                                               UTC))
                      for row in data["result"]["detail"]]
            if not data.get("has_more"):
                return found
            body = {"cursor": data["next_cursor"]}

    async def _deductions(self, body: dict[str, Any]) -> httpx.Response:
        response = await self.call("POST", "/account/billing/balance", json=body)
        raise_for(response)
        return response

    async def cancel(self, handle: JobHandle) -> bool:
        """Kling's API has no cancel."""
        return False
