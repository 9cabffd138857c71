"""GET /analytics/summary, /trends, /agents/{id}: rolling figures by agent, persona, language."""

import asyncio
import time
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from app.analytics.rollups import Rollups, Scope, add_up, percentile
from app.api.schemas import NOT_FOUND, ErrorBody
from app.config import AnalyticsSettings
from app.deps import AgentsDep, RollupsDep, SettingsDep
from app.errors import ServiceUnavailableError, ValidationFailedError
from app.tts.models import AgentId, Language, Persona, Provider

router = APIRouter(prefix="/analytics", tags=["analytics"])

SUMMARY_WINDOWS = {"5m": 5, "1h": 60, "24h": 24 * 60}
AGENT_WINDOWS = {"1h": 60, "24h": 24 * 60}
TREND_WINDOWS = {"1h": 60, "6h": 6 * 60, "24h": 24 * 60}
TREND_STEPS = {"1m": 1, "5m": 5, "15m": 15, "1h": 60}
# Breakdowns cover the dimensions whose values are a fixed set; agents have their own route.
BREAKDOWN_DIMENSIONS: dict[str, tuple[str, ...]] = {
    "persona": tuple(p.value for p in Persona),
    "language": tuple(lang.value for lang in Language),
    "provider": tuple(p.value for p in Provider),
}

_T = TypeVar("_T")

_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The state Redis holding the figures is unreachable"}
}


class Latency(BaseModel):
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class FirstAudio(BaseModel):
    p50_ms: float | None
    p95_ms: float | None


class Figures(BaseModel):
    """One window of one scope; rates and percentiles are null when the window is empty."""

    requests: int
    error_rate: float | None = Field(description="Failed requests / all requests")
    fallback_rate: float | None = Field(
        description="Requests spoken by a fallback voice or provider / successful requests"
    )
    latency: Latency
    first_audio: FirstAudio
    cache_hit_rate: float | None = Field(description="Segments answered from cache / segments")
    characters_billed: int
    characters_saved: int
    quality_average: float | None = Field(description="Mean quality score (0–1) of segments")


class Breakdown(BaseModel):
    window: str = Field(description="The window the breakdown covers", examples=["1h"])
    persona: dict[str, Figures] = Field(description="Personas that spoke in the window")
    language: dict[str, Figures]
    provider: dict[str, Figures] = Field(
        description="Requests each provider spoke (in part, when a request fell back)"
    )


class Summary(BaseModel):
    generated_at: float
    windows: dict[str, Figures]
    breakdown: Breakdown


class TrendScope(BaseModel):
    dimension: str
    value: str


class TrendBucket(BaseModel):
    start: datetime
    requests: int
    latency_p95_ms: float | None
    cache_hit_rate: float | None
    quality_average: float | None
    error_rate: float | None
    fallback_rate: float | None


class Trends(BaseModel):
    generated_at: float
    window: str
    step: str
    scope: TrendScope | None = Field(description="The filter applied; null: the whole service")
    buckets: list[TrendBucket] = Field(
        description="Oldest first, aligned to the step; the last one is still filling"
    )


class AgentAnalytics(BaseModel):
    voice_agent_id: str
    generated_at: float
    windows: dict[str, Figures]
    recommendations: list[str] = Field(description="What to do about the last 24 h's figures")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(t: Mapping[str, float]) -> Figures:
    requests = t.get("requests", 0.0)
    segments = t.get("segments", 0.0)
    return Figures(
        requests=int(requests),
        error_rate=_ratio(t.get("outcome_error", 0.0), requests),
        fallback_rate=_ratio(t.get("fallback", 0.0), t.get("outcome_ok", 0.0)),
        latency=Latency(
            p50_ms=_ms(percentile(t, "latency", 0.50)),
            p95_ms=_ms(percentile(t, "latency", 0.95)),
            p99_ms=_ms(percentile(t, "latency", 0.99)),
        ),
        first_audio=FirstAudio(
            p50_ms=_ms(percentile(t, "first_audio", 0.50)),
            p95_ms=_ms(percentile(t, "first_audio", 0.95)),
        ),
        cache_hit_rate=_ratio(t.get("segment_hits", 0.0), segments),
        characters_billed=int(t.get("chars_billed", 0)),
        characters_saved=int(t.get("chars_saved", 0)),
        quality_average=_ratio(t.get("quality_sum", 0.0), segments),
    )


