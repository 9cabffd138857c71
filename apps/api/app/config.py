"""Typed settings: nested groups read from the environment and the repo's `.env`."""

import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.audio.formats import OutputFormat
from app.auth.keys import parse_key

_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

# env_file is resolved against the working directory only, so name it absolutely.
ENV_FILE = Path(__file__).resolve().parents[3] / ".env"

# The seed's flat variable names stay valid; each fills one field of a nested group.
SEED_NAMES: dict[str, tuple[str, str]] = {
    "ELEVEN_LABS_API_KEY": ("elevenlabs", "api_key"),
    "ELEVEN_LABS_BASE_URL": ("elevenlabs", "base_url"),
    "VOICE_RESPONSE_TIMEOUT_MS": ("synthesis", "response_timeout_ms"),
    "REDIS_URL": ("redis", "url"),
    "CACHE_REDIS_URL": ("redis", "cache_url"),
    "MONITORING_WEBHOOK_URL": ("monitoring", "webhook_url"),
    "TWENTYONEDEV_API_KEY": ("monitoring", "api_key"),
    "CELERY_BROKER_URL": ("jobs", "broker_url"),
}


class ElevenLabsSettings(BaseModel):
    api_key: SecretStr | None = None
    base_url: str = "https://api.elevenlabs.io"
    connect_timeout_s: float = Field(default=3.0, gt=0)
    # Longest gap between two chunks of one stream before it counts as stalled.
    read_timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=100, ge=1)

    @property
    def key(self) -> str | None:
        """The upstream key, or None when unset or blank (the offline engine speaks then)."""
        if self.api_key is None:
            return None
        return self.api_key.get_secret_value().strip() or None


class RedisSettings(BaseModel):
    url: str = "redis://127.0.0.1:6379/0"
    cache_url: str | None = None
    socket_timeout_s: float = Field(default=1.0, gt=0)
    # Connections per client and process; a request needs one only for each command.
    max_connections: int = Field(default=200, ge=4)

    @property
    def effective_cache_url(self) -> str:
        return self.cache_url or self.url


class SynthesisSettings(BaseModel):
    response_timeout_ms: int = Field(default=2000, ge=100, le=60_000)
    segment_concurrency: int = Field(default=4, ge=1, le=32)
    min_segment_chars: int = Field(default=20, ge=0, le=200)
    max_segment_chars: int = Field(default=400, ge=50, le=5000)
    # A new upstream segment scoring below this is made once more with the persona's
    # fallback voice (time budget allowing), and the better of the two is kept.
    retry_below_quality: float = Field(default=0.5, ge=0, le=1)
    # Upstream audio still scoring below this after that retry holds no speech (silence,
    # noise): the offline engine speaks the segment instead.
    unusable_below_quality: float = Field(default=0.1, ge=0, le=1)
    # A failing ElevenLabs voice (5xx, 429, stall, bad body) is tried again up to this many
    # times, after a full-jitter backoff from retry_base_ms, while the time budget allows.
    upstream_retries: int = Field(default=2, ge=0, le=5)
    retry_base_ms: int = Field(default=100, ge=1, le=10_000)
    # A stream that has started and then sends no audio for this long has stalled: it is cut
    # and its slot freed (the next segment may fall back).
    stall_ms: int = Field(default=2000, ge=100, le=60_000)
    # Upstream audio is held back until it holds sound, for at most this much audio: silence
    # that long is a fault and the next voice (or the offline engine) speaks. 0: no gate.
    sound_gate_ms: int = Field(default=500, ge=0, le=5000)

    @model_validator(mode="after")
    def _segment_bounds_are_ordered(self) -> Self:
        if self.min_segment_chars >= self.max_segment_chars:
            raise ValueError("min_segment_chars must be below max_segment_chars")
        return self


class CacheSettings(BaseModel):
    enabled: bool = True
    dynamic_ttl_s: int = Field(default=24 * 3600, gt=0)
    catalog_ttl_s: int = Field(default=7 * 24 * 3600, gt=0)
    # A segment hit this many times is kept as long as a catalog phrase.
    promote_after_hits: int = Field(default=3, ge=1)
    # After a Redis failure the cache is not tried again for this long.
    outage_pause_s: float = Field(default=1.0, gt=0)
    # How long a request waits for another process computing the same segment.
    flight_wait_s: float = Field(default=10.0, gt=0)
    # Each process keeps the audio Redis lately answered with, up to this many bytes (0: off):
    # a hit from memory makes no round trip. A copy is asked of Redis again after
    # memory_max_age_s, so a value deleted or flushed in Redis is gone from every process by then.
    memory_bytes: int = Field(default=64 * 2**20, ge=0)
    memory_max_age_s: float = Field(default=60.0, gt=0)


