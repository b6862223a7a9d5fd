"""Capabilities an endpoint was found to refuse: something the catalog claims for a model (Kling
v3's video-extend, a 4K size, an app) that the endpoint answered with a refusal. Kept in the
journal's store of what is learned (storage.learned: beside a folder journal, or in its
database), so every worker sees it; one fact per (endpoint, model, capability), replaced whole
when learned again. The router reads them
to stop offering what was refused; `reelflow capabilities --forget` clears them (after the
provider adds the capability, or a refusal learned by mistake)."""

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from models import Endpoint, EndpointKind
from storage.learned import Learned, parsed


class EndpointRefusal(BaseModel):
    """Where a refusal came from, when, and in the provider's words."""

    protocol: str
    kind: EndpointKind = Field(description="sandbox (this home's, whatever its port) or real.")
    base_url: str = Field(description="The endpoint that refused.")
    model: str = Field(description="Catalog row id.")
    message: str = Field(description="The provider's answer.")
    learned_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Refusal(EndpointRefusal):
    """A capability refused."""

    capability: str = Field(description="`extend`, or a resolution such as `4k`.")

    def says(self) -> str:
        return (f"{self.capability} refused by {self.base_url} on "
                f"{self.learned_at:%Y-%m-%d %H:%M} UTC ({self.message})")


KIND = "capabilities"


def seen_here(protocol: str, kind: EndpointKind, base_url: str,
              endpoints: dict[str, Endpoint]) -> bool:
    """Whether something learned at (`protocol`, `kind`, `base_url`) is about an endpoint in
    use now: the same real base URL, or this home's sandbox (whichever port it has now)."""
    endpoint = endpoints.get(protocol)
    return endpoint is not None and endpoint.kind == kind and (
        kind == "sandbox" or endpoint.base_url == base_url)


class Capabilities:
    def __init__(self, store: Learned):
        self.store = store

    def learn(self, refusal: Refusal) -> None:
        key = hashlib.sha256("\n".join((refusal.base_url, refusal.model,
                                        refusal.capability)).encode()).hexdigest()[:24]
        self.store.put(key, refusal.model_dump_json(indent=2))

    def refusals(self) -> list[Refusal]:
        """Every refusal learned, oldest first; an unreadable one is skipped (it is only
        knowledge: the endpoint refuses again and it is learned again)."""
        return sorted(parsed(Refusal, self.store.texts()), key=lambda r: r.learned_at)

    def refused_here(self, endpoints: dict[str, Endpoint]) -> dict[tuple[str, str], str]:
        """(model, capability) -> why, for the refusals of the endpoints in use."""
        return {(r.model, r.capability): r.says() for r in self.refusals()
                if seen_here(r.protocol, r.kind, r.base_url, endpoints)}

    def forget(self) -> int:
        return self.store.forget()