async def _read(work: Awaitable[_T]) -> _T:
    """`work`'s result; the state Redis being away is a 503, as for GET /performance."""
    try:
        return await work
    except (RedisError, OSError) as exc:
        raise ServiceUnavailableError(
            "The figures live in Redis, which cannot be reached right now.",
            headers={"Retry-After": "5"},
        ) from exc


async def _windows(
    rollups: Rollups, windows: Mapping[str, int], scope: Scope | None
) -> dict[str, Figures]:
    """Each window's figures, from one read of the longest window's minutes."""
    minutes = [totals for _, totals in await rollups.minutes(max(windows.values()), scope)]
    return {name: _figures(add_up(minutes[-length:])) for name, length in windows.items()}


@router.get(
    "/summary",
    name="get_analytics_summary",
    summary="Figures of the last 5 min, 1 h and 24 h, and the last hour by persona, language, "
    "provider",
    responses=_UNAVAILABLE,
)
async def get_analytics_summary(rollups: RollupsDep) -> Summary:
    await rollups.flush()
    scopes = [(dim, value) for dim, values in BREAKDOWN_DIMENSIONS.items() for value in values]
    windows = await _read(_windows(rollups, SUMMARY_WINDOWS, None))
    rows = await _read(
        asyncio.gather(*(rollups.window(SUMMARY_WINDOWS["1h"], scope) for scope in scopes))
    )
    breakdown: dict[str, dict[str, Figures]] = {dim: {} for dim in BREAKDOWN_DIMENSIONS}
    for (dim, value), totals in zip(scopes, rows, strict=True):
        if totals.get("requests"):
            breakdown[dim][value] = _figures(totals)
    return Summary(
        generated_at=time.time(),
        windows=windows,
        breakdown=Breakdown(window="1h", **breakdown),
    )


