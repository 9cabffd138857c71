"""Shapes shared by every route's OpenAPI description: the JSON error body."""

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable snake_case code", examples=["validation_error"])
    message: str = Field(description="A sentence for a human")
    request_id: str | None = Field(description="The X-Request-ID of the failed request")
    details: Any = Field(default=None, description="Machine-readable specifics, when any")


class ErrorBody(BaseModel):
    error: ErrorDetail


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: _error("The request body is too large."),
    415: _error("The request body is not JSON."),
    422: _error("The request is not valid: which field and why are in `details`."),
    503: _error("No provider could speak right now; retry after `Retry-After` seconds."),
}

# Every route that needs an API key (DESIGN §8) may also answer these.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error("No API key, or not a valid one (malformed, unknown, revoked, expired)."),
    403: _error("The API key lacks the scope this route needs."),
    429: _error(
        "Over the key's requests or characters per minute, or too many invalid keys from "
        "this address; retry after `Retry-After` seconds. `RateLimit-*` headers tell the budget."
    ),
    503: _error("Unavailable right now; retry after `Retry-After` seconds."),
}

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _error("No such resource (its id is in `details`)."),
    422: _error("The id is not valid."),
}
