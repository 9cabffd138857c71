"""Every Prometheus metric of the service, and how each process's values reach GET /metrics.

Names start with `seiketsu_voice_`, durations are in seconds and sizes in bytes. Label values
come from fixed sets only (route templates, enums, status classes), never a raw path, an agent
id, a text or a key. API and Celery worker processes keep their values in one directory
(PROMETHEUS_MULTIPROC_DIR, see `multiproc`), and GET /metrics adds them up.
"""

import os
import warnings
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from celery.signals import worker_process_shutdown, worker_shutdown
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from app.config import MetricsSettings
from app.observability import multiproc

# What `exposition()` writes: the classic text format. In prometheus_client 0.26,
# CONTENT_TYPE_LATEST says version=1.0.0, but generate_latest writes the 0.0.4 format.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class Surface(StrEnum):
    """Where a synthesis was asked for."""

    HTTP = "http"
    STREAM = "stream"
    WS = "ws"
    BULK = "bulk"


class UpstreamStatus(StrEnum):
    """How an upstream call ended."""

    OK = "2xx"
    AUTH = "401"  # bad key, or quota used up
    REJECTED = "422"  # our request refused (400, 404, 422)
    RATE_LIMITED = "429"
    SERVER = "5xx"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    PROTOCOL = "protocol"  # an answer that is not usable audio: error body, broken stream


_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# Cache hits land in the first buckets. 0.3 s is a good first audio and 2 s the upstream
# budget (VOICE_RESPONSE_TIMEOUT_MS). Bulk items may wait up to 30 s.
_FIRST_AUDIO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
_QUALITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

HTTP_REQUEST_DURATION = Histogram(
    "seiketsu_voice_http_request_duration_seconds",
    "HTTP requests from arrival to the end of the response.",
    ["method", "route", "status"],
    buckets=_REQUEST_BUCKETS,
)
FIRST_AUDIO = Histogram(
    "seiketsu_voice_synthesis_first_audio_seconds",
    "Synthesis requests: time until the first segment's audio was ready.",
    ["surface", "cache"],
    buckets=_FIRST_AUDIO_BUCKETS,
)
WEBSOCKET_FIRST_AUDIO = Histogram(
    "seiketsu_voice_websocket_first_audio_seconds",
    "WebSocket utterances: from the first complete sentence to the first audio frame.",
    ["cache", "provider"],
    buckets=_FIRST_AUDIO_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "seiketsu_voice_cache_lookups",
    "Synthesis requests by cache outcome (hit, partial, miss, bypass).",
    ["outcome"],
)
CACHE_SERVED_BYTES = Counter(
    "seiketsu_voice_cache_served_bytes",
    "Audio bytes served from the cache.",
    ["surface"],
)
CACHED_SEGMENTS = Counter(
    "seiketsu_voice_cache_segment_hits",
    "Segments found in the cache, by where: this process's memory or Redis.",
    ["tier"],
)
UPSTREAM_CALLS = Counter(
    "seiketsu_voice_upstream_calls",
    "Upstream synthesis calls by how they ended.",
    ["provider", "status"],
)
BILLED_CHARACTERS = Counter(
    "seiketsu_voice_upstream_billed_characters",
    "Characters upstream billed for.",
    ["surface"],
)
SAVED_CHARACTERS = Counter(
    "seiketsu_voice_upstream_saved_characters",
    "Characters served from the cache, which would have been billed otherwise.",
    ["surface"],
)
# livesum: each process counts the slots it holds, so the sum over live processes is the use
# of the global limit (`max` would show the busiest process only). A process that dies
# stops counting once it is marked dead.
LIMITER_SLOTS_IN_USE = Gauge(
    "seiketsu_voice_limiter_slots_in_use",
    "Upstream limiter slots held.",
    ["priority"],
    multiprocess_mode="livesum",
)
LIMITER_WAIT = Histogram(
    "seiketsu_voice_limiter_wait_seconds",
    "Time waited for an upstream limiter slot that was then granted.",
    ["priority"],
    buckets=_WAIT_BUCKETS,
)
FALLBACK_ACTIVATIONS = Counter(
    "seiketsu_voice_fallback_activations",
    "Segments spoken by another attempt than the first, by why the first one failed.",
    ["reason"],
)
QUALITY_SCORE = Histogram(
    "seiketsu_voice_quality_score",
    "Quality score (0-1) of each newly synthesized segment.",
    ["provider"],
    buckets=_QUALITY_BUCKETS,
)
WEBSOCKET_SESSIONS_REFUSED = Counter(
    "seiketsu_voice_websocket_sessions_refused",
    "WebSocket sessions refused on the handshake because the process was overloaded.",
)
WEBSOCKET_SESSIONS = Gauge(
    "seiketsu_voice_websocket_sessions",
    "WebSocket sessions open.",
    multiprocess_mode="livesum",
)
# Every process reloads the same shared circuits, so the highest value is the state.
CIRCUIT_STATE = Gauge(
    "seiketsu_voice_circuit_state",
    "Circuit breaker state per provider and voice: 0 closed, 1 half-open, 2 open.",
    ["provider", "voice"],
    multiprocess_mode="livemax",
)
# livemax: the most overloaded process is the one whose callers hear it.
EVENT_LOOP_LAG = Gauge(
    "seiketsu_voice_event_loop_lag_seconds",
    "How late the event loop last ran a timer (local overload delays every await by this).",
    multiprocess_mode="livemax",
)
STALLED_STREAMS = Gauge(
    "seiketsu_voice_stalled_streams",
    "Streams owing audio that moved none for streaming.stall_after_s.",
    multiprocess_mode="livesum",
)
FULL_COLLECTIONS = Histogram(
    "seiketsu_voice_full_gc_seconds",
    "Full garbage collections (the event loop stops for each), by why they ran now.",
    ["reason"],
    buckets=_WAIT_BUCKETS,
)
JOB_ITEMS = Counter(
    "seiketsu_voice_job_items",
    "Background job items finished, by outcome (done, failed, cached).",
    ["kind", "outcome"],
)
JOBS_SUBMITTED = Counter(
    "seiketsu_voice_jobs_submitted",
    "Background jobs queued.",
    ["kind"],
)

