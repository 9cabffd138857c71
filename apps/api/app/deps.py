"""Annotated dependencies that read the lifespan state (they work for HTTP and WebSocket)."""

from typing import Annotated, cast

from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from app.config import Settings
from app.tts.service import SynthesisService


async def get_settings_dep(conn: HTTPConnection) -> Settings:
    return cast(Settings, conn.state.settings)


async def get_redis(conn: HTTPConnection) -> Redis:
    return cast(Redis, conn.state.redis)


async def get_synthesizer(conn: HTTPConnection) -> SynthesisService:
    return cast(SynthesisService, conn.state.synthesizer)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SynthesizerDep = Annotated[SynthesisService, Depends(get_synthesizer)]
