"""User mistakes become one clear message and exit code 2 — never a traceback.

Every command funnels its failures through `UserError`: the field at fault, what is wrong, and
the values that would work. With --json the same error is printed as JSON on stdout.
"""

import json
import logging
import re
import sys
from typing import Any

from pydantic import ValidationError

from providers.catalog import CatalogError
from providers.router import PlanError
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
    return None


def advised_failures() -> tuple[type[Exception], ...]:
    """Provider and disk failures the CLI says in one line with what to do, exit 1: not the
    user's mistake (exit 2), not a bug (a traceback)."""
    from providers.errors import SubmitUnknown
    from providers.router import NoModelLeft
    from tasks.archiving import ClipLost, ClipUnarchived
    from tasks.awaiting import PendingAtDeadline
    from tasks.batch_summary import BatchIncomplete

    return (PendingAtDeadline, ClipLost, ClipUnarchived, SubmitUnknown, BatchIncomplete,
            NoModelLeft)


def explained(err: BaseException) -> bool:
    """A failure the CLI says in one line: a user's mistake (exit 2), or a provider or disk
    failure with what to do (exit 1)."""
    return isinstance(err, Exception) and (as_user_error(err) is not None
                                           or isinstance(err, advised_failures()))


class QuietExplained(logging.Filter):
    """Prefect logs a failed flow or task run with its traceback. For a failure the CLI
    explains in one line, or one a clip's fallback decides on and logs ("falling back from
    ..."), the traceback says nothing more, so it is dropped (the message stays); `--debug`
    keeps it."""

    def filter(self, record: logging.LogRecord) -> bool:
        from tasks.fallback import FALLBACK_ERRORS

        err = record.exc_info[1] if record.exc_info else None
        if err is not None and (explained(err) or isinstance(err, FALLBACK_ERRORS)):
            record.exc_info, record.exc_text = None, None
        return True


def quiet_prefect_tracebacks(quiet: bool) -> None:
    """Drop (or, with `--debug`, keep) Prefect's tracebacks of explained failures."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, QuietExplained)]:
            logger.removeFilter(old)
        if quiet:
            logger.addFilter(QuietExplained())


def report_error(error: UserError, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": error.as_dict()}, indent=2))
    else:
        print(f"reelflow: {error}", file=sys.stderr)
    return EXIT_USER_ERROR