def _trend_scope(
    persona: Persona | None,
    language: Language | None,
    provider: Provider | None,
    voice_agent_id: str | None,
) -> Scope | None:
    given = [
        (dim, value)
        for dim, value in (
            ("persona", persona),
            ("language", language),
            ("provider", provider),
            ("agent", voice_agent_id),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise ValidationFailedError(
            "Filter by one of persona, language, provider or voice_agent_id at a time: "
            "figures are kept per dimension, not per combination.",
            details={"filters": [dim for dim, _ in given]},
        )
    return (given[0][0], str(given[0][1])) if given else None


def _bucket(start_minute: int, t: Mapping[str, float]) -> TrendBucket:
    figures = _figures(t)
    return TrendBucket(
        start=datetime.fromtimestamp(start_minute * 60, UTC),
        requests=figures.requests,
        latency_p95_ms=figures.latency.p95_ms,
        cache_hit_rate=figures.cache_hit_rate,
        quality_average=figures.quality_average,
        error_rate=figures.error_rate,
        fallback_rate=figures.fallback_rate,
    )


@router.get(
    "/trends",
    name="get_analytics_trends",
    summary="A series of buckets over a window, for the whole service or one scope",
    responses={
        404: NOT_FOUND[404],
        422: {"model": ErrorBody, "description": "A window, step or filter is not valid"},
        **_UNAVAILABLE,
    },
)
async def get_analytics_trends(
    rollups: RollupsDep,
    agents: AgentsDep,
    window: Annotated[
        Literal["1h", "6h", "24h"], Query(description="How far back: 1h, 6h or 24h")
    ] = "1h",
    step: Annotated[
        Literal["1m", "5m", "15m", "1h"], Query(description="Bucket length: 1m, 5m, 15m or 1h")
    ] = "5m",
    persona: Persona | None = None,
    language: Language | None = None,
    provider: Provider | None = None,
    voice_agent_id: Annotated[AgentId | None, Query(description="A registered agent")] = None,
) -> Trends:
    scope = _trend_scope(persona, language, provider, voice_agent_id)
    if voice_agent_id is not None:
        await _read(agents.require(voice_agent_id))
    await rollups.flush()
    now = time.time()
    current, length = int(now // 60), TREND_STEPS[step]
    # Buckets aligned to the step, from the one holding the window's first minute.
    first = (current - TREND_WINDOWS[window] + 1) // length * length
    minutes = await _read(rollups.minutes(current - first + 1, scope, now))
    grouped: dict[int, list[dict[str, float]]] = {}
    for minute, totals in minutes:
        grouped.setdefault(minute - (minute - first) % length, []).append(totals)
    return Trends(
        generated_at=now,
        window=window,
        step=step,
        scope=TrendScope(dimension=scope[0], value=scope[1]) if scope else None,
        buckets=[_bucket(start, add_up(parts)) for start, parts in grouped.items()],
    )


def recommend(figures: Figures, limits: AnalyticsSettings) -> list[str]:
    """Plain-language advice from one window's figures, against the anomaly thresholds."""
    if figures.requests == 0:
        return ["No traffic in this window: there is nothing to judge yet."]
    notes: list[str] = []
    if figures.requests < limits.min_requests:
        notes.append(f"Only {figures.requests} requests so far: treat these figures as indicative.")
    advice: list[str] = []
    if figures.error_rate is not None and figures.error_rate > limits.max_error_rate:
        advice.append(
            f"{figures.error_rate:.0%} of requests failed: check the upstream errors and "
            "GET /streaming/health/detailed."
        )
    if figures.fallback_rate is not None and figures.fallback_rate > limits.max_fallback_rate:
        advice.append(
            f"{figures.fallback_rate:.0%} of requests were spoken by a fallback voice or "
            "provider: check the agent's voice override and the upstream errors."
        )
    if figures.cache_hit_rate is not None and figures.cache_hit_rate < limits.cache_baseline_min:
        advice.append(
            f"Only {figures.cache_hit_rate:.0%} of segments came from the cache: pre-generate "
            "this agent's common phrases (POST /streaming/pregenerate) and list them as its "
            "custom phrases."
        )
    if figures.quality_average is not None and figures.quality_average < limits.min_quality:
        advice.append(
            f"Average quality {figures.quality_average:.2f} is below {limits.min_quality:.2f}: "
            "analyze a sample with POST /streaming/quality/analyze and try another voice or "
            "voice settings for this agent."
        )
    p95 = figures.latency.p95_ms
    first_p95 = figures.first_audio.p95_ms
    if (p95 is not None and p95 > limits.slow_p95_ms) or (
        first_p95 is not None and first_p95 > limits.slow_first_audio_p95_ms
    ):
        advice.append(
            "Responses are slow (p95 above target): serve common phrases from the cache by "
            "pre-generating them, and use the streaming routes so audio starts with the "
            "first segment."
        )
    return notes + (advice or ["The figures are within targets: nothing to change."])


@router.get(
    "/agents/{voice_agent_id}",
    name="get_agent_analytics",
    summary="One agent's figures over the last 1 h and 24 h, with recommendations",
    responses={**NOT_FOUND, **_UNAVAILABLE},
)
async def get_agent_analytics(
    voice_agent_id: Annotated[AgentId, Path(description="The voice agent's id.")],
    rollups: RollupsDep,
    agents: AgentsDep,
    settings: SettingsDep,
) -> AgentAnalytics:
    await _read(agents.require(voice_agent_id))
    await rollups.flush()
    windows = await _read(_windows(rollups, AGENT_WINDOWS, ("agent", voice_agent_id)))
    return AgentAnalytics(
        voice_agent_id=voice_agent_id,
        generated_at=time.time(),
        windows=windows,
        recommendations=recommend(windows["24h"], settings.analytics),
    )
