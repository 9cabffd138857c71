"""The refusals of the key check, as HTTP errors with the JSON error body."""

from collections.abc import Mapping

from app.auth.scopes import Scope
from app.errors import AppError, ServiceUnavailableError

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="seiketsu-voice"'}


class MissingKeyError(AppError):
    status_code = 401
    code = "missing_api_key"

    def __init__(self) -> None:
        super().__init__(
            "An API key is required: Authorization: Bearer <key> or X-API-Key.",
            headers=_CHALLENGE,
        )


class InvalidKeyError(AppError):
    status_code = 401
    code = "invalid_api_key"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers=_CHALLENGE)


class InsufficientScopeError(AppError):
    status_code = 403
    code = "insufficient_scope"

    def __init__(self, required: Scope) -> None:
        super().__init__(
            f"This API key lacks the {required.value!r} scope.",
            details={"required_scope": required.value},
        )


class RateLimitedError(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, headers: Mapping[str, str], code: str | None = None) -> None:
        super().__init__(message, headers=headers)
        if code is not None:
            self.code = code


class AuthUnavailableError(ServiceUnavailableError):
    code = "auth_unavailable"

    def __init__(self) -> None:
        super().__init__(
            "API keys cannot be checked right now (state store unreachable).",
            headers={"Retry-After": "1"},
        )