class LimiterSettings(BaseModel):
    upstream_slots: int = Field(default=50, ge=1)
    # Slots only live traffic (HTTP, WebSocket) may take; bulk work waits for the others.
    live_reserved_slots: int = Field(default=10, ge=0)
    # A holder that stops renewing (crashed) loses its slot after this long.
    lease_s: float = Field(default=5.0, gt=0)
    # Waiters look again this often even without a release notification (lost messages,
    # expired leases).
    recheck_s: float = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _reserve_leaves_room_for_bulk(self) -> Self:
        if self.live_reserved_slots >= self.upstream_slots:
            raise ValueError("live_reserved_slots must be below upstream_slots")
        return self


class CircuitSettings(BaseModel):
    """Circuit breakers per provider and voice (app.tts.circuit)."""

    # Consecutive failures, from any process, that open a voice's circuit.
    failure_threshold: int = Field(default=5, ge=1)
    # Or this share of failures among at least window_min_calls calls of one process in
    # the last window_s.
    window_s: float = Field(default=30.0, gt=0)
    window_min_calls: int = Field(default=10, ge=1)
    window_failure_rate: float = Field(default=0.5, gt=0, le=1)
    # An open circuit is probed after open_s; each failed probe doubles it, up to max_open_s.
    open_s: float = Field(default=10.0, gt=0)
    max_open_s: float = Field(default=300.0, gt=0)
    # How often each process reloads the shared circuits (and probes those due).
    refresh_s: float = Field(default=1.0, gt=0)


class StreamingSettings(BaseModel):
    # Audio sent ahead of what the listener has heard; barge-in is heard within this.
    max_lead_ms: int = Field(default=300, ge=20, le=5000)
    # Once the lead is full, sending waits until this much has played, then tops it up in
    # one burst: a wake-up per burst, not per 20 ms frame (at most half the lead is used).
    send_quantum_ms: int = Field(default=100, ge=1)
    # A session with no message and nothing to say for this long is closed (code 1000).
    idle_timeout_s: float = Field(default=60.0, gt=0)
    max_message_bytes: int = Field(default=65_536, ge=1024)
    # Client messages per second a session may send (bursts up to twice that); more waits.
    messages_per_second: float = Field(default=50.0, gt=0)
    # A stream owing audio that moved none for this long is listed as stalled in health.
    stall_after_s: float = Field(default=30.0, gt=0)
    # With a value, a new session is refused (HTTP 503 on the handshake) while this process's
    # event loop has lagged this much within the last overload_window_s: admitting it would
    # make every call on the process later still. Off by default: with one instance, a
    # refused call is a dropped call; behind a balancer that retries elsewhere, set it (250).
    refuse_sessions_above_lag_ms: int | None = Field(default=None, ge=1)
    overload_window_s: float = Field(default=2.0, gt=0)


