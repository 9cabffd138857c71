"""The voice API's router: every surface under /api/v1/voice."""

from fastapi import APIRouter

from app.api import performance, profiles, streaming, synthesize, ws_stream

api_router = APIRouter(prefix="/api/v1/voice")
api_router.include_router(synthesize.router)
api_router.include_router(profiles.router)
api_router.include_router(performance.router)
api_router.include_router(streaming.router)
api_router.include_router(ws_stream.router)
