"""GET /streaming/health/detailed: every dependency with its status and latency.

Overall `ok`, `degraded` (something is wrong but the service still speaks: a Redis away, the
upstream failing, no worker alive, beat silent) or `down` (it cannot speak at all: neither
the offline engine nor ElevenLabs answers); HTTP 200, 200 and 503.
"""

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.deps import ServicesDep, SessionRegistryDep, StreamWatchDep
from app.jobs.celery_config import CACHE_MAINTAIN, EVALUATE, WARM_UP
from app.jobs.heartbeat import BEAT_EVERY_S, worker_beats
from app.jobs.schedule_runs import last_runs
from app.ops.loop_lag import lag_ms
from app.services import Services
from app.streaming.stalls import StreamWatch
from app.tts.circuit import ACCOUNT, CircuitState
from app.tts.errors import ProviderError
from app.tts.models import Language
from app.tts.personas import PROFILES
from app.tts.warm_up import last_probe, probe_upstream

# A loop this late is heard: callers get gaps, upstream's first bytes miss their budget.
OVERLOADED_LAG_MS = 250

router = APIRouter(prefix="/streaming", tags=["health"])

# A live upstream probe younger than this (from any process) is reused, not repeated.
_PROBE_FRESH_S = 30.0
_CHECK_TIMEOUT_S = 2.0
# A worker whose last beat is older than this is taken for dead.
_WORKER_SILENT_S = 3 * BEAT_EVERY_S


class Dependency(BaseModel):
    status: str = Field(description="`ok`, `degraded`, `down` or `not_configured`")
    latency_ms: float | None = None
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class DetailedHealth(BaseModel):
    status: str = Field(description="`ok`, `degraded` or `down` (HTTP 503: cannot speak)")
    checked_at: float
    dependencies: dict[str, Dependency]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


async def _redis(client: Redis, with_memory: bool) -> Dependency:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            await client.ping()
            details: dict[str, Any] = {}
            if with_memory:
                memory = await client.info("memory")
                details = {
                    "used_memory_bytes": int(memory.get("used_memory", 0)),
                    "maxmemory_bytes": int(memory.get("maxmemory", 0)),
                    "maxmemory_policy": str(memory.get("maxmemory_policy", "")),
                }
    except (RedisError, OSError, TimeoutError) as exc:
        return Dependency(status="down", latency_ms=_ms(started), error=type(exc).__name__)
    return Dependency(status="ok", latency_ms=_ms(started), details=details)


async def _offline_engine(services: Services) -> Dependency:
    started = time.perf_counter()
    voice = PROFILES[next(iter(PROFILES))].offline
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            pcm = await services.espeak.synthesize("OK.", Language.EN, voice)
    except ProviderError as exc:
        return Dependency(status="down", latency_ms=_ms(started), error=exc.message)
    except (OSError, RuntimeError, TimeoutError) as exc:
        return Dependency(status="down", latency_ms=_ms(started), error=repr(exc))
    if pcm.size == 0:
        return Dependency(status="down", latency_ms=_ms(started), error="no audio")
    return Dependency(status="ok", latency_ms=_ms(started), details={"samples": int(pcm.size)})


async def _elevenlabs(services: Services) -> Dependency:
    if not services.upstream.configured:
        return Dependency(
            status="not_configured", details={"note": "ELEVEN_LABS_API_KEY is not set"}
        )
    try:
        probe = await last_probe(services.redis)
    except (RedisError, OSError):
        probe = None
    if probe is None or time.time() - float(probe["at"]) > _PROBE_FRESH_S:
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT_S * 2):
                probe = await probe_upstream(services)
        except (RedisError, OSError) as exc:  # probed, but not recorded: Redis is away
            return Dependency(status="degraded", error=f"probe not recorded: {exc!r}")
        except TimeoutError:
            return Dependency(status="down", error="no answer within the probe's time")
    details = {
        key: probe.get(key)
        for key in ("tier", "character_count", "character_limit", "at")
        if probe.get(key) is not None
    }
    details["plan_concurrency_limit"] = services.limiter.plan_limit
    circuits = services.circuits.views()
    details["circuits"] = [view.as_dict() for view in circuits]
    errors = [v.as_dict()["last_error"] for v in circuits if v.last_error_at is not None]
    details["last_error"] = max(errors, key=lambda e: e["at"]) if errors else None
    account_open = any(v.voice == ACCOUNT and v.state is not CircuitState.CLOSED for v in circuits)
    voices_open = [v.voice for v in circuits if v.state is not CircuitState.CLOSED]
    if not probe.get("ok") or account_open:
        error = probe.get("error") or details["last_error"] or {}
        return Dependency(
            status="down",
            latency_ms=probe.get("latency_ms"),
            error=f"{error.get('code')}: {error.get('message')}",
            details=details,
        )
    if voices_open:
        return Dependency(
            status="degraded",
            latency_ms=probe.get("latency_ms"),
            error=f"circuit open for voice(s) {', '.join(voices_open)}: fallbacks speak",
            details=details,
        )
    return Dependency(status="ok", latency_ms=probe.get("latency_ms"), details=details)


