"""What every command needs at start: validated settings and the catalog, or a UserError."""

from dataclasses import dataclass

from pydantic import ValidationError

from cli.errors import UserError, from_validation
from providers.catalog import Catalog, load_catalog
from settings import Settings, env_name, load_settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    catalog: Catalog


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
