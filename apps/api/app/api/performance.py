"""GET /performance: rolling figures over the last 5 min, 1 h and 24 h, for every process."""

import time

from fastapi import APIRouter
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from app.analytics.rollups import WINDOWS, percentile
from app.deps import CacheDep, LimiterDep, RollupsDep
from app.errors import ServiceUnavailableError

router = APIRouter(tags=["performance"])


class Latency(BaseModel):
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class CacheFigures(BaseModel):
    hit_rate: float | None = Field(description="Segments answered from cache / all segments")
    bytes_served: int
    requests_hit: int
    requests_partial: int
    requests_miss: int
    requests_bypass: int


class LimiterFigures(BaseModel):
    acquisitions: int
    wait: Latency
    timeouts: int
    refused_cooling_down: int
    local_fallbacks: int
    peak_in_use: int


class WindowFigures(BaseModel):
    requests: int
    latency: Latency
    first_audio: Latency
    cache: CacheFigures
    characters_billed: int
    characters_saved: int
    quality_average: float | None
    error_rate: float | None
    fallback_rate: float | None
    limiter: LimiterFigures


class LimiterNow(BaseModel):
    slots: int
    in_use: int | None = Field(description="Held right now across every process")
    upstream_plan_limit: int | None = Field(
        description="maximum-concurrent-requests last reported by ElevenLabs"
    )
    global_mode: bool = Field(
        description="False while Redis is away and this process uses its share"
    )


class CacheNow(BaseModel):
    available: bool
    used_memory_bytes: int | None
    maxmemory_bytes: int | None
    maxmemory_policy: str | None
    evicted_keys: int | None = Field(description="Evictions the cache Redis has made")
    corrupt_values_seen: int = Field(description="Unusable values met by this process")
    promotions: int = Field(description="Segments this process promoted to the long TTL")
    memory_entries: int = Field(description="Segments this process holds in memory")
    memory_bytes: int = Field(description="What they take, roughly")
    memory_budget_bytes: int = Field(description="CACHE__MEMORY_BYTES (0: no memory tier)")
    memory_hits: int = Field(description="Segments this process found in its memory")
    memory_evictions: int = Field(description="Segments it let go to stay within the budget")


class Health(BaseModel):
    cache: CacheNow
    limiter: LimiterNow


class Performance(BaseModel):
    generated_at: float
    windows: dict[str, WindowFigures]
    now: Health


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _latency(totals: dict[str, float], metric: str) -> Latency:
    return Latency(
        p50_ms=_ms(percentile(totals, metric, 0.50)),
        p95_ms=_ms(percentile(totals, metric, 0.95)),
        p99_ms=_ms(percentile(totals, metric, 0.99)),
    )


def _int_or_none(value: int | str | None) -> int | None:
    return None if value is None else int(value)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _window(t: dict[str, float]) -> WindowFigures:
    requests = t.get("requests", 0.0)
    ok = t.get("outcome_ok", 0.0)
    segments = t.get("segments", 0.0)
    return WindowFigures(
        requests=int(requests),
        latency=_latency(t, "latency"),
        first_audio=_latency(t, "first_audio"),
        cache=CacheFigures(
            hit_rate=_ratio(t.get("segment_hits", 0.0), segments),
            bytes_served=int(t.get("cache_bytes_served", 0)),
            requests_hit=int(t.get("cache_hit", 0)),
            requests_partial=int(t.get("cache_partial", 0)),
            requests_miss=int(t.get("cache_miss", 0)),
            requests_bypass=int(t.get("cache_bypass", 0)),
        ),
        characters_billed=int(t.get("chars_billed", 0)),
        characters_saved=int(t.get("chars_saved", 0)),
        quality_average=_ratio(t.get("quality_sum", 0.0), segments),
        error_rate=_ratio(t.get("outcome_error", 0.0), requests),
        fallback_rate=_ratio(t.get("fallback", 0.0), ok),
        limiter=LimiterFigures(
            acquisitions=int(t.get("slot_acquired", 0)),
            wait=_latency(t, "slot_wait"),
            timeouts=int(t.get("slot_timeouts", 0)),
            refused_cooling_down=int(t.get("slot_cooldown_refusals", 0)),
            local_fallbacks=int(t.get("slot_local", 0)),
            peak_in_use=int(t.get("peak_slots_in_use", 0)),
        ),
    )


@router.get(
    "/performance",
    name="get_performance",
    summary="Rolling figures: latency, cache, characters billed and saved, limiter use",
    responses={503: {"description": "The state Redis holding the figures is unreachable"}},
)
async def get_performance(rollups: RollupsDep, limiter: LimiterDep, cache: CacheDep) -> Performance:
    try:
        await rollups.flush()
        windows = {
            name: _window(await rollups.window(minutes)) for name, minutes in WINDOWS.items()
        }
    except (RedisError, OSError) as exc:
        raise ServiceUnavailableError(
            "The figures live in Redis, which cannot be reached right now.",
            headers={"Retry-After": "5"},
        ) from exc
    memory = await cache.memory() or {}
    return Performance(
        generated_at=time.time(),
        windows=windows,
        now=Health(
            cache=CacheNow(
                available=cache.available,
                used_memory_bytes=_int_or_none(memory.get("used_memory_bytes")),
                maxmemory_bytes=_int_or_none(memory.get("maxmemory_bytes")),
                maxmemory_policy=str(memory["maxmemory_policy"]) if memory else None,
                evicted_keys=_int_or_none(memory.get("evicted_keys")),
                corrupt_values_seen=cache.corrupt_seen,
                promotions=cache.promotions,
                memory_entries=len(cache.hot),
                memory_bytes=cache.hot.bytes,
                memory_budget_bytes=cache.hot.max_bytes,
                memory_hits=cache.hot.hits,
                memory_evictions=cache.hot.evictions,
            ),
            limiter=LimiterNow(
                slots=limiter.limit,
                in_use=await limiter.in_use(),
                upstream_plan_limit=limiter.plan_limit,
                global_mode=limiter.global_mode,
            ),
        ),
    )