class JobsSettings(BaseModel):
    """Celery: the broker, the beat schedule, and how bulk work is cut up and paced."""

    # The broker and RedBeat live in the state Redis unless told otherwise.
    broker_url: str | None = None
    # The beat schedule's clock: 02:00, 08:00 and 17:00 are local times here.
    timezone: str = "UTC"
    maintain_at: str = Field(default="02:00", pattern=_CLOCK.pattern)
    warm_up_at: list[str] = Field(default_factory=lambda: ["08:00", "17:00"], min_length=1)
    evaluate_every_s: float = Field(default=60.0, gt=0)
    # Items per chunk task. A killed worker redoes only the items it had under way; more
    # chunks than worker processes keep every process busy to the end of a job.
    chunk_items: int = Field(default=100, ge=1, le=1000)
    # Items of one chunk under way at once. Above the bulk slots a process can get, so the
    # limiter's queue (not a chunk's stragglers) paces upstream: a slot freed is taken at
    # once by an item already planned (bench/bulk.py: 20 gave 0.70 of the ideal, 100 0.76).
    item_concurrency: int = Field(default=100, ge=1, le=1000)
    foreground_max_items: int = Field(default=20, ge=1, le=100)
    # How long job records and their audio are kept.
    retention_s: int = Field(default=24 * 3600, ge=60)
    # A bulk item may wait this long for a slot and first audio before the offline engine.
    bulk_budget_s: float = Field(default=30.0, gt=0)
    # A task still running after this is cancelled and retried (its finished items kept).
    task_time_limit_s: int = Field(default=600, ge=2)
    # Retries of a bulk chunk cut short or hit by a Redis restart; past them, its open items
    # fail (`chunk_failed`) and the job completes.
    chunk_max_retries: int = Field(default=10, ge=0)
    # An unacknowledged task is handed to another worker after this: above the longest task.
    visibility_timeout_s: int = Field(default=900, ge=3)
    # A crashed beat's lock passes to another beat process after this.
    beat_lock_timeout_s: int = Field(default=30, ge=3)
    beat_max_loop_interval_s: int = Field(default=5, ge=1)
    pregenerate_formats: list[OutputFormat] = Field(
        default_factory=lambda: [OutputFormat.MP3_44100_128, OutputFormat.ULAW_8000],
        min_length=1,
    )
    # Catalog audio with less than this left to live is refreshed by maintenance.
    refresh_before_s: int = Field(default=2 * 24 * 3600, ge=0)
    # Cache Redis memory maintenance keeps below (0: 90 % of its maxmemory, if set).
    cache_memory_budget_bytes: int = Field(default=0, ge=0)

    @field_validator("warm_up_at")
    @classmethod
    def _times_are_clock_times(cls, value: list[str]) -> list[str]:
        for at in value:
            if not _CLOCK.match(at):
                raise ValueError(f"{at!r} is not a HH:MM time")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _visibility_outlasts_tasks(self) -> Self:
        if self.visibility_timeout_s < self.task_time_limit_s + 10:
            raise ValueError("visibility_timeout_s must be at least task_time_limit_s + 10")
        if self.beat_lock_timeout_s <= self.beat_max_loop_interval_s:
            raise ValueError("beat_lock_timeout_s must be above beat_max_loop_interval_s")
        return self


class ServerSettings(BaseModel):
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # A bulk body holds up to 1000 texts of up to 5000 characters each.
    max_bulk_body_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    # An audio upload to the quality analysis (file and form fields): up to 10 MB of audio.
    max_upload_bytes: int = Field(default=10 * 1_048_576, ge=1024)
    # JSON bodies nested deeper than this are refused (422) before they are parsed.
    max_json_depth: int = Field(default=32, ge=4, le=1000)
    # A request body must arrive within this long of its request; a client that trickles it
    # is answered 408 and the connection's worker is freed.
    body_timeout_s: float = Field(default=30.0, gt=0)
    # Full garbage collections stop the event loop (app.ops.collector): the API runs them when
    # no audio stream is open, at most this often, and at least every full_gc_max_interval_s.
    full_gc_quiet_every_s: float = Field(default=30.0, gt=0)
    full_gc_max_interval_s: float = Field(default=300.0, gt=0)


