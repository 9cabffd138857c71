"""create_app(): the FastAPI application, its middleware, error handlers and routers."""

from fastapi import FastAPI

from app.api import health, metrics
from app.api.router import BULK_PATH, QUALITY_PATH, include_voice_api
from app.config import Settings, get_settings
from app.errors import install_error_handlers
from app.lifespan import make_lifespan
from app.limits.body_size import BodySizeLimitMiddleware
from app.observability.logging import configure_logging
from app.observability.middleware import RequestIdMiddleware, RequestMetricsMiddleware


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging()
    app = FastAPI(
        title="Seiketsu Voice",
        summary="Text-to-speech for real-estate voice agents: ElevenLabs with an offline "
        "fallback, five personas, English, Spanish and Mandarin.",
        version="0.1.0",
        lifespan=make_lifespan(settings),
    )
    install_error_handlers(app)
    include_voice_api(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Each one added wraps those added before: the request id exists before anything can
    # refuse the request, and request durations include everything, refusals too.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.server.max_body_bytes,
        path_limits={
            BULK_PATH: settings.server.max_bulk_body_bytes,
            QUALITY_PATH: settings.server.max_upload_bytes,
        },
    )
    app.add_middleware(RequestIdMiddleware)
    if settings.analytics.record_requests:
        app.add_middleware(RequestMetricsMiddleware)
    return app
