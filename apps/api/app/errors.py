"""The error hierarchy's root and the one place it becomes an HTTP response."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

logger = logging.getLogger(__name__)


class AppError(Exception):
    """An expected failure with its HTTP status and a stable snake_case code."""

    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class BadRequestError(AppError):
    status_code = 400
    code = "bad_request"


class ValidationFailedError(AppError):
    status_code = 422
    code = "validation_error"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(AppError):
    status_code = 415
    code = "unsupported_media_type"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "service_unavailable"


class OverloadedError(ServiceUnavailableError):
    """This process cannot take more work now without failing what it already has."""

    code = "overloaded"


def request_id_of(request: HTTPConnection) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def error_body(
    code: str, message: str, request_id: str | None, details: Any = None
) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "request_id": request_id,
            "details": details,
        }
    }


def _render(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, request_id_of(request), details),
        status_code=status_code,
        headers=dict(headers or {}),
    )


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # The offending input is left out: it may be megabytes of text or a secret.
    return [
        {"loc": list(err.get("loc", ())), "msg": _message(err), "type": err.get("type", "")}
        for err in exc.errors()
    ]


def _message(err: Mapping[str, Any]) -> str:
    message = str(err.get("msg", ""))
    if err.get("type") == "json_invalid":  # why the body is not JSON (not UTF-8, too deep…)
        reason = (err.get("ctx") or {}).get("error")
        if reason:
            message = f"{message}: {reason}"
    return message


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        if exc.status_code >= 500:
            logger.warning("request failed: %s (%s)", exc.code, exc.message)
        return _render(request, exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        first = details[0]["msg"] if details else "invalid request"
        return _render(request, 422, "validation_error", f"Invalid request: {first}", details)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return _render(request, exc.status_code, code, str(exc.detail), None, exc.headers)

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return _render(request, 500, "internal_error", "An unexpected error occurred.")

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
