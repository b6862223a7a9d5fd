"""What every command needs at start: validated settings and the catalog, or a UserError."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from cli.errors import UserError, from_validation
from models.request import LABELS_ALLOWED, as_labels
from providers.catalog import Catalog, load_catalog
from settings import Settings, env_name, load_settings
from storage.journal import Journal, open_journal


@dataclass(frozen=True)
class Context:
    settings: Settings
    catalog: Catalog

    def journal(self) -> Journal:
        """The journal the settings name (folder or PostgreSQL)."""
        return open_journal(self.settings.journal_place,
                            connections=self.settings.journal_connections)


def load_context() -> Context:
    """Read settings and catalog once; a bad environment names the variable at fault."""
    try:
        settings = load_settings()
    except ValidationError as err:
        names = {name: env_name(name) for name in Settings.model_fields}
        raise from_validation(err, names) from None
    return Context(settings=settings, catalog=load_catalog(settings.catalog))


def require(condition: bool, field: str, message: str, allowed: list[str] | None = None) -> None:
    if not condition:
        raise UserError(field, message, allowed)


def count(text: str, field: str, what: str) -> int:
    """A whole number, 1 or more, in ASCII digits (`'²'.isdigit()` is true, int('²') fails)."""
    require(text.isascii() and text.isdecimal() and int(text) > 0, field,
            f"{text!r} is not a count of {what}", ["a whole number, 1 or more"])
    return int(text)


def positive_amount(text: str, field: str, example: str, maximum: int = 10**9) -> Decimal:
    """A finite number above 0 and at most `maximum` (no NaN, no inf, no 1e309)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        value = Decimal(-1)
    require(value.is_finite() and 0 < value <= maximum, field,
            f"{text!r} is not a positive number up to {maximum:,}",
            [f"a positive number, e.g. {example}"])
    return value


def labels(value: object) -> dict[str, str]:
    """Labels from `--label key=value` flags or a request file's `labels`, or a UserError
    naming `labels` and what is allowed."""
    try:
        return as_labels(value)
    except ValueError as err:
        raise UserError("labels", str(err), [LABELS_ALLOWED]) from None


def output_path(text: str, field: str) -> Path:
    """Where a command will write, checked before any work: its folder exists and the name is
    not a folder."""
    path = Path(text)
    require(not path.is_dir(), field, f"{text} is a folder", ["a file path, e.g. out.jpg"])
    require(path.parent.is_dir(), field, f"no folder {path.parent} to write {path.name} in",
            ["a path in an existing folder"])
    return path
