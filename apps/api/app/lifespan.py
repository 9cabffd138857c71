"""The composition root: every long-lived client is built here, once, and closed after."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypedDict

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from app.config import Settings
from app.tts.fallback import ProviderChain
from app.tts.language import shared_detector
from app.tts.providers.elevenlabs import ElevenLabsProvider
from app.tts.providers.espeak import EspeakEngine, EspeakProvider, shared_engine
from app.tts.service import SynthesisService

logger = logging.getLogger(__name__)


class State(TypedDict):
    settings: Settings
    http_client: httpx.AsyncClient
    redis: Redis
    espeak: EspeakEngine
    synthesizer: SynthesisService


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    upstream = settings.elevenlabs
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=upstream.connect_timeout_s,
            read=upstream.read_timeout_s,
            write=upstream.read_timeout_s,
            pool=upstream.read_timeout_s,
        ),
        limits=httpx.Limits(
            max_connections=upstream.max_connections,
            max_keepalive_connections=upstream.max_connections,
        ),
    )


def make_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[State]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        http_client = build_http_client(settings)
        redis = Redis.from_url(
            settings.redis.url,
            socket_timeout=settings.redis.socket_timeout_s,
            socket_connect_timeout=settings.redis.socket_timeout_s,
        )
        espeak = shared_engine()
        detector, _ = await asyncio.gather(asyncio.to_thread(shared_detector), espeak.start())
        chain = ProviderChain(
            upstream=ElevenLabsProvider(
                http_client, settings.elevenlabs.base_url, settings.elevenlabs.key
            ),
            offline=EspeakProvider(espeak),
            budget_s=settings.synthesis.response_timeout_ms / 1000,
        )
        if settings.elevenlabs.key is None:
            logger.warning("ELEVEN_LABS_API_KEY is not set: speaking with the offline engine")
        try:
            yield State(
                settings=settings,
                http_client=http_client,
                redis=redis,
                espeak=espeak,
                synthesizer=SynthesisService(chain, detector, settings.synthesis),
            )
        finally:
            await http_client.aclose()
            await redis.aclose()

    return lifespan
