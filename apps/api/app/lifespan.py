"""The composition root: every long-lived client is built here, once, and closed after."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypedDict

import httpx
from fastapi import FastAPI
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.analytics.rollups import Rollups
from app.cache.audio_cache import AudioCache
from app.cache.single_flight import SingleFlight
from app.config import Settings
from app.limits.upstream import UpstreamLimiter
from app.notifications import Notifier
from app.streaming.registry import SessionRegistry
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
    cache_redis: Redis
    espeak: EspeakEngine
    cache: AudioCache
    limiter: UpstreamLimiter
    rollups: Rollups
    sessions: SessionRegistry
    synthesizer: SynthesisService


def _redis_client(url: str, settings: Settings) -> Redis:
    # A blocking pool: a burst waits briefly for a connection instead of failing outright.
    # One retry on a broken connection: after Redis restarts, pooled connections are stale
    # and each would otherwise fail one command (and pause the cache) before reconnecting.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis.max_connections,
        timeout=settings.redis.socket_timeout_s,
        socket_timeout=settings.redis.socket_timeout_s,
        socket_connect_timeout=settings.redis.socket_timeout_s,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)


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
        redis = _redis_client(settings.redis.url, settings)
        cache_url = settings.redis.effective_cache_url
        cache_redis = (
            redis if cache_url == settings.redis.url else _redis_client(cache_url, settings)
        )
        # Flights announce themselves where the cache lives; releases where the limiter lives.
        cache_events = Notifier(cache_redis)
        state_events = Notifier(redis) if cache_redis is not redis else cache_events
        cache = AudioCache(cache_redis, settings.cache)
        cache.start()
        flights = SingleFlight(cache_redis, cache, cache_events, settings.cache.flight_wait_s)
        rollups = Rollups(redis)
        rollups.start()
        limiter = UpstreamLimiter(redis, state_events, settings.limiter, rollups)
        espeak = shared_engine()
        detector, _ = await asyncio.gather(asyncio.to_thread(shared_detector), espeak.start())
        chain = ProviderChain(
            upstream=ElevenLabsProvider(
                http_client, settings.elevenlabs.base_url, settings.elevenlabs.key
            ),
            offline=EspeakProvider(espeak),
            budget_s=settings.synthesis.response_timeout_ms / 1000,
            limiter=limiter,
        )
        notifiers = [cache_events] if state_events is cache_events else [cache_events, state_events]
        for notifier in notifiers:
            notifier.start()
        limiter.start()
        sessions = SessionRegistry(redis)
        sessions.start()
        if settings.elevenlabs.key is None:
            logger.warning("ELEVEN_LABS_API_KEY is not set: speaking with the offline engine")
        state = State(
            settings=settings,
            http_client=http_client,
            redis=redis,
            cache_redis=cache_redis,
            espeak=espeak,
            cache=cache,
            limiter=limiter,
            rollups=rollups,
            sessions=sessions,
            synthesizer=SynthesisService(
                chain, detector, cache, flights, rollups, settings.synthesis
            ),
        )
        # What start-up loaded (language models, the app, schemas: ~90k objects) lives as long
        # as the process; left to the cyclic GC, each full collection walked all of it, a
        # ~30 ms stall that was the p99 of cache hits under load.
        gc.freeze()
        try:
            yield state
        finally:
            gc.unfreeze()
            await sessions.stop()
            await rollups.stop()
            await cache.stop()
            await limiter.stop()
            for notifier in notifiers:
                await notifier.stop()
            await http_client.aclose()
            await redis.aclose()
            if cache_redis is not redis:
                await cache_redis.aclose()

    return lifespan
