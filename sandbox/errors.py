"""What can go wrong inside the sandbox, before each protocol spells it in its own envelope."""


class SandboxError(Exception):
    """Base: a status and a message; each protocol module maps it to its wire shape."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.status = status or self.status
        self.code = code or self.code
        self.retry_after_s = retry_after_s


class BadRequest(SandboxError):
    status, code = 400, "invalid_request"


class UnsupportedMediaType(SandboxError):
    status, code = 415, "unsupported_media_type"


class Unauthorized(SandboxError):
    status, code = 401, "unauthorized"


class NotFound(SandboxError):
    status, code = 404, "not_found"


class Conflict(SandboxError):
    status, code = 409, "conflict"


class RateLimited(SandboxError):
    status, code = 429, "concurrency"


class AccountProblem(SandboxError):
    """The account is suspended, in arrears, out of credits, forbidden or IP-blocked."""

    status, code = 429, "account"


class PolicyRejected(SandboxError):
    status, code = 400, "policy"


class Unprocessable(SandboxError):
    status, code = 422, "unprocessable"
