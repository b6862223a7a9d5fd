"""User mistakes become one clear message and exit code 2 — never a traceback.

Every command funnels its failures through `UserError`: the field at fault, what is wrong, and
the values that would work. With --json the same error is printed as JSON on stdout.
"""

import json
import re
import sys
from typing import Any

from pydantic import ValidationError

from providers.catalog import CatalogError
from providers.router import PlanError
from storage.journal import JournalUnavailable
from tasks.image_files import ImageError
from tasks.input_files import InputError
from tasks.manifest import ManifestError

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the input: field, message, allowed values (and every other field at fault)."""

    def __init__(
        self,
        field: str,
        message: str,
        allowed: list[str] | None = None,
        problems: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.field = field
        self.message = message
        self.allowed = allowed or []
        self.problems = problems or [(field, message)]

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "field": self.field, "message": self.message, "allowed": self.allowed
        }
        if len(self.problems) > 1:
            result["problems"] = [{"field": f, "message": m} for f, m in self.problems]
        return result

    def __str__(self) -> str:
        allowed = f" (allowed: {', '.join(self.allowed)})" if self.allowed else ""
        return one_line("; ".join(f"{f}: {m}" for f, m in self.problems) + allowed)


# everything str.splitlines() breaks a line at, and the other control characters
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """`text` on one line: a field name or value a user typed may hold line breaks."""
    return _BREAKS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _field_name(loc: tuple[Any, ...], names: dict[str, str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in names:
        parts[0] = names[parts[0]]
    return ".".join(parts) or "request"


def from_validation(err: ValidationError, names: dict[str, str] | None = None) -> UserError:
    """A pydantic error as one UserError listing every field at fault."""
    names = names or {}
    problems: list[tuple[str, str]] = []
    allowed: list[str] = []
    for item in err.errors():
        message = item["msg"].removeprefix("Value error, ")
        if "input" in item and not isinstance(item["input"], dict):
            message += f" (got {item['input']!r})"
        expected = item.get("ctx", {}).get("expected")
        if expected and not allowed:
            allowed = [v.strip(" '") for v in expected.replace(" or ", ", ").split(",")]
        problems.append((_field_name(item["loc"], names), message))
    field, message = problems[0]
    return UserError(field, message, allowed, problems)


def as_user_error(err: Exception) -> UserError | None:
    """Map the errors a user can cause to UserError; anything else stays a bug."""
    if isinstance(err, UserError):
        return err
    if isinstance(err, PlanError):
        return UserError(err.field, err.message, err.allowed)
    if isinstance(err, ManifestError):
        return UserError(err.field, err.message, err.allowed, err.problems)
    if isinstance(err, InputError):
        return UserError(err.field, err.message)
    if isinstance(err, ImageError):
        return UserError("image", str(err))
    if isinstance(err, CatalogError):
        return UserError("catalog", str(err))
    if isinstance(err, ValidationError):
        return from_validation(err)
    if isinstance(err, JournalUnavailable):
        return UserError("REELFLOW_JOURNAL", str(err), ["a folder",
                                                        "a reachable postgresql:// URL"])
    return None


def report_error(error: UserError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": error.as_dict()}, indent=2))
    else:
        print(f"reelflow: {error}", file=sys.stderr)
    return EXIT_USER_ERROR
