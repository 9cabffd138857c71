"""The composition root: every long-lived client and service, built once per process.

The API's lifespan and each Celery worker process open the same services, so a job runs
through exactly the path a request does (cache, single-flight, limiter, provider chain).
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from celery import Celery
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.agents import AgentStore
from app.analytics.events import EventLog
from app.analytics.rollups import Rollups
from app.auth.access import Access
from app.cache.audio_cache import AudioCache
from app.cache.single_flight import SingleFlight
from app.config import Settings
from app.jobs.celery_config import make_celery
from app.jobs.store import JobAudio, JobStore
from app.jobs.submission import JobSubmitter
from app.limits.upstream import UpstreamLimiter
from app.notifications import Notifier
from app.ops.loop_lag import LoopLag
from app.tts.circuit import Circuits
from app.tts.errors import OfflineEngineError
from app.tts.fallback import ProviderChain, RetryPolicy
from app.tts.finishing import shared_finisher
from app.tts.language import LanguageDetector, shared_detector
from app.tts.providers.elevenlabs import ElevenLabsProvider
from app.tts.providers.espeak import EspeakEngine, EspeakProvider, shared_engine
from app.tts.providers.pools import pooled_transport
from app.tts.service import SynthesisService

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    http_client: httpx.AsyncClient
    redis: Redis
    cache_redis: Redis
    espeak: EspeakEngine
    detector: LanguageDetector
    upstream: ElevenLabsProvider
    cache: AudioCache
    limiter: UpstreamLimiter
    circuits: Circuits
    loop_lag: LoopLag | None
    access: Access
    rollups: Rollups
    events: EventLog
    agents: AgentStore
    jobs: JobStore
    job_audio: JobAudio
    submitter: JobSubmitter
    synthesizer: SynthesisService


def redis_client(url: str, settings: Settings) -> Redis:
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
        transport=pooled_transport(upstream.max_connections),
    )


async def _start(espeak: EspeakEngine) -> None:
    # A broken offline engine (its data missing, say) must not keep ElevenLabs from speaking:
    # the service starts, and health and readiness say what is wrong.
    try:
        await espeak.start()
    except (OfflineEngineError, OSError, RuntimeError):
        logger.exception("the offline engine could not start: only ElevenLabs can speak")


@asynccontextmanager
async def open_services(
    settings: Settings, celery: Celery | None = None, *, watch_loop: bool = False
) -> AsyncIterator[Services]:
    """Build and start every service; stop and close them all on the way out.

    `celery` is the app jobs are published through (the worker passes its own; the API
    builds one from its settings). `watch_loop` measures the loop's lag, for a process whose
    loop runs all the time (the API): a worker's runs only while a task does, and the idle
    time between two tasks would look like lag.
    """
    http_client = build_http_client(settings)
    redis = redis_client(settings.redis.url, settings)
    cache_url = settings.redis.effective_cache_url
    cache_redis = redis if cache_url == settings.redis.url else redis_client(cache_url, settings)
    # Flights announce themselves where the cache lives; releases where the limiter lives.
    cache_events = Notifier(cache_redis)
    state_events = Notifier(redis) if cache_redis is not redis else cache_events
    notifiers = [cache_events] if state_events is cache_events else [cache_events, state_events]
    cache = AudioCache(cache_redis, settings.cache)
    flights = SingleFlight(cache_redis, cache, cache_events, settings.cache.flight_wait_s)
    rollups = Rollups(redis)
    events = EventLog(redis)
    limiter = UpstreamLimiter(redis, state_events, settings.limiter, rollups)
    espeak = shared_engine()
    finisher = shared_finisher()
    finisher.start()
    upstream = ElevenLabsProvider(
        http_client, settings.elevenlabs.base_url, settings.elevenlabs.key
    )
    detector, _ = await asyncio.gather(asyncio.to_thread(shared_detector), _start(espeak))
    loop_lag = LoopLag() if watch_loop else None
    circuits = Circuits(redis, settings.circuit)
    chain = ProviderChain(
        upstream=upstream,
        offline=EspeakProvider(espeak),
        budget_s=settings.synthesis.response_timeout_ms / 1000,
        limiter=limiter,
        circuits=circuits,
        retry=RetryPolicy(
            retries=settings.synthesis.upstream_retries,
            base_s=settings.synthesis.retry_base_ms / 1000,
            stall_s=settings.synthesis.stall_ms / 1000,
        ),
        sound_gate_s=settings.synthesis.sound_gate_ms / 1000,
    )
    agents = AgentStore(redis)
    jobs = JobStore(redis, settings.jobs.retention_s)
    owns_celery = celery is None
    celery = celery or make_celery(settings)
    services = Services(
        settings=settings,
        http_client=http_client,
        redis=redis,
        cache_redis=cache_redis,
        espeak=espeak,
        detector=detector,
        upstream=upstream,
        cache=cache,
        limiter=limiter,
        circuits=circuits,
        loop_lag=loop_lag,
        access=Access(redis, settings.auth, state_events),
        rollups=rollups,
        events=events,
        agents=agents,
        jobs=jobs,
        job_audio=JobAudio(cache_redis, settings.jobs.retention_s),
        submitter=JobSubmitter(jobs, celery, settings.jobs.chunk_items),
        synthesizer=SynthesisService(
            chain,
            detector,
            cache,
            flights,
            rollups,
            settings.synthesis,
            agents,
            events,
            finisher,
            record=settings.analytics.record_requests,
        ),
    )
    if loop_lag is not None:
        loop_lag.start()
    cache.start()
    rollups.start()
    events.start()
    for notifier in notifiers:
        notifier.start()
    limiter.start()
    circuits.start(probe=chain.probe)
    if settings.elevenlabs.key is None:
        logger.warning("ELEVEN_LABS_API_KEY is not set: speaking with the offline engine")
    try:
        yield services
    finally:
        await rollups.stop()
        await events.stop()
        await cache.stop()
        await circuits.stop()
        await limiter.stop()
        if loop_lag is not None:
            await loop_lag.stop()
        for notifier in notifiers:
            await notifier.stop()
        await http_client.aclose()
        await redis.aclose()
        if cache_redis is not redis:
            await cache_redis.aclose()
        if owns_celery:
            celery.close()
