"""fal queue adapter (Key auth; status, result and cancel through the URLs submit returned).

Guarantees: a submit is sent once. The queue takes no idempotency key, but fal's Platform API
lists a key's requests per endpoint with their inputs (GET /v1/models/requests/by-endpoint,
expand=payloads): a submit whose outcome is unknown (timeout after the request left, a reset, a
5xx) is looked up there by its exact input — the caller serialises sends of one input, and a
request another clip claimed is never taken. A listing that cannot answer, or that shows none
yet (it may lag), is SubmitUnknown: nothing is re-sent in the same call; a later run that finds
none sends. (fal_client itself retries its submit on 408/409/429/5xx: it can pay twice.)
Images go as data URIs.
"""

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from models import JobHandle, JobStatus, ProviderCharge, RemoteVideo, SubmitRequest
from providers import http
from providers.adapter import Adapter, Taken, nothing_taken
from providers.errors import (
    InvalidRequest,
    JobFailed,
    RateLimited,
    SubmitUnknown,
    Transient,
    raise_by_status,
)

POLICY_TYPES = {"content_policy_violation"}
PLATFORM_URL = "https://api.fal.ai/v1"
# how far before a send the listing is asked to look (clock skew between us and fal)
LISTING_MARGIN = timedelta(minutes=5)
# fal caps a billing-events request's date range at 90 days (its Platform API reference)
BILLING_WINDOW = timedelta(days=90)


def _detail(response: httpx.Response) -> tuple[Any, set[str]]:
    """fal's `detail` (a string, or a list of `{loc, msg, type, ...}`) and the error types."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text[:200]
    kinds = {d.get("type") for d in detail if isinstance(d, dict)} if isinstance(
        detail, list) else set()
    return detail, kinds


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    detail, kinds = _detail(response)
    raise_by_status(response.status_code, f"fal {response.status_code}: {detail}",
                    policy=bool(kinds & POLICY_TYPES),
                    retry_after_s=http.retry_after_s(response))


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class FalQueue(Adapter):
    protocol = "fal_queue"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.credential.key.get_secret_value()}"}

    def arguments(self, request: SubmitRequest) -> dict[str, Any]:
        """The app's input. `generate_audio` always goes explicitly: fal's Kling apps make
        (and bill) a soundtrack unless told not to."""
        args: dict[str, Any] = {"aspect_ratio": request.aspect_ratio,
                                "generate_audio": request.audio}
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

    def platform_url(self) -> str:
        return self.base_url + "/platform/v1" if self.endpoint.kind == "sandbox" else PLATFORM_URL

    def echo_signature(self, request: SubmitRequest) -> str | None:
        """The listing echoes a request's whole input: sends of one input are serialised."""
        return hashlib.sha256("\0".join((self.base_url, self.account, self.app_path(request),
                                         _canonical(self.arguments(request)))).encode()
                              ).hexdigest()

    async def _submit(self, request: SubmitRequest, idempotency_key: str, *,
                      taken: Taken) -> JobHandle:
        if request.mode == "extend":
            raise InvalidRequest("fal has no extension endpoint for this model")
        started = datetime.now(UTC)
        try:
            response = await self.send_once(
                self.app_path(request), json=self.arguments(request),
                params={"fal_webhook": request.callback_url} if request.callback_url else None)
        except SubmitUnknown:
            found = await self.recover(request, idempotency_key, started, taken=taken)
            if found is None:
                raise SubmitUnknown("fal submit outcome unknown and the request listing shows "
                                    "none yet (it may lag); a later run looks again") from None
            return found
        raise_for(response)
        body = response.json()
        # the URLs are documented in the answer; one without them (the webhook example shows
        # only the ids) is served at the app's own request path
        urls = self.request_urls(request, body["request_id"])
        return self.handle(body["request_id"], **{k: body.get(k, v) for k, v in urls.items()})

    def request_urls(self, request: SubmitRequest, request_id: str) -> dict[str, str]:
        """A request's status, result and cancel URLs, under its app's owner/name."""
        app = "/".join(self.app_path(request).strip("/").split("/")[:2])
        base = f"{self.base_url}/{app}/requests/{request_id}"
        return {"status_url": base + "/status", "response_url": base,
                "cancel_url": base + "/cancel"}

    async def recover(self, request: SubmitRequest, idempotency_key: str,
                      since: datetime, *, taken: Taken = nothing_taken) -> JobHandle | None:
        """The one unclaimed request to this endpoint with exactly this input, sent since the
        submit began; None when the listing answers that there is none."""
        endpoint = self.app_path(request).lstrip("/")
        wanted = _canonical(self.arguments(request))
        params: dict[str, Any] = {"endpoint_id": endpoint, "expand": "payloads", "limit": 100,
                                  "start": (since - LISTING_MARGIN).isoformat()}
        matches: list[str] = []
        while True:
            try:
                page = await http.retrying(lambda p=dict(params): self._requests(p),
                                           deadline_s=self.retry_deadline_s)
            except (Transient, RateLimited):
                raise SubmitUnknown("fal submit outcome unknown and the request listing did "
                                    "not answer; nothing is sent again") from None
            matches += [item["request_id"] for item in page.get("items", [])
                        if _canonical(item.get("json_input")) == wanted
                        and not taken(item["request_id"])]
            if not page.get("has_more") or not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
        if len(matches) > 1:
            raise SubmitUnknown(f"{len(matches)} unclaimed fal requests have this input; not "
                                "guessing which is ours")
        if not matches:
            return None
        return self.handle(matches[0], **self.request_urls(request, matches[0]))

    async def _requests(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._platform("/models/requests/by-endpoint", params)

    async def _platform(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = await self.send("GET", self.platform_url() + path, params=params)
        raise_for(response)
        return response.json()

    async def charges(self, since: datetime, until: datetime) -> list[ProviderCharge]:
        """Per-request billing events (GET /v1/models/billing-events), every page, asked in
        windows of at most BILLING_WINDOW (fal caps a request's date range at 90 days)."""
        found: list[ProviderCharge] = []
        start = since
        while start < until:
            end = min(start + BILLING_WINDOW, until)
            found += await self._billing_events(start, end)
            start = end
        return found

    async def _billing_events(self, start: datetime, end: datetime) -> list[ProviderCharge]:
        params: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(),
                                  "limit": 1000}
        found: list[ProviderCharge] = []
        while True:
            page = await http.retrying(lambda p=dict(params): self._platform(
                "/models/billing-events", p), deadline_s=self.retry_deadline_s)
            found += [ProviderCharge(job_id=event["request_id"],
                                     usd=Decimal(str(event["cost_total"])),
                                     at=datetime.fromisoformat(event["timestamp"]))
                      for event in page.get("billing_events", [])]
            if not page.get("has_more") or not page.get("next_cursor"):
                return found
            params["cursor"] = page["next_cursor"]

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
        if response.status_code == 422:  # input or policy errors surface here, on a job
            detail, kinds = _detail(response)
            raise JobFailed(f"fal 422: {detail}", policy=bool(kinds & POLICY_TYPES),
                            status=422, code=next(iter(sorted(kinds)), None))
        raise_for(response)
        video = response.json()["video"]
        return RemoteVideo(url=video["url"])

    async def cancel(self, handle: JobHandle) -> bool:
        response = await self.send("PUT", handle.extra["cancel_url"])
        return response.status_code == 202
