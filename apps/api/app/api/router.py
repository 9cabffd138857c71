"""The voice API's routers: every surface under /api/v1/voice."""

from fastapi import APIRouter, FastAPI

from app.api import (
    agents,
    analytics,
    anomalies,
    health_detailed,
    jobs,
    performance,
    profiles,
    quality,
    streaming,
    synthesize,
    ws_stream,
)

VOICE_PREFIX = "/api/v1/voice"

# Busiest first: routes are matched in this order. Each is included into the app itself: every
# level of nested routers costs each request a walk of that level's candidates.
VOICE_ROUTERS: tuple[APIRouter, ...] = (
    synthesize.router,
    streaming.router,
    ws_stream.router,
    jobs.router,
    agents.router,
    quality.router,
    profiles.router,
    performance.router,
    analytics.router,
    health_detailed.router,
    anomalies.router,
)
BULK_PATH = VOICE_PREFIX + "/streaming/synthesize/bulk"
QUALITY_PATH = VOICE_PREFIX + "/streaming/quality/analyze"


def include_voice_api(app: FastAPI) -> None:
    for router in VOICE_ROUTERS:
        app.include_router(router, prefix=VOICE_PREFIX)
