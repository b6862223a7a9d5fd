"""Where a provider calls back about one step's job: the relay's URL for (protocol, clip, step),
and the per-job secret that URL carries.

The URL is fixed before the job exists (it rides in the submit), so it names the clip and the
step, never the job id; a resend of the same step sends the same URL. The secret is an HMAC of
those three under REELFLOW_WEBHOOK_SECRET: Kling's callbacks are not signed (by the public
record), so the secret in the path is what tells the relay that a delivery came from whoever we
gave the URL to — and even then a delivery only wakes a run, which re-reads the job's status from
the provider before acting. fal's and AtlasCloud's deliveries carry it too, beside their own
signatures.
"""

import hashlib
import hmac

from pydantic import BaseModel, Field

from models.terms import Protocol

HOOKED: tuple[Protocol, ...] = ("fal_queue", "kling_native", "atlascloud")


class Callback(BaseModel):
    """One step's callback address, before the base URL."""

    protocol: Protocol
    clip_id: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    index: int = Field(ge=0, lt=64)

    def token(self, secret: str) -> str:
        message = f"{self.protocol}/{self.clip_id}/{self.index}".encode()
        return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]

    def matches(self, token: str, secret: str) -> bool:
        return hmac.compare_digest(token.encode(), self.token(secret).encode())

    def url(self, base: str, secret: str) -> str:
        return (f"{base.rstrip('/')}/hooks/{self.protocol}/{self.clip_id}/{self.index}/"
                f"{self.token(secret)}")
