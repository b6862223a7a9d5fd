"""What a verified delivery says, per protocol: which job, whether it ended, and what
identifies the delivery (so a provider's retry or duplicate is taken once).

fal: `{request_id, gateway_request_id, status: OK|ERROR, payload, error}`, once at the end; its
retries repeat the request id, so (request id, status) is the delivery.
Kling: the task object itself on each status change (`{task_id, task_status, updated_at, ...}`;
a copy wrapped in `{code, message, data}` is read too, as the reference notes); a delivery is
(task id, status, updated_at), and only `succeed` or `failed` ends the job.
AtlasCloud: event `video.task.terminal`, `{event_type, session_id, status, payload, error}` with
the payload shaped like a poll's answer (its `id`; `data.id`, `id` or `session_id` are read too);
a delivery is (job, status), both signed (its X-AtlasCloud-Webhook-Id header is not).
Nothing here decides what the job cost: a delivery only wakes the run, which asks the provider.
"""

import json

from pydantic import BaseModel

KLING_ENDED = ("succeed", "failed")


class Malformed(ValueError):
    """Not the protocol's delivery: answered 400."""


class Said(BaseModel):
    job_id: str
    terminal: bool
    delivery_id: str


def _object(body: bytes) -> dict:
    try:
        found = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Malformed("the body is not JSON (or is nested too deep)") from None
    if not isinstance(found, dict):
        raise Malformed("the body is not a JSON object")
    return found


def _text(found: dict, field: str) -> str:
    value = found.get(field)
    if not isinstance(value, str | int) or not str(value):
        raise Malformed(f"the body has no {field}")
    return str(value)


def said_by_fal(body: bytes, request_id: str) -> Said:
    """`request_id`: the signed header's, which names the request (or, after fal retried it
    internally, its gateway request: the body has both)."""
    found = _object(body)
    job = _text(found, "request_id")
    if request_id not in (job, found.get("gateway_request_id")):
        raise Malformed("the body's request_id is not the signed one")
    status = _text(found, "status")
    return Said(job_id=job, terminal=True, delivery_id=f"{job}:{status}")


def said_by_kling(body: bytes) -> Said:
    found = _object(body)
    task = found["data"] if isinstance(found.get("data"), dict) else found
    job, status = _text(task, "task_id"), _text(task, "task_status")
    return Said(job_id=job, terminal=status in KLING_ENDED,
                delivery_id=f"{job}:{status}:{task.get('updated_at', '')}")


def said_by_atlascloud(body: bytes) -> Said:
    """The delivery is the job and its status, both in the signed body (the
    X-AtlasCloud-Webhook-Id header is not signed: a replay under a new id is a duplicate)."""
    found = _object(body)
    task = next((found[k] for k in ("payload", "data") if isinstance(found.get(k), dict)), found)
    job = _text({"id": task.get("id") or found.get("session_id")}, "id")
    status = found.get("status") or task.get("status") or ""
    return Said(job_id=job, terminal=True, delivery_id=f"{job}:{status}")
