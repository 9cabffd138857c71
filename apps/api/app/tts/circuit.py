"""Circuit breakers per provider and voice, shared by every process through the state Redis.

A circuit opens on `failure_threshold` consecutive failures (from any process), on a failure
rate above `window_failure_rate` over this process's last `window_s`, or at once on an
account-wide refusal (invalid key, quota exhausted), which opens the provider's `*` circuit
and so every voice of it. While open, the chain skips the voice without waiting for it to
fail: the next voice or the offline engine speaks at once. After `open_s` one process claims
the half-open probe, a three-character synthesis (a subscription read for `*`), in the
background: success closes the circuit everywhere, failure keeps it open twice as long (up
to `max_open_s`).

Reads cost nothing on the request path: each process keeps a snapshot, refreshed every
`refresh_s` and updated at once by its own transitions. Rate limiting (429) and our own
limiter's refusals say nothing about a voice's health and are not counted.
"""

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config import CircuitSettings
from app.observability import metrics
from app.periodic import Periodic
from app.redis_text import text
from app.tts.errors import (
    ProviderError,
    ProviderNotConfiguredError,
    UpstreamAuthError,
    UpstreamBusyError,
    UpstreamQuotaExceededError,
    UpstreamRateLimitedError,
)

logger = logging.getLogger(__name__)

CIRCUITS = "sv:circuits"  # set of circuit keys
ACCOUNT = "*"  # the voice of a provider's account-wide circuit
_PREFIX = "sv:circuit:"
_PROBE_LEASE_S = 30.0

# KEYS: circuit, set; ARGV: now, threshold, open_s, code, message, force_open.
# Returns 1 when this failure opened the circuit.
_FAILED = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'last_error_code', ARGV[4], 'last_error', ARGV[5],
           'last_error_at', ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
if state == 'closed' and (ARGV[6] == '1' or failures >= tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'open_for_s', ARGV[3],
             'retry_at', tonumber(ARGV[1]) + tonumber(ARGV[3]))
  return 1
end
return 0
"""

# KEYS: circuit; ARGV: now. Returns 1 when this success closed the circuit.
_SUCCEEDED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'failures', 0)
if (redis.call('HGET', KEYS[1], 'state') or 'closed') ~= 'closed' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_at', ARGV[1])
  return 1
end
return 0
"""

# KEYS: circuit; ARGV: now, lease. Returns 1 when this process is to probe.
_CLAIM_PROBE = """
local state = redis.call('HGET', KEYS[1], 'state')
local now = tonumber(ARGV[1])
if state == 'open' and tonumber(redis.call('HGET', KEYS[1], 'retry_at')) <= now
   or state == 'half_open' and tonumber(redis.call('HGET', KEYS[1], 'probe_until')) <= now then
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]))
  return 1
end
return 0
"""

# KEYS: circuit; ARGV: now, max_open_s, code, message, grow (1: double the open time).
_PROBE_FAILED = """
local open_for = tonumber(redis.call('HGET', KEYS[1], 'open_for_s') or '1')
if ARGV[5] == '1' then open_for = math.min(open_for * 2, tonumber(ARGV[2])) end
redis.call('HSET', KEYS[1], 'state', 'open', 'open_for_s', open_for,
           'retry_at', tonumber(ARGV[1]) + open_for)
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'last_error_code', ARGV[3], 'last_error', ARGV[4],
             'last_error_at', ARGV[1])
end
return 1
"""


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_STATE_VALUE = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


@dataclass(frozen=True, slots=True)
class CircuitView:
    provider: str
    voice: str
    state: CircuitState
    failures: int
    opened_at: float | None
    retry_at: float | None
    last_error_code: str | None
    last_error: str | None
    last_error_at: float | None

    @property
    def key(self) -> str:
        return circuit_key(self.provider, self.voice)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "voice": self.voice,
            "state": self.state.value,
            "failures": self.failures,
            "opened_at": self.opened_at,
            "retry_at": self.retry_at,
            "last_error": (
                {"code": self.last_error_code, "message": self.last_error, "at": self.last_error_at}
                if self.last_error_code
                else None
            ),
        }


def circuit_key(provider: str, voice: str) -> str:
    return f"{_PREFIX}{provider}:{voice}"


def counts(exc: ProviderError) -> bool:
    """Whether a failure says something about the voice's (or account's) health."""
    return not isinstance(
        exc, (UpstreamRateLimitedError, UpstreamBusyError, ProviderNotConfiguredError)
    )


def _account_refusal(exc: ProviderError) -> bool:
    return isinstance(exc, (UpstreamAuthError, UpstreamQuotaExceededError))


# A probe of (provider, voice): returns when the voice speaks again, raises ProviderError if not.
Probe = Callable[[str, str], Awaitable[None]]


