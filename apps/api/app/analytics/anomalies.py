"""Anomaly detection: the last window's events, overall and per agent, against fixed thresholds
and each scope's own baseline; the anomalies firing now and a capped history, in Redis.

An anomaly is identified by a fingerprint of its labels (alertname, severity, service, scope),
as Alertmanager identifies alerts. Baselines are EWMAs updated once per evaluation, and only
while the scope is healthy, so a long incident does not become the new normal.
"""

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from app.analytics.events import AnalyticsEvent, EventLog
from app.config import AnalyticsSettings
from app.redis_text import text
from app.tts.circuit import ACCOUNT, CircuitState, CircuitView

SERVICE = "seiketsu-voice"
CURRENT = "sv:analytics:anomalies"  # hash: fingerprint -> JSON of the firing anomaly
HISTORY = "sv:analytics:anomaly-history"  # list, newest first: started and resolved anomalies
BASELINES = "sv:analytics:baselines"  # hash: "<figure>:<scope>" -> EWMA

OVERALL = "*"  # the scope key of every request together

_CACHE_WEIGHTS = {"hit": 1.0, "partial": 0.5, "miss": 0.0}


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One scope's figures over the window (None where there was nothing to measure)."""

    requests: int
    latency_p95_ms: float | None
    first_audio_p95_ms: float | None
    error_rate: float | None
    fallback_rate: float | None
    cache_hit_rate: float | None
    quality_average: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Detection:
    """A condition found in this evaluation."""

    alertname: str
    severity: str
    scope: Mapping[str, str]
    summary: str
    description: str

    @property
    def labels(self) -> dict[str, str]:
        return {
            "alertname": self.alertname,
            "severity": self.severity,
            "service": SERVICE,
            **self.scope,
        }


@dataclass(slots=True)
class Anomaly:
    """A stored anomaly: firing while `ends_at` is None."""

    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None = None
    last_sent_at: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "Anomaly":
        return cls(**json.loads(raw))


@dataclass(slots=True)
class Transition:
    """What changed in one evaluation."""

    started: list[Anomaly] = field(default_factory=list)
    continuing: list[Anomaly] = field(default_factory=list)
    resolved: list[Anomaly] = field(default_factory=list)


def fingerprint(labels: Mapping[str, str]) -> str:
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summarize(events: Iterable[AnalyticsEvent]) -> WindowStats:
    """The figures of `events` (requests that were abandoned count, but have no latency)."""
    events = list(events)
    answered = [e for e in events if e.outcome == "ok"]
    cached = [_CACHE_WEIGHTS[e.cache] for e in events if e.cache in _CACHE_WEIGHTS]
    qualities = [e.quality for e in events if e.quality is not None]
    total = len(events)
    return WindowStats(
        requests=total,
        latency_p95_ms=_p95([e.latency_ms for e in answered]),
        first_audio_p95_ms=_p95([e.first_audio_ms for e in answered if e.first_audio_ms]),
        error_rate=sum(e.outcome == "error" for e in events) / total if total else None,
        fallback_rate=sum(e.fallback for e in events) / total if total else None,
        cache_hit_rate=sum(cached) / len(cached) if cached else None,
        quality_average=sum(qualities) / len(qualities) if qualities else None,
    )


def summarize_scopes(events: list[AnalyticsEvent]) -> dict[str, WindowStats]:
    """Overall (`OVERALL`) and per agent."""
    by_agent: dict[str, list[AnalyticsEvent]] = {}
    for event in events:
        if event.agent:
            by_agent.setdefault(event.agent, []).append(event)
    scopes = {OVERALL: summarize(events)}
    scopes.update({agent: summarize(agent_events) for agent, agent_events in by_agent.items()})
    return scopes


def _scope_labels(scope: str) -> dict[str, str]:
    if scope == OVERALL:
        return {"scope": "service"}
    return {"scope": "agent", "voice_agent_id": scope}


def _where(scope: str) -> str:
    return "overall" if scope == OVERALL else f"for agent {scope}"


