"""Where a protocol's requests go: the sandbox, or a real provider."""

from pydantic import BaseModel, Field

from models.terms import EndpointKind, Protocol


class Endpoint(BaseModel):
    """One protocol's destination, as settings resolved it."""

    protocol: Protocol = Field(description="Wire protocol.")
    kind: EndpointKind = Field(description="sandbox or real.")
    base_url: str | None = Field(
        default=None,
        description="Base URL or host; None for the sandbox until it is started (auto).",
    )
    credential_refs: tuple[str, ...] = Field(
        default=(), description="Names of the settings that hold the key, never the key."
    )
