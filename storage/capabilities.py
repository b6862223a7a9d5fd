"""Capabilities an endpoint was found to refuse: something the catalog claims for a model (Kling
v3's video-extend, a 4K size, an app) that the endpoint answered with a refusal. Kept beside the
journal so every worker on the home sees it; one JSON file per (endpoint, model, capability),
written whole (a rename), so concurrent learners never leave half a file. The router reads them
to stop offering what was refused; `reelflow capabilities --forget` clears them (after the
provider adds the capability, or a refusal learned by mistake)."""

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from models import Endpoint, EndpointKind


class Refusal(BaseModel):
    """What was refused, where, when, and in the provider's words."""

    protocol: str
    kind: EndpointKind = Field(description="sandbox (this home's, whatever its port) or real.")
    base_url: str = Field(description="The endpoint that refused.")
    model: str = Field(description="Catalog row id.")
    capability: str = Field(description="`extend`, or a resolution such as `4k`.")
    message: str = Field(description="The provider's answer.")
    learned_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def says(self) -> str:
        return (f"{self.capability} refused by {self.base_url} on "
                f"{self.learned_at:%Y-%m-%d %H:%M} UTC ({self.message})")


class Capabilities:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, refusal: Refusal) -> Path:
        name = hashlib.sha256("\n".join((refusal.base_url, refusal.model,
                                         refusal.capability)).encode()).hexdigest()[:24]
        return self.root / f"{name}.json"

    def learn(self, refusal: Refusal) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(refusal)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(refusal.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(path)

    def refusals(self) -> list[Refusal]:
        """Every refusal learned, oldest first; an unreadable file is skipped (it is only
        knowledge: the endpoint refuses again and it is learned again)."""
        found = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            try:
                found.append(Refusal.model_validate_json(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, ValidationError):
                continue
        return sorted(found, key=lambda r: r.learned_at)

    def refused_here(self, endpoints: dict[str, Endpoint]) -> dict[tuple[str, str], str]:
        """(model, capability) -> why, for the refusals of the endpoints in use: the same real
        base URL, or this home's sandbox (whichever port it has now)."""
        def here(r: Refusal) -> bool:
            endpoint = endpoints.get(r.protocol)
            return endpoint is not None and endpoint.kind == r.kind and (
                r.kind == "sandbox" or endpoint.base_url == r.base_url)

        return {(r.model, r.capability): r.says() for r in self.refusals() if here(r)}

    def forget(self) -> int:
        gone = 0
        for path in self.root.glob("*.json") if self.root.is_dir() else []:
            path.unlink(missing_ok=True)
            gone += 1
        return gone
