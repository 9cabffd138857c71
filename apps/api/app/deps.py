"""Annotated dependencies that read the lifespan state (they work for HTTP and WebSocket)."""

from typing import Annotated, Any, cast

from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from app.agents import AgentStore
from app.analytics.rollups import Rollups
from app.auth.access import OPEN
from app.auth.scopes import Scope
from app.cache.audio_cache import AudioCache
from app.config import Settings
from app.jobs.store import JobAudio, JobStore
from app.jobs.submission import JobSubmitter
from app.limits.upstream import UpstreamLimiter
from app.services import Services
from app.streaming.registry import SessionRegistry
from app.streaming.stalls import StreamWatch
from app.tts.language import LanguageDetector
from app.tts.service import SynthesisService


def _services(conn: HTTPConnection) -> Services:
    return cast(Services, conn.state.services)


async def get_services(conn: HTTPConnection) -> Services:
    return _services(conn)


async def get_settings_dep(conn: HTTPConnection) -> Settings:
    return cast(Settings, conn.state.settings)


async def get_redis(conn: HTTPConnection) -> Redis:
    return _services(conn).redis


async def get_synthesizer(conn: HTTPConnection) -> SynthesisService:
    return _services(conn).synthesizer


async def get_cache_redis(conn: HTTPConnection) -> Redis:
    return _services(conn).cache_redis


async def get_cache(conn: HTTPConnection) -> AudioCache:
    return _services(conn).cache


async def get_limiter(conn: HTTPConnection) -> UpstreamLimiter:
    return _services(conn).limiter


async def get_rollups(conn: HTTPConnection) -> Rollups:
    return _services(conn).rollups


async def get_session_registry(conn: HTTPConnection) -> SessionRegistry:
    return cast(SessionRegistry, conn.state.sessions)


async def get_stream_watch(conn: HTTPConnection) -> StreamWatch:
    return cast(StreamWatch, conn.state.streams)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ServicesDep = Annotated[Services, Depends(get_services)]
RedisDep = Annotated[Redis, Depends(get_redis)]
SynthesizerDep = Annotated[SynthesisService, Depends(get_synthesizer)]
CacheDep = Annotated[AudioCache, Depends(get_cache)]
LimiterDep = Annotated[UpstreamLimiter, Depends(get_limiter)]
RollupsDep = Annotated[Rollups, Depends(get_rollups)]
CacheRedisDep = Annotated[Redis, Depends(get_cache_redis)]
SessionRegistryDep = Annotated[SessionRegistry, Depends(get_session_registry)]
StreamWatchDep = Annotated[StreamWatch, Depends(get_stream_watch)]


async def get_agents(conn: HTTPConnection) -> AgentStore:
    return _services(conn).agents


async def get_jobs(conn: HTTPConnection) -> JobStore:
    return _services(conn).jobs


async def get_job_audio(conn: HTTPConnection) -> JobAudio:
    return _services(conn).job_audio


async def get_submitter(conn: HTTPConnection) -> JobSubmitter:
    return _services(conn).submitter


async def get_detector(conn: HTTPConnection) -> LanguageDetector:
    return _services(conn).detector


AgentsDep = Annotated[AgentStore, Depends(get_agents)]
JobsDep = Annotated[JobStore, Depends(get_jobs)]
JobAudioDep = Annotated[JobAudio, Depends(get_job_audio)]
SubmitterDep = Annotated[JobSubmitter, Depends(get_submitter)]
DetectorDep = Annotated[LanguageDetector, Depends(get_detector)]


def require(scope: Scope) -> Any:
    """A router dependency: the caller's key must hold `scope` (401/403/429 if not)."""

    async def admitted(conn: HTTPConnection) -> None:
        conn.state.caller = await _services(conn).access.admit(conn, scope)

    return Depends(admitted)


async def charge_characters(conn: HTTPConnection, characters: int) -> None:
    """Takes `characters` from the admitted caller's characters-per-minute bucket (or 429)."""
    caller = getattr(conn.state, "caller", OPEN)
    await _services(conn).access.charge_characters(conn, caller, characters)