class Circuits:
    def __init__(self, redis: Redis, settings: CircuitSettings) -> None:
        self._redis = redis
        self._settings = settings
        self._failed = redis.register_script(_FAILED)
        self._succeeded = redis.register_script(_SUCCEEDED)
        self._claim = redis.register_script(_CLAIM_PROBE)
        self._probe_failed = redis.register_script(_PROBE_FAILED)
        self._snapshot: dict[str, CircuitView] = {}
        self._recent: dict[str, deque[tuple[float, bool]]] = {}
        self._probe: Probe | None = None
        self._refresher = Periodic("circuits", self.refresh, settings.refresh_s)

    # -- the request path ------------------------------------------------------------------

    def allows(self, provider: str, voice: str) -> bool:
        """False while the voice's circuit or its provider's account circuit is not closed."""
        for key in (circuit_key(provider, ACCOUNT), circuit_key(provider, voice)):
            view = self._snapshot.get(key)
            if view is not None and view.state is not CircuitState.CLOSED:
                return False
        return True

    async def failed(self, provider: str, voice: str, exc: ProviderError) -> None:
        if not counts(exc):
            return
        if exc.account_wide:
            voice = ACCOUNT
        key = circuit_key(provider, voice)
        now = time.time()
        force = _account_refusal(exc) or self._rate_exceeded(key, now, ok=False)
        try:
            opened = await self._failed(
                keys=[key, CIRCUITS],
                args=[
                    now,
                    self._settings.failure_threshold,
                    self._settings.open_s,
                    exc.code,
                    exc.message[:300],
                    "1" if force else "0",
                ],
            )
        except (RedisError, OSError):
            logger.warning("circuit %s: failure not recorded, Redis unreachable", key)
            return
        if opened:
            logger.error("circuit %s opened: %s %s", key, exc.code, exc.message)
        await self._reload(key)

    async def succeeded(self, provider: str, voice: str) -> None:
        """A call spoke. Only a circuit known to hold failures costs a Redis call."""
        now = time.time()
        for key in (circuit_key(provider, voice), circuit_key(provider, ACCOUNT)):
            self._rate_exceeded(key, now, ok=True)
            view = self._snapshot.get(key)
            if view is None or (view.failures == 0 and view.state is CircuitState.CLOSED):
                continue
            with suppress(RedisError, OSError):
                if await self._succeeded(keys=[key], args=[now]):
                    logger.warning("circuit %s closed: the voice speaks again", key)
                await self._reload(key)

    def _rate_exceeded(self, key: str, now: float, ok: bool) -> bool:
        """This process's failure rate over the window, with the newest outcome added."""
        window = self._recent.setdefault(key, deque(maxlen=1000))
        window.append((now, ok))
        while window and window[0][0] < now - self._settings.window_s:
            window.popleft()
        if ok or len(window) < self._settings.window_min_calls:
            return False
        failures = sum(1 for _, good in window if not good)
        return failures / len(window) >= self._settings.window_failure_rate

    # -- the view for health, metrics and alerts -------------------------------------------

    def views(self) -> list[CircuitView]:
        return sorted(self._snapshot.values(), key=lambda v: v.key)

    async def refresh(self) -> None:
        """Reload every circuit, export the states, and probe those due (one process each)."""
        try:
            keys = sorted(text(k) for k in await self._redis.smembers(CIRCUITS))
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                records = await pipe.execute()
        except (RedisError, OSError):
            return  # the snapshot stays as it was
        self._snapshot = {
            key: view
            for key, record in zip(keys, records, strict=True)
            if (view := _view(key, record)) is not None
        }
        for view in self._snapshot.values():
            metrics.CIRCUIT_STATE.labels(view.provider, view.voice).set(_STATE_VALUE[view.state])
        if self._probe is not None:
            for view in list(self._snapshot.values()):
                if view.state is not CircuitState.CLOSED:
                    await self._maybe_probe(view, self._probe)

    async def _maybe_probe(self, view: CircuitView, probe: Probe) -> None:
        key = view.key
        if not await self._claim(keys=[key], args=[time.time(), _PROBE_LEASE_S]):
            return
        try:
            await probe(view.provider, view.voice)
        except UpstreamBusyError:  # no slot to probe with: try again later, not a failure
            await self._probe_failed(
                keys=[key], args=[time.time(), self._settings.max_open_s, "", "", "0"]
            )
        except ProviderError as exc:
            logger.warning("circuit %s stays open: probe failed with %s", key, exc.code)
            await self._probe_failed(
                keys=[key],
                args=[time.time(), self._settings.max_open_s, exc.code, exc.message[:300], "1"],
            )
        else:
            await self._succeeded(keys=[key], args=[time.time()])
            logger.warning("circuit %s closed: the probe spoke", key)
        await self._reload(key)

    async def _reload(self, key: str) -> None:
        with suppress(RedisError, OSError):
            view = _view(key, await self._redis.hgetall(key))
            if view is not None:
                self._snapshot[key] = view

    def start(self, probe: Probe | None) -> None:
        """Keep the snapshot fresh; with `probe`, this process also probes open circuits."""
        self._probe = probe
        self._refresher.start()

    async def stop(self) -> None:
        self._probe = None
        await self._refresher.stop()


def _float(record: dict[str, str], field: str) -> float | None:
    value = record.get(field)
    return float(value) if value else None


def _view(key: str, raw: dict[Any, Any]) -> CircuitView | None:
    if not raw or not key.startswith(_PREFIX):
        return None
    record = {text(k): text(v) for k, v in raw.items()}
    provider, _, voice = key.removeprefix(_PREFIX).partition(":")
    return CircuitView(
        provider=provider,
        voice=voice,
        state=CircuitState(record.get("state", "closed")),
        failures=int(record.get("failures", "0")),
        opened_at=_float(record, "opened_at"),
        retry_at=_float(record, "retry_at"),
        last_error_code=record.get("last_error_code"),
        last_error=record.get("last_error"),
        last_error_at=_float(record, "last_error_at"),
    )
