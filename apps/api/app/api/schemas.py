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

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: _error("No such resource (its id is in `details`)."),
    422: _error("The id is not valid."),
}
