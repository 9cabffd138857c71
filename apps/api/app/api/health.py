"""GET /health (liveness) and GET /ready (started; says "degraded" while Redis is away).

Without Redis the service still speaks (no cache, per-process upstream share), so /ready stays
200 and says "degraded" rather than taking every replica out of rotation at once. Only a
process that cannot speak at all (no offline engine and no ElevenLabs key) is not ready: 503.
"""

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.deps import CacheRedisDep, RedisDep, ServicesDep

router = APIRouter(tags=["health"])


class Liveness(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str | None = None


class Readiness(BaseModel):
    status: str
    checks: dict[str, Check]


@router.get("/health", name="get_health", summary="Liveness: the process answers")
async def get_health() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/ready",
    name="get_readiness",
    summary="Readiness: started; `degraded` while a Redis is unreachable",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Nothing can speak in this process."}},
)
async def get_readiness(
    redis: RedisDep, cache_redis: CacheRedisDep, services: ServicesDep
) -> JSONResponse:
    checks = {"redis": await _ping(redis)}
    if cache_redis is not redis:
        checks["cache_redis"] = await _ping(cache_redis)
    engine = services.espeak.started
    checks["offline_engine"] = Check(
        ok=engine, latency_ms=0.0, error=None if engine else "the offline engine did not start"
    )
    if not engine and not services.upstream.configured:
        body = Readiness(status="unavailable", checks=checks)
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    healthy = all(check.ok for check in checks.values())
    body = Readiness(status="ready" if healthy else "degraded", checks=checks)
    return JSONResponse(body.model_dump(mode="json"))


async def _ping(client: Redis) -> Check:
    started = time.perf_counter()
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        return Check(ok=False, latency_ms=_ms_since(started), error=type(exc).__name__)
    return Check(ok=True, latency_ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