async def _workers(services: Services) -> Dependency:
    started = time.perf_counter()
    try:
        beats = await worker_beats(services.redis)
    except (RedisError, OSError) as exc:
        return Dependency(status="degraded", latency_ms=_ms(started), error=type(exc).__name__)
    alive = [beat for beat in beats if beat["age_s"] <= _WORKER_SILENT_S]
    details = {"alive": alive, "silent": [b for b in beats if b not in alive]}
    if not alive:
        return Dependency(
            status="degraded",
            latency_ms=_ms(started),
            error="no Celery worker has beaten recently: jobs wait in the queue",
            details=details,
        )
    return Dependency(status="ok", latency_ms=_ms(started), details=details)


async def _beat(services: Services) -> Dependency:
    started = time.perf_counter()
    try:
        runs = await last_runs(services.redis)
    except (RedisError, OSError) as exc:
        return Dependency(status="degraded", latency_ms=_ms(started), error=type(exc).__name__)
    details = {
        task: {
            "slot": run.get("slot"),
            "started_at": run.get("started_at"),
            "finished_at": run.get("finished_at"),
        }
        for task, run in runs.items()
        if task in (CACHE_MAINTAIN, WARM_UP, EVALUATE)
    }
    heartbeat = runs.get(EVALUATE)
    silent_after_s = 3 * services.settings.jobs.evaluate_every_s
    if heartbeat is None or time.time() - float(heartbeat["finished_at"]) > silent_after_s:
        return Dependency(
            status="degraded",
            latency_ms=_ms(started),
            error=f"no {EVALUATE} run in the last {silent_after_s:.0f} s: is beat running?",
            details=details,
        )
    return Dependency(status="ok", latency_ms=_ms(started), details=details)


async def _limiter(services: Services) -> Dependency:
    started = time.perf_counter()
    in_use = await services.limiter.in_use()
    limiter = services.limiter
    details = {
        "slots": limiter.limit,
        "in_use": in_use,
        "global_mode": limiter.global_mode,
        "upstream_plan_limit": limiter.plan_limit,
    }
    healthy = in_use is not None and limiter.global_mode
    return Dependency(
        status="ok" if healthy else "degraded",
        latency_ms=_ms(started),
        error=None if healthy else "Redis unreachable: each process uses its share of slots",
        details=details,
    )


async def _stalled_streams(streams: StreamWatch) -> Dependency:
    started = time.perf_counter()
    stalled = await streams.everywhere()
    details = {"stall_after_s": streams.stall_after_s, "streams": stalled}
    if stalled:
        return Dependency(
            status="degraded",
            latency_ms=_ms(started),
            error=f"{len(stalled)} stream(s) moved no audio for {streams.stall_after_s:g} s",
            details=details,
        )
    return Dependency(status="ok", latency_ms=_ms(started), details=details)


def _process(services: Services) -> Dependency:
    """This process: what a leak would show first (tasks, open files, memory), and overload."""
    fds = Path("/proc/self/fd")
    status = Path("/proc/self/status")
    rss_kb = (
        next(
            (
                int(line.split()[1])
                for line in status.read_text().splitlines()
                if line.startswith("VmRSS:")
            ),
            None,
        )
        if status.exists()
        else None
    )
    lag = lag_ms(services.loop_lag, services.settings.streaming.overload_window_s)
    overloaded = lag >= OVERLOADED_LAG_MS
    return Dependency(
        status="degraded" if overloaded else "ok",
        error=f"the event loop lags by {lag:.0f} ms: this process is overloaded"
        if overloaded
        else None,
        details={
            "pid": os.getpid(),
            "asyncio_tasks": len(asyncio.all_tasks()),
            "open_fds": len(list(fds.iterdir())) if fds.exists() else None,
            "rss_bytes": rss_kb * 1024 if rss_kb is not None else None,
            "event_loop_lag_ms": round(lag, 1),
        },
    )


@router.get(
    "/health/detailed",
    name="get_detailed_health",
    summary="Every dependency with status and latency; 503 only when the service cannot speak",
    response_model=DetailedHealth,
    responses={503: {"model": DetailedHealth, "description": "Nothing can speak right now."}},
)
async def get_detailed_health(
    services: ServicesDep, sessions: SessionRegistryDep, streams: StreamWatchDep
) -> JSONResponse:
    cache_is_state = services.cache_redis is services.redis
    checks = await asyncio.gather(
        _redis(services.redis, with_memory=False),
        _redis(services.cache_redis, with_memory=True),
        _elevenlabs(services),
        _offline_engine(services),
        _workers(services),
        _beat(services),
        _limiter(services),
        _stalled_streams(streams),
    )
    names = ("state_redis", "cache_redis", "elevenlabs", "offline_engine", "workers", "beat")
    dependencies = dict(zip((*names, "limiter", "stalled_streams"), checks, strict=True))
    if cache_is_state:
        dependencies["cache_redis"].details["same_server_as_state"] = True
    dependencies["process"] = _process(services)
    dependencies["websocket_sessions"] = Dependency(
        status="ok",
        details={"this_process": sessions.local, "all_processes": await sessions.global_count()},
    )
    can_speak = (
        dependencies["offline_engine"].status == "ok" or dependencies["elevenlabs"].status == "ok"
    )
    if not can_speak:
        status = "down"
    elif all(d.status in ("ok", "not_configured") for d in dependencies.values()):
        status = "ok"
    else:
        status = "degraded"
    body = DetailedHealth(status=status, checked_at=time.time(), dependencies=dependencies)
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if status == "down" else 200)
