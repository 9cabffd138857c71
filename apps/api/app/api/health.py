"""GET /health (liveness) and GET /ready (lifespan done and Redis answering)."""

import time

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisError

from app.deps import RedisDep

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
    summary="Readiness: started and Redis answers",
    responses={503: {"model": Readiness, "description": "Not ready: see which check failed"}},
)
async def get_readiness(redis: RedisDep) -> JSONResponse:
    started = time.perf_counter()
    try:
        await redis.ping()
        check = Check(ok=True, latency_ms=_ms_since(started))
    except (RedisError, OSError) as exc:
        check = Check(ok=False, latency_ms=_ms_since(started), error=type(exc).__name__)
    ready = Readiness(status="ready" if check.ok else "not_ready", checks={"redis": check})
    return JSONResponse(ready.model_dump(), status_code=200 if check.ok else 503)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
