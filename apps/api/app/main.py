"""create_app(): the FastAPI application, its middleware, error handlers and routers."""

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig

from app.api import health, metrics
from app.api.router import BULK_PATH, QUALITY_PATH, include_voice_api
from app.auth.scopes import Scope
from app.config import Settings, get_settings
from app.deps import require
from app.errors import install_error_handlers
from app.lifespan import make_lifespan
from app.limits.body_size import BodySizeLimitMiddleware
from app.observability.logging import configure_logging
from app.observability.middleware import RequestIdMiddleware, RequestMetricsMiddleware

# On every response: no MIME sniffing of audio or JSON, never framed, no referrer leaks.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
NO_OPENTELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
KEY_SCHEMES: dict[str, Any] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "sv_<id>_<secret>"},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
# What a browser client may read from a cross-origin response.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-Cache",
    "X-Provider",
    "X-Language",
    "X-Persona",
    "X-Quality-Score",
    "X-Audio-Duration-Ms",
    "Server-Timing",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()
    app = FastAPI(
        title="Seiketsu Voice",
        summary="Text-to-speech for real-estate voice agents: ElevenLabs with an offline "
        "fallback, five personas, English, Spanish and Mandarin.",
        version="0.1.0",
        lifespan=make_lifespan(settings),
        # No OpenTelemetry: the service's figures are its Prometheus metrics. Left on, FastAPI
        # looked for OpenTelemetry providers on every request, for nothing.
        telemetry=NO_OPENTELEMETRY,
    )
    install_error_handlers(app)
    include_voice_api(app)
    app.include_router(health.router)
    # /metrics is open unless AUTH__ALLOW_METRICS_WITHOUT_KEY=false (then: analytics scope).
    metrics_guard = [] if settings.auth.allow_metrics_without_key else [require(Scope.ANALYTICS)]
    app.include_router(metrics.router, dependencies=metrics_guard)
    # Each one added wraps those added before: the request id exists before anything can
    # refuse the request, and request durations include everything, refusals too.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        path_limits={
            BULK_PATH: settings.server.max_bulk_body_bytes,
            QUALITY_PATH: settings.server.max_upload_bytes,
        },
        timeout_s=settings.server.body_timeout_s,
        max_json_depth=settings.server.max_json_depth,
    )
    app.add_middleware(RequestIdMiddleware, fixed_headers=SECURITY_HEADERS)
    if settings.analytics.record_requests:
        app.add_middleware(RequestMetricsMiddleware)
    if settings.auth.cors_origins:  # outermost: a preflight is answered before any key check
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.auth.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    open_paths = {"/health", "/ready"} | (set() if metrics_guard else {"/metrics"})
    _document_keys(app, open_paths)
    return app


def _document_keys(app: FastAPI, open_paths: set[str]) -> None:
    """The key schemes in OpenAPI, required by every operation but the open ones.

    Declared here rather than as security dependencies: those would parse the headers a
    second time on every request, for the documentation's sake.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = KEY_SCHEMES
            for path, operations in schema["paths"].items():
                if path not in open_paths:
                    for operation in operations.values():
                        operation["security"] = [{name: []} for name in KEY_SCHEMES]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
