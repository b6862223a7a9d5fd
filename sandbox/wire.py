"""Small helpers every protocol module uses to read requests."""

import base64
import binascii
import io
import json
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from sandbox.errors import BadRequest, Unprocessable, UnsupportedMediaType

# what a body of the wrong shape raises in a handler that trusted it: the client's 400, as a
# provider would answer, never the sandbox's 500
MALFORMED = (TypeError, ValueError, KeyError, AttributeError, IndexError)


async def guarded(call: Awaitable[Response]) -> Response:
    """An endpoint's answer; a malformed body that slipped past its checks is a BadRequest."""
    try:
        return await call
    except MALFORMED as err:
        raise BadRequest(f"the request body is malformed ({type(err).__name__}: {err})"
                         ) from None


async def body(request: Request) -> dict[str, Any]:
    """JSON or multipart; multipart keys like `video[id]` become nested dicts."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("multipart/form-data") or kind.startswith(
            "application/x-www-form-urlencoded"):
        form = await request.form()
        data: dict[str, Any] = {}
        for key, value in form.multi_items():
            if "[" in key and key.endswith("]"):
                outer, inner = key[:-1].split("[", 1)
                data.setdefault(outer, {})[inner] = value
            else:
                data[key] = value
        return data
    raw = await request.body()
    if not raw:
        return {}
    if kind and not kind.startswith("application/json"):
        raise UnsupportedMediaType(f"unsupported content type {kind.split(';')[0]}: send "
                                   "application/json or multipart/form-data")
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as err:
        raise BadRequest(f"invalid JSON body: {err}") from None
    if not isinstance(parsed, dict):
        raise BadRequest("the body must be a JSON object")
    return parsed


def callback_url(value: Any, field: str, where: str = "body") -> str | None:
    """A webhook URL the client asked deliveries to go to (absent: None); anything but an
    absolute http(s) URL is refused before a job exists."""
    if value is None or value == "":
        return None
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        err = Unprocessable(f"{field} must be an absolute http(s) URL")
        err.loc = [where, field]  # type: ignore[attr-defined]
        raise err
    return value


def json_part(value: Any) -> Any:
    """An object property of a multipart body, sent the way OpenAPI encodes one by default (an
    `application/json` part, which arrives here as its text) — the SDK flattens the same object
    to `video[id]` instead, which `body` already nests. Anything else is returned unchanged."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def image_from_bytes(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise BadRequest(f"the image could not be decoded: {err}") from None
    return image


def image_from_base64(text: str) -> Image.Image:
    if text.startswith("data:"):
        text = text.split(",", 1)[-1]
    try:
        return image_from_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        raise BadRequest("the image is not valid base64") from None


async def image_from_upload(value: Any) -> Image.Image:
    if isinstance(value, UploadFile):
        return image_from_bytes(await value.read())
    raise BadRequest("expected an uploaded image file")


def resolution_of(width: int, height: int) -> str:
    short = min(width, height)
    return "4k" if short >= 2160 else "1080p" if short >= 1080 else "720p"
