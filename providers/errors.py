"""One exception per meaning, mapped once in each adapter from (HTTP status, provider code).

Callers decide by type, never by message: RateLimited waits for a slot; AccountError stops that
account (CredentialsRefused: because its key was refused); Rejected (content policy) re-routes;
InvalidRequest is our bug or the user's (CapabilityRefused: a capability the catalog claims,
refused by the endpoint); Transient is retried within a deadline; JobFailed is
the provider's failure of a paid job; Expired means the output URL is gone; SubmitUnknown means
a paid submit may or may not have happened and the protocol gives no way to find out (fal) — it
is recorded, never blindly re-sent. Messages never contain a credential.
"""


class ProviderError(Exception):
    """Base of every provider failure."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class RateLimited(ProviderError):
    """Out of concurrency or rate: wait for a slot (Retry-After when the protocol sends it)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class AccountError(ProviderError):
    """Credentials, quota, arrears, permission: never retried; stop using the account."""


class CredentialsRefused(AccountError):
    """The key itself was refused (HTTP 401, or the protocol's authentication codes): the fix
    is the credential, not the request or the plan."""


class Rejected(ProviderError):
    """Content policy: never retried on this model."""


class InvalidRequest(ProviderError):
    """Any other 4xx: the request itself is wrong."""


class CapabilityRefused(InvalidRequest):
    """The endpoint refused (HTTP 400, to the field that asks for it) a capability the catalog
    claims for the model — Kling v3's video-extend, a 4K mode or size. Nothing was made, so
    nothing is billed; the refusal is learned beside the journal and routed around."""

    def __init__(self, message: str, *, capability: str, **kw):
        super().__init__(message, **kw)
        self.capability = capability


class Transient(ProviderError):
    """5xx, 408, timeouts and resets: worth retrying within a deadline."""


class JobFailed(ProviderError):
    """The provider failed a submitted job; `policy` when its content policy did."""

    def __init__(self, message: str, *, policy: bool = False, **kw):
        super().__init__(message, **kw)
        self.policy = policy


class Expired(ProviderError):
    """The output URL is gone (expired or deleted)."""


class SubmitUnknown(ProviderError):
    """The submit's outcome is unknown and cannot be looked up: a charge may have happened."""


def raise_by_status(status: int, message: str, *, policy: bool = False,
                    account_statuses: tuple[int, ...] = (401, 403),
                    retry_after_s: float | None = None) -> None:
    """The common mapping for protocols whose errors are read from the HTTP status."""
    if status == 401:
        raise CredentialsRefused(message, status=status)
    if status in account_statuses:
        raise AccountError(message, status=status)
    if status == 429:
        raise RateLimited(message, status=status, retry_after_s=retry_after_s)
    if policy:
        raise Rejected(message, status=status)
    if status >= 500 or status == 408:
        raise Transient(message, status=status)
    raise InvalidRequest(message, status=status)