def detect(
    scopes: Mapping[str, WindowStats], baselines: Mapping[str, float], rules: AnalyticsSettings
) -> list[Detection]:
    """Every condition firing now; scopes with fewer than `min_requests` judge nothing."""
    found: list[Detection] = []
    for scope, stats in scopes.items():
        if stats.requests < rules.min_requests:
            continue
        labels = _scope_labels(scope)
        where = _where(scope)
        window = f"over the last {rules.window_s:g} s ({stats.requests} requests)"

        def fire(alertname: str, severity: str, summary: str, description: str) -> None:
            found.append(Detection(alertname, severity, labels, summary, description))  # noqa: B023

        if stats.latency_p95_ms is not None and stats.latency_p95_ms > rules.slow_p95_ms:
            fire(
                "VoiceSlowResponses",
                "warning",
                f"p95 latency {stats.latency_p95_ms:.0f} ms > {rules.slow_p95_ms:.0f} ms {where}",
                f"Responses are slow {window}.",
            )
        first = stats.first_audio_p95_ms
        if first is not None and first > rules.slow_first_audio_p95_ms:
            fire(
                "VoiceSlowFirstAudio",
                "warning",
                f"p95 first audio {first:.0f} ms > {rules.slow_first_audio_p95_ms:.0f} ms {where}",
                f"Callers wait long for the first audio {window}.",
            )
        if stats.quality_average is not None and stats.quality_average < rules.min_quality:
            fire(
                "VoiceLowQuality",
                "warning",
                f"average quality {stats.quality_average:.2f} < {rules.min_quality:.2f} {where}",
                f"Synthesized audio scores low {window}.",
            )
        if stats.error_rate is not None and stats.error_rate > rules.max_error_rate:
            fire(
                "VoiceHighErrorRate",
                "critical",
                f"error rate {stats.error_rate:.0%} > {rules.max_error_rate:.0%} {where}",
                f"Requests fail {window}.",
            )
        if stats.fallback_rate is not None and stats.fallback_rate > rules.max_fallback_rate:
            fire(
                "VoiceHighFallbackRate",
                "warning",
                f"fallback rate {stats.fallback_rate:.0%} > {rules.max_fallback_rate:.0%} {where}",
                f"The offline engine or fallback voices speak instead of ElevenLabs {window}.",
            )
        cache_base = baselines.get(f"cache:{scope}")
        if (
            stats.cache_hit_rate is not None
            and cache_base is not None
            and cache_base >= rules.cache_baseline_min
            and stats.cache_hit_rate < cache_base * rules.cache_collapse_ratio
        ):
            fire(
                "VoiceCacheHitCollapse",
                "warning",
                f"cache hit rate {stats.cache_hit_rate:.0%} against a baseline of "
                f"{cache_base:.0%} {where}",
                f"The audio cache answers far less often than usual {window}.",
            )
        p95_base = baselines.get(f"p95:{scope}")
        if (
            stats.latency_p95_ms is not None
            and p95_base is not None
            and stats.latency_p95_ms > rules.baseline_floor_ms
            and stats.latency_p95_ms > p95_base * rules.baseline_factor
        ):
            fire(
                "VoiceLatencyAboveBaseline",
                "warning",
                f"p95 latency {stats.latency_p95_ms:.0f} ms is "
                f"{stats.latency_p95_ms / p95_base:.1f}x its baseline of {p95_base:.0f} ms {where}",
                f"Slower than this scope's own usual figure {window}.",
            )
    return found


def circuit_detections(circuits: Iterable[CircuitView]) -> list[Detection]:
    """Provider availability: one anomaly per circuit not closed, resolved when it closes."""
    found = []
    for view in circuits:
        if view.state is CircuitState.CLOSED:
            continue
        account = view.voice == ACCOUNT
        what = (
            f"{view.provider} (every voice)" if account else f"{view.provider} voice {view.voice}"
        )
        error = f" after {view.last_error_code}: {view.last_error}" if view.last_error_code else ""
        found.append(
            Detection(
                "VoiceProviderUnavailable",
                "critical" if account else "warning",
                {"provider": view.provider, "voice": view.voice},
                f"{what} is unavailable: its circuit is {view.state.value}{error}",
                "Callers are answered by the fallback voice or the offline engine until a "
                "background probe succeeds.",
            )
        )
    return found