class AuthSettings(BaseModel):
    """API keys: hashing, the bootstrap admin key, default per-key limits, brute-force brake."""

    enabled: bool = True
    # Keys the HMAC of every key secret. None: one is made and kept in the state Redis.
    pepper: SecretStr | None = None
    # A full sv_<id>_<secret> key with the admin scope that needs no record in Redis.
    bootstrap_admin_key: SecretStr | None = None
    # Defaults for keys without their own limits (token buckets, per key).
    requests_per_minute: int = Field(default=600, ge=1)
    characters_per_minute: int = Field(default=100_000, ge=1)
    rotation_grace_s: int = Field(default=86_400, ge=0)
    # Failed authentications per client address and minute before it is refused (0: off).
    max_failures_per_minute: int = Field(default=20, ge=0)
    allow_metrics_without_key: bool = True
    cors_origins: list[str] = Field(default_factory=list)
    # When the state Redis cannot answer: refuse keyed requests with 503 (false), or admit
    # callers unchecked and unthrottled (true).
    fail_open: bool = False
    # A process remembers a key it accepted this long (a revocation or rotation reaches every
    # process at once through pub/sub; an expiry is noticed within this).
    cache_s: float = Field(default=10.0, ge=0)
    # Budgets are taken from Redis this share of the per-minute limit at a time, and spent
    # locally; unspent tokens lapse after lease_s.
    lease_fraction: float = Field(default=0.02, gt=0, le=1)
    lease_s: float = Field(default=10.0, gt=0)
    # State Redis unreachable: a key this process accepted this recently is still admitted
    # (calls under way go on); others get fail_open's answer.
    outage_grace_s: float = Field(default=300.0, ge=0)

    @field_validator("pepper", "bootstrap_admin_key", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # .env.example lists these blank; blank means unset, never an empty secret.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("pepper")
    @classmethod
    def _pepper_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("pepper must have at least 16 characters")
        return value

    @field_validator("bootstrap_admin_key")
    @classmethod
    def _bootstrap_key_is_a_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and parse_key(value.get_secret_value()) is None:
            raise ValueError("bootstrap_admin_key must have the form sv_<12 chars>_<32+ chars>")
        return value


class MonitoringSettings(BaseModel):
    webhook_url: str | None = None
    api_key: SecretStr | None = None


class AnalyticsSettings(BaseModel):
    """Anomaly detection over recent events, and how alerts reach the monitoring sink."""

    # Off: requests record no rollups, analytics events or request metrics (bench/quality.py
    # measures what recording costs; /performance and the analytics routes stay empty).
    record_requests: bool = True

    # Events of this many seconds before an evaluation are judged.
    window_s: float = Field(default=300.0, gt=0)
    # Fewer requests than this in a scope judge nothing: one slow request must not fire.
    min_requests: int = Field(default=5, ge=1)
    slow_p95_ms: float = Field(default=1500.0, gt=0)
    slow_first_audio_p95_ms: float = Field(default=1500.0, gt=0)
    min_quality: float = Field(default=0.6, ge=0, le=1)
    max_error_rate: float = Field(default=0.1, ge=0, le=1)
    max_fallback_rate: float = Field(default=0.2, ge=0, le=1)
    # Cache hit collapse: below this share of its baseline, once the baseline is this high.
    cache_collapse_ratio: float = Field(default=0.5, gt=0, lt=1)
    cache_baseline_min: float = Field(default=0.3, ge=0, le=1)
    # Each scope's own baseline (an EWMA per evaluation): fires at factor x baseline p95
    # when the current p95 is also above the floor.
    baseline_alpha: float = Field(default=0.2, gt=0, le=1)
    baseline_factor: float = Field(default=2.0, gt=1)
    baseline_floor_ms: float = Field(default=500.0, ge=0)
    # A firing alert is sent again this often while it fires (Alertmanager wants re-sends).
    resend_s: float = Field(default=300.0, gt=0)
    # One POST to the sink gives up after this; what failed waits in the outbox.
    send_timeout_s: float = Field(default=3.0, gt=0)
    # Outbox retries: base * 2**attempts seconds apart, at most retry_max_s.
    retry_base_s: float = Field(default=30.0, gt=0)
    retry_max_s: float = Field(default=900.0, gt=0)
    history_size: int = Field(default=500, ge=1)
    generator_url: str = "http://seiketsu-voice/api/v1/voice/analytics/anomalies"

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> Self:
        if self.retry_base_s > self.retry_max_s:
            raise ValueError("retry_base_s must not be above retry_max_s")
        return self


class MetricsSettings(BaseModel):
    # Where every API and worker process of one host keeps its Prometheus values (exported to
    # them as PROMETHEUS_MULTIPROC_DIR); GET /metrics adds them up. Same folder for all of them.
    multiproc_dir: Path = Path(tempfile.gettempdir()) / "seiketsu-voice-metrics"

    @field_validator("multiproc_dir", mode="before")
    @classmethod
    def _blank_is_the_default(cls, value: object) -> object:
        # A blank variable would otherwise be Path(""): the working directory.
        if isinstance(value, str) and not value.strip():
            return cls.model_fields["multiproc_dir"].default
        return value


class _SeedNamesSource(PydanticBaseSettingsSource):
    """Maps the seed's flat variable names onto the nested groups."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, str | None] = {}
        if ENV_FILE.is_file():
            found.update(dotenv_values(ENV_FILE))
        found.update(os.environ)
        values: dict[str, dict[str, Any]] = {}
        for name, (group, field) in SEED_NAMES.items():
            value = found.get(name)
            if value is not None and value != "":
                values.setdefault(group, {})[field] = value
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_nested_delimiter="__",
        extra="ignore",
    )

    elevenlabs: ElevenLabsSettings = ElevenLabsSettings()
    redis: RedisSettings = RedisSettings()
    synthesis: SynthesisSettings = SynthesisSettings()
    cache: CacheSettings = CacheSettings()
    limiter: LimiterSettings = LimiterSettings()
    streaming: StreamingSettings = StreamingSettings()
    circuit: CircuitSettings = CircuitSettings()
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    jobs: JobsSettings = JobsSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    analytics: AnalyticsSettings = AnalyticsSettings()
    metrics: MetricsSettings = MetricsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Nested names (ELEVENLABS__API_KEY) win over the seed's flat names.
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _SeedNamesSource(settings_cls),
            file_secret_settings,
        )


@lru_cache
def get_settings() -> Settings:
    return Settings()
