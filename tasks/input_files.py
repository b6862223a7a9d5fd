"""Files a user hands us (request files, manifests), read within documented limits before any
of their content is trusted: a size cap, UTF-8, JSON without NaN or Infinity and no deeper than
MAX_JSON_DEPTH. A breach is an InputError naming the field — never a traceback, never a hang.
"""

import json
from pathlib import Path
from typing import Any

MAX_REQUEST_BYTES = 1 << 20  # one request (a storyboard of many scenes fits in far less)
MAX_MANIFEST_BYTES = 256 << 20  # a manifest of about a million short rows
MAX_JSON_DEPTH = 32  # a request nests four levels deep (storyboard → scenes → scene → focus)


class InputError(ValueError):
    """A user's file we will not read: the field it is for, and why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def read_text(path: Path, field: str, limit: int) -> str:
    """The file's text, if it is a readable UTF-8 file of at most `limit` bytes."""
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputError(field, f"{path} is {size:,} bytes; at most {limit:,} are read")
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(field, f"{path} is not UTF-8 text (byte {err.start})") from None
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(field, f"no such file: {path}") from None
    except OSError as err:
        raise InputError(field, f"cannot read {path}: {err.strerror}") from None


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