def next_baselines(
    scopes: Mapping[str, WindowStats],
    baselines: Mapping[str, float],
    detections: Iterable[Detection],
    alpha: float,
    min_requests: int,
) -> dict[str, float]:
    """Baselines moved toward this window, except where the scope is anomalous."""
    anomalous = {d.scope.get("voice_agent_id", OVERALL) for d in detections}
    updated = dict(baselines)
    for scope, stats in scopes.items():
        if scope in anomalous or stats.requests < min_requests:
            continue
        for name, value in (("p95", stats.latency_p95_ms), ("cache", stats.cache_hit_rate)):
            if value is None:
                continue
            key = f"{name}:{scope}"
            old = updated.get(key)
            updated[key] = value if old is None else alpha * value + (1 - alpha) * old
    return updated


class AnomalyStore:
    """The anomalies firing now (one hash), their history (a capped list) and the baselines."""

    def __init__(self, redis: Redis, history_size: int) -> None:
        self._redis = redis
        self._history_size = history_size

    async def current(self) -> list[Anomaly]:
        raw = await self._redis.hvals(CURRENT)
        return sorted((Anomaly.from_json(value) for value in raw), key=lambda a: a.starts_at)

    async def history(self, limit: int = 100) -> list[Anomaly]:
        raw = await self._redis.lrange(HISTORY, 0, limit - 1)
        return [Anomaly.from_json(value) for value in raw]

    async def baselines(self) -> dict[str, float]:
        raw = await self._redis.hgetall(BASELINES)
        return {text(key): float(value) for key, value in raw.items()}

    async def save_baselines(self, baselines: Mapping[str, float]) -> None:
        if baselines:
            mapping: dict[FieldT, EncodableT] = {
                key: str(value) for key, value in baselines.items()
            }
            await self._redis.hset(BASELINES, mapping=mapping)

    async def update(self, detections: Iterable[Detection], now: float) -> Transition:
        """Start what is new, keep what still fires (its annotations refreshed), end the rest."""
        firing = {a.fingerprint: a for a in await self.current()}
        transition = Transition()
        seen: set[str] = set()
        for detection in detections:
            labels = detection.labels
            key = fingerprint(labels)
            seen.add(key)
            annotations = {"summary": detection.summary, "description": detection.description}
            if key in firing:
                anomaly = firing[key]
                anomaly.annotations = annotations
                transition.continuing.append(anomaly)
            else:
                anomaly = Anomaly(key, labels, annotations, starts_at=now)
                transition.started.append(anomaly)
        for key, anomaly in firing.items():
            if key not in seen:
                anomaly.ends_at = now
                transition.resolved.append(anomaly)
        async with self._redis.pipeline(transaction=True) as pipe:
            for anomaly in transition.started + transition.continuing:
                pipe.hset(CURRENT, anomaly.fingerprint, anomaly.to_json())
            for anomaly in transition.resolved:
                pipe.hdel(CURRENT, anomaly.fingerprint)
            for anomaly in transition.started + transition.resolved:
                pipe.lpush(HISTORY, anomaly.to_json())
            pipe.ltrim(HISTORY, 0, self._history_size - 1)
            await pipe.execute()
        return transition

    async def mark_sent(self, anomalies: Iterable[Anomaly], now: float) -> None:
        """Remember when firing anomalies were last handed to the sender (for re-sends)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for anomaly in anomalies:
                anomaly.last_sent_at = now
                pipe.hset(CURRENT, anomaly.fingerprint, anomaly.to_json())
            await pipe.execute()


async def evaluate_window(
    events: EventLog,
    store: AnomalyStore,
    rules: AnalyticsSettings,
    now: float | None = None,
    circuits: Iterable[CircuitView] = (),
) -> tuple[dict[str, WindowStats], Transition]:
    """Judge the last window and the circuits, move the baselines, and record what started
    and what ended."""
    now = time.time() if now is None else now
    scopes = summarize_scopes(await events.read(now - rules.window_s, now))
    baselines = await store.baselines()
    detections = detect(scopes, baselines, rules)
    await store.save_baselines(
        next_baselines(scopes, baselines, detections, rules.baseline_alpha, rules.min_requests)
    )
    return scopes, await store.update([*detections, *circuit_detections(circuits)], now)
