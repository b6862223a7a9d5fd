"""Credential objects handed to adapters. They print as their reference (the setting or Secret
block that holds them), never as the key; resolving a Prefect Secret is the caller's job."""

import time
from collections.abc import Callable

import jwt
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

# What a sandbox endpoint is called with when no key is configured: the keys the sandbox's
# default world accepts (it keeps its own copy; the two sides share no code).
SANDBOX_API_KEY = "reelflow-sandbox"
SANDBOX_KLING_KEYS = ("reelflow-sandbox-access", "reelflow-sandbox-secret-0123456789abcdef")


class ApiKey(BaseModel):
    """A Bearer (OpenAI, AtlasCloud) or Key (fal) credential."""

    model_config = ConfigDict(frozen=True)

    key: SecretStr
    ref: str = Field(description="Where it came from, e.g. OPENAI_API_KEY.")

    def __repr__(self) -> str:
        return f"ApiKey(ref={self.ref!r})"

    __str__ = __repr__


class KlingKeys(BaseModel):
    """Kling's access/secret pair: mints HS256 JWTs and refreshes them before they expire."""

    access_key: SecretStr
    secret_key: SecretStr
    ref: str = "KLING_ACCESS_KEY/KLING_SECRET_KEY"
    ttl_s: float = Field(default=1800, gt=10, description="Token lifetime.")
    refresh_before_s: float = Field(default=300, ge=0, description="Renew this long before exp.")
    _token: str | None = PrivateAttr(default=None)
    _expires: float = PrivateAttr(default=0.0)
    _clock: Callable[[], float] = PrivateAttr(default=time.time)

    def __repr__(self) -> str:
        return f"KlingKeys(ref={self.ref!r})"

    __str__ = __repr__

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Mint against another clock (the provider's, when ours is known to be off)."""
        self._clock = clock

    def token(self) -> str:
        current = self._clock()
        if self._token is None or current >= self._expires - self.refresh_before_s:
            self._expires = current + self.ttl_s
            self._token = jwt.encode(
                {"iss": self.access_key.get_secret_value(), "exp": int(self._expires),
                 "nbf": int(current - 5)},
                self.secret_key.get_secret_value(), algorithm="HS256",
                headers={"alg": "HS256", "typ": "JWT"})
        return self._token

    def invalidate(self) -> None:
        """Forget the token (the provider said it expired): the next call mints a new one."""
        self._token = None
