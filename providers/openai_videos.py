"""OpenAI Videos (Sora 2) adapter.

Guarantees: a create is sent once. The API takes no idempotency key, so when a create's outcome
is unknown (timeout after the request left, a reset, a 5xx) the adapter lists recent videos and
takes the one unclaimed video matching what a video echoes of its create (prompt, model, size,
seconds) created since the submit began (server time, from the Date header). The caller holds a
lock per echo signature around the send, so that video can only be this create's. A listing
that fails is retried within the deadline and then SubmitUnknown — never "none"; only when two
answered listings show none is it created again, once. A second unknown outcome is
SubmitUnknown.
Images go as a multipart upload of exactly `size`. There is no cancel on this protocol.
"""

import asyncio
import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from models import JobHandle, JobStatus, RemoteVideo, SubmitRequest
from providers import http
from providers.adapter import Adapter, Taken
from providers.errors import (
    AccountError,
    CapabilityRefused,
    CredentialsRefused,
    Expired,
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


def raise_for(response: httpx.Response, claimed: dict[str, str] | None = None) -> None:
    """The `{"error": ...}` envelope as an exception; `claimed` maps a request field to the
    capability it asks for (`size` -> the resolution), which a 400 naming that field refuses."""
    if response.status_code < 400:
        return
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code") or ""
    message = f"OpenAI {response.status_code} {code}: {error.get('message', '')}".strip()
    if request_id := response.headers.get("x-request-id"):
        message += f" (request {request_id})"
    status = response.status_code
    if status == 401 or code == "invalid_api_key":
        raise CredentialsRefused(message, status=status, code=code)
    if status == 403 or code in ACCOUNT_CODES:
        raise AccountError(message, status=status, code=code)
    if status == 429:
        raise RateLimited(message, status=status, code=code,
                          retry_after_s=http.retry_after_s(response))
    if code in POLICY_CODES:
        raise Rejected(message, status=status, code=code)
    if status == 408 or status >= 500:
        raise Transient(message, status=status, code=code)
    param = error.get("param")
    if claimed and status == 400 and param in claimed:
        raise CapabilityRefused(message, capability=claimed[param], status=status, code=code)
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

    def echo_signature(self, request: SubmitRequest) -> str | None:
        """What a listed video echoes of its create: sends alike are serialised so that a
        lookup after an ambiguous create finds that create's video and no other."""
        return hashlib.sha256("\0".join((self.base_url, self.account, *_echo(request))
                                         ).encode()).hexdigest()

    async def _submit(self, request: SubmitRequest, idempotency_key: str, *,
                      taken: Taken) -> JobHandle:
        """Create once. An unknown outcome is resolved by listing (retried within the
        deadline; a listing that cannot answer is SubmitUnknown, never "none"); only when two
        answered listings show no such video is it created again, once."""
        started = datetime.now(UTC)
        for _ in range(2):
            try:
                response = await self._create(request)
                if response.status_code < 500:
                    raise_for(response, {"size": request.resolution})
                    return self.handle(response.json()["id"])
            except Transient:
                pass
            for look in range(2):
                if look:
                    await asyncio.sleep(http.backoff_s(1, 0.5, 2))
                found = await self._find(request, started, taken)
                if found is not None:
                    return self.handle(found)
        raise SubmitUnknown("Sora create failed twice with an unknown outcome; no matching "
                            "video was listed")

    async def recover(self, request: SubmitRequest, idempotency_key: str,
                      since: datetime, *, taken: Taken) -> JobHandle | None:
        found = await self._find(request, since, taken)
        return self.handle(found) if found else None

    async def _find(self, request: SubmitRequest, started: datetime, taken: Taken
                    ) -> str | None:
        """The one unclaimed video matching what the create echoes, created since it began
        (server time, from the Date header); None when the listing answers that there is
        none. SubmitUnknown when the listing cannot answer within the deadline, or when more
        than one unclaimed video matches (never guess between them)."""
        echo = _echo(request)
        matches: list[str] = []
        after: str | None = None
        since: float | None = None
        while True:
            params = {"limit": 100, "order": "desc", **({"after": after} if after else {})}
            try:
                response = await http.retrying(lambda p=params: self._list(p),
                                               deadline_s=self.retry_deadline_s)
            except (Transient, RateLimited):
                raise SubmitUnknown("Sora create outcome unknown and the video listing did not "
                                    "answer; nothing is sent again") from None
            if since is None:
                server_now = _server_time(response) or datetime.now(UTC).timestamp()
                # created_at and Date are whole seconds: 2 s covers both truncations
                since = server_now - (datetime.now(UTC) - started).total_seconds() - 2
            page = response.json()
            videos = page.get("data", [])
            for video in videos:
                if video.get("created_at", 0) >= since and _echoed(video, len(echo)) == echo \
                        and not taken(video["id"]):
                    matches.append(video["id"])
            if not page.get("has_more") or not videos or videos[-1].get(
                    "created_at", 0) < since:
                break
            after = videos[-1]["id"]
        if len(matches) > 1:
            raise SubmitUnknown(f"{len(matches)} unclaimed videos match this create; not "
                                "guessing which is ours")
        return matches[0] if matches else None

    async def _list(self, params: dict) -> httpx.Response:
        response = await self.send("GET", "/videos", params=params)
        raise_for(response)
        return response

    async def _get_video(self, handle: JobHandle, *, missing_is_gone: bool = False
                         ) -> tuple[dict[str, Any], httpx.Response]:
        """The video object. `missing_is_gone`: a 404 for a video this account made means it
        was deleted (or expired), so its output is Expired, not a bad request."""
        response = await self.send("GET", f"/videos/{handle.job_id}")
        if missing_is_gone and response.status_code == 404:
            raise Expired(f"video {handle.job_id} is gone at the provider (404)", status=404)
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
        video, _ = await self._get_video(handle, missing_is_gone=True)
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

    async def daily_costs(self, since: datetime, until: datetime) -> dict[date, Decimal]:
        """GET /organization/costs (daily buckets, every page). On the real API this needs an
        admin key: a project key's 401/403 is an AccountError the caller reports."""
        params: dict[str, Any] = {"start_time": int(since.timestamp()),
                                  "end_time": int(until.timestamp()), "bucket_width": "1d",
                                  "limit": 180}
        totals: dict[date, Decimal] = {}
        while True:
            response = await http.retrying(lambda p=dict(params): self._costs(p),
                                           deadline_s=self.retry_deadline_s)
            page = response.json()
            for bucket in page.get("data", []):
                day = datetime.fromtimestamp(bucket["start_time"], UTC).date()
                totals[day] = totals.get(day, Decimal(0)) + sum(
                    (Decimal(str((r.get("amount") or {}).get("value", 0)))
                     for r in bucket.get("results", [])), Decimal(0))
            if not page.get("has_more") or not page.get("next_page"):
                return totals
            params["page"] = page["next_page"]

    async def _costs(self, params: dict[str, Any]) -> httpx.Response:
        response = await self.send("GET", "/organization/costs", params=params)
        raise_for(response)
        return response

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


def _echo(request: SubmitRequest) -> tuple[str, ...]:
    """The fields of a create that a listed video echoes back. An extension's video shows
    its parent's model and size and the stitched total of seconds, none of which the request
    spells, so an extension is recognised by its prompt alone."""
    if request.mode == "extend":
        return (request.prompt,)
    return (request.prompt, request.wire_params.get("model", request.endpoint),
            str(request.seconds), request.size or "")


def _echoed(video: dict[str, Any], fields: int) -> tuple[str, ...]:
    """The same fields as _echo, read from a listed video."""
    return (video.get("prompt") or "", video.get("model") or "", str(video.get("seconds")),
            video.get("size") or "")[:fields]


def _server_time(response: httpx.Response) -> float | None:
    try:
        return parsedate_to_datetime(response.headers["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None
