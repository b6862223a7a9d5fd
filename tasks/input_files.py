"""Files a user hands us (request files, manifests), read within documented limits before any
of their content is trusted: a size cap, UTF-8, JSON without NaN or Infinity and no deeper than
MAX_JSON_DEPTH. A breach is an InputError naming the field — never a traceback, never a hang.

A manifest and its images may be objects on a store (s3://bucket/prefix/batch.csv), read through
fsspec (storage/places.py) under the same limits: workers on other machines share no disk, only
the store. A missing object, a store that cannot be reached or refuses, a protocol no package
here speaks are InputErrors too. Web URLs (http, https) are not read: they are not a place the
user keeps files, and fetching whatever a file names is not ours to do.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fsspec.utils import get_protocol

from storage.places import open_place

MAX_REQUEST_BYTES = 1 << 20  # one request (a storyboard of many scenes fits in far less)
MAX_MANIFEST_BYTES = 256 << 20  # a manifest of about a million short rows
MAX_JSON_DEPTH = 32  # a request nests four levels deep (storyboard → scenes → scene → focus)


class InputError(ValueError):
    """A user's file we will not read: the field it is for, and why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def _store_errors() -> tuple[type[Exception], ...]:
    """What reading a store may raise besides OSError: botocore's own errors (s3fs: an endpoint
    that cannot be reached) are not OSErrors; a protocol fsspec does not know is a ValueError,
    one whose package is not installed an ImportError."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return (OSError, ValueError, ImportError)
    return (OSError, ValueError, ImportError, BotoCoreError)


STORE_ERRORS = _store_errors()


def is_store_url(location: str | Path) -> bool:
    """An object-store URL (s3://, gs://, ...) rather than a path or a web address."""
    text = str(location)
    return "://" in text and get_protocol(text) not in ("file", "http", "https")


def read_bytes(location: str | Path, field: str, limit: int,
               options: dict[str, Any] | None = None) -> bytes:
    """The bytes of a file, or of an object on a store (fsspec storage `options`), if it
    holds at most `limit` bytes."""
    if is_store_url(location):
        return _read_object(str(location), field, limit, options)
    path = Path(location)
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(field, f"{path} is {size:,} bytes; at most {limit:,} are read")
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(field, f"no such file: {path}") from None
    except OSError as err:
        raise InputError(field, f"cannot read {path}: {err.strerror}") from None


def _read_object(url: str, field: str, limit: int, options: dict[str, Any] | None) -> bytes:
    """An object's bytes, its size asked first so that nothing over `limit` is fetched."""
    with _reading(url, field):
        place = open_place(url, options)
        info = place.fs.info(place.root)
    if info["type"] != "file":
        raise InputError(field, f"no such file: {url}")
    if info["size"] > limit:
        raise InputError(field, f"{url} is {info['size']:,} bytes; at most {limit:,} are read")
    with _reading(url, field):
        return place.fs.cat_file(place.root)


@contextmanager
def _reading(url: str, field: str) -> Iterator[None]:
    """A store's failure while `url` is read, as the InputError a user can act on."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(field, f"no such file: {url}") from None
    except STORE_ERRORS as err:
        raise InputError(field, f"cannot read {url}: {err}") from None


def read_text(location: str | Path, field: str, limit: int,
              options: dict[str, Any] | None = None) -> str:
    """The text of a readable UTF-8 file or object of at most `limit` bytes."""
    try:
        return read_bytes(location, field, limit, options).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(field, f"{location} is not UTF-8 text (byte {err.start})") from None


def parse_json(text: str, field: str) -> Any:
    """JSON as the standard spells it (no NaN or Infinity), nested at most MAX_JSON_DEPTH."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise InputError(field, f"not valid JSON: {err}") from None
    except RecursionError:
        raise InputError(field, f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as err:  # NaN, Infinity
        raise InputError(field, str(err)) from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise InputError(field, f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows; give a finite number")


def _depth(value: Any) -> int:
    """How deep `value` nests, without recursion."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_JSON_DEPTH:
                todo += [(child, depth + 1) for child in
                         (item.values() if isinstance(item, dict) else item)]
    return deepest