M = TypeVar("M", bound=MetricWrapperBase)
# Every ChildCache's children: prepare_multiprocess drops them with the metrics' own.
_CHILD_CACHES: list[dict[tuple[str, ...], Any]] = []


class ChildCache(Generic[M]):
    """A labelled metric's children, each made once.

    `labels()` takes a lock and turns every value into a string on each call: microseconds a
    request on the cache-hit path. Label values are strings (or StrEnums, equal to theirs).
    """

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], M] = {}
        _CHILD_CACHES.append(self._children)

    def __call__(self, *values: str) -> M:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


_METRICS: tuple[MetricWrapperBase, ...] = (
    HTTP_REQUEST_DURATION,
    FIRST_AUDIO,
    WEBSOCKET_FIRST_AUDIO,
    CACHE_LOOKUPS,
    CACHE_SERVED_BYTES,
    CACHED_SEGMENTS,
    UPSTREAM_CALLS,
    BILLED_CHARACTERS,
    SAVED_CHARACTERS,
    LIMITER_SLOTS_IN_USE,
    LIMITER_WAIT,
    FALLBACK_ACTIVATIONS,
    QUALITY_SCORE,
    WEBSOCKET_SESSIONS,
    WEBSOCKET_SESSIONS_REFUSED,
    EVENT_LOOP_LAG,
    FULL_COLLECTIONS,
    JOB_ITEMS,
    JOBS_SUBMITTED,
)

# The directory this process's values go to: the one exported when prometheus_client was
# imported, if any (`python -m app.serve` exports it before).
_values_dir: str | None = (
    os.environ.get(multiproc.ENV) if getattr(values.ValueClass, "_multiprocess", False) else None
)


def prepare_multiprocess(path: Path) -> Path:
    """Keep this process's metric values in `path`, where the other processes keep theirs.

    prometheus_client chooses where values go when it is first imported. A process that
    prepared the directory before that (`python -m app.serve`) needs nothing more. A process
    that imported it first gets the multiprocess value class (prometheus_client looks it up
    each time it makes a value), and the metrics made so far are made again: labelled ones
    drop their children, unlabelled ones get a new value. The Celery worker imports the app
    before its setup runs, and tests import it at collection. What was recorded before is
    lost, so call this before any traffic.
    """
    global _values_dir
    directory = multiproc.prepare_directory(path)
    if _values_dir == str(directory):
        return directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
    with warnings.catch_warnings():
        # "Clearing labels has not been implemented in multi-process mode": clear() only drops
        # the children made before, and that is all this needs.
        warnings.simplefilter("ignore", UserWarning)
        for metric in _METRICS:
            metric.clear()
        for children in _CHILD_CACHES:
            children.clear()
    for metric in _METRICS:
        if not metric._labelnames:
            # Its value was made at import, before the switch: make it again.
            metric._metric_init()  # type: ignore[no-untyped-call]
    _values_dir = str(directory)
    return directory


def prepare_worker_metrics(settings: MetricsSettings) -> None:
    """Metrics of a Celery worker (or beat) process, kept next to the API's.

    Call it in the main process, before the pool forks: pool processes inherit it. A process
    that shuts down cleanly removes its live gauges. The next scrape removes those of a
    process that was killed.
    """
    prepare_multiprocess(settings.multiproc_dir)
    worker_process_shutdown.connect(_forget_this_process, weak=False, dispatch_uid=__name__)
    worker_shutdown.connect(_forget_this_process, weak=False, dispatch_uid=__name__)


def _forget_this_process(**_: Any) -> None:
    multiproc.forget_process(os.getpid())


def exposition() -> bytes:
    """Every process's values in the Prometheus text format (reads files: not on the loop)."""
    if _values_dir is None:
        # No shared directory (the app run without `python -m app.serve`): this process only.
        return generate_latest(REGISTRY)
    directory = Path(_values_dir)
    multiproc.sweep_ended_processes(directory)
    # A new registry for each scrape, as the multiprocess docs ask: the files change.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry)
