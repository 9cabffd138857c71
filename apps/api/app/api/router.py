"""The voice API's routers: every surface under /api/v1/voice."""

from fastapi import APIRouter, FastAPI

from app.api import (
    agents,
    analytics,
    anomalies,
    health_detailed,
    jobs,
    keys,
    performance,
    profiles,
    quality,
    streaming,
    synthesize,
    ws_stream,
)
from app.api.schemas import AUTH_RESPONSES
from app.auth.scopes import Scope
from app.deps import require

VOICE_PREFIX = "/api/v1/voice"

# Busiest first: routes are matched in this order. Each is included into the app itself: every
# level of nested routers costs each request a walk of that level's candidates. Each router's
# routes need a key with its scope (the WebSocket checks its own, to answer on the handshake).
VOICE_ROUTERS: tuple[tuple[APIRouter, Scope | None], ...] = (
    (synthesize.router, Scope.SYNTHESIZE),
    (streaming.router, Scope.STREAM),
    (ws_stream.router, None),
    (jobs.router, Scope.BULK),
    (agents.router, Scope.ADMIN),
    (quality.router, Scope.ANALYTICS),
    (profiles.router, Scope.SYNTHESIZE),
    (performance.router, Scope.ANALYTICS),
    (analytics.router, Scope.ANALYTICS),
    (health_detailed.router, Scope.ANALYTICS),
    (anomalies.router, Scope.ANALYTICS),
)
BULK_PATH = VOICE_PREFIX + "/streaming/synthesize/bulk"
QUALITY_PATH = VOICE_PREFIX + "/streaming/quality/analyze"


def include_voice_api(app: FastAPI) -> None:
    for router, scope in VOICE_ROUTERS:
        if scope is None:
            app.include_router(router, prefix=VOICE_PREFIX)
        else:
            app.include_router(
                router, prefix=VOICE_PREFIX, dependencies=[require(scope)], responses=AUTH_RESPONSES
            )
    app.include_router(keys.router, dependencies=[require(Scope.ADMIN)], responses=AUTH_RESPONSES)
