"""Analytics events: one per request, in a capped Redis stream shared by every process.

Each process gathers its events in memory and appends them once a second in one script call
(as the rollups are written), so recording never delays a caller; what cannot be written
while Redis is away is dropped. (One XADD per event in a pipeline cost ~32 µs an event in
redis-py's packing and parsing, more than the rest of recording a cached request; the script
takes the events as arguments.) Stream ids are Redis' millisecond clock, so a time window is
one XRANGE. The stream is capped (approximately, so trimming stays cheap).

An entry holds one field, `e`: the event's values as a JSON array in field order. Fifteen
fields per entry made encoding the flush's commands cost more than anything else a cached
request does. Entries of fifteen fields (written before) are still read.
"""

import json
import logging
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, fields

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.periodic import Periodic
from app.redis_text import text

logger = logging.getLogger(__name__)

EVENTS = "sv:analytics:events"
PACKED = "e"
MAX_EVENTS = 200_000
# Events per script call: keeps each call (Redis runs nothing else meanwhile) around a millisecond.
EVENTS_PER_CALL = 1000

# KEYS: the stream; ARGV: its cap, then each event's packed values. The cap is approximate,
# as XADD's own ~ is: trimming happens a whole node at a time.
_APPEND = f"""
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', '{PACKED}', ARGV[i])
end
return #ARGV - 1
"""


@dataclass(frozen=True, slots=True)
class AnalyticsEvent:
    """One request: who spoke how, how fast, at what cost and quality, and how it ended."""

    at: float
    surface: str  # http, stream, ws, bulk
    outcome: str  # ok, error, abandoned
    agent: str | None
    persona: str
    language: str
    provider: str  # every provider that spoke, comma-separated; "" when none did
    cache: str  # hit, partial, miss, bypass; "" when nothing was delivered
    latency_ms: float
    first_audio_ms: float | None
    characters_billed: int
    characters_saved: int
    quality: float | None
    fallback: bool
    error: str | None

    def packed(self) -> str:
        """The value of the entry's one field: the event's values in field order, as JSON."""
        return _COMPACT_JSON.encode(_values_of(self))

    @classmethod
    def from_fields(cls, stored: Mapping[bytes | str, bytes | str]) -> "AnalyticsEvent":
        raw = {text(key): text(value) for key, value in stored.items()}
        packed = raw.get(PACKED)
        if packed is not None:
            return cls(*json.loads(packed))
        return cls(
            at=float(raw["at"]),
            surface=raw["surface"],
            outcome=raw["outcome"],
            agent=raw["agent"] or None,
            persona=raw["persona"],
            language=raw["language"],
            provider=raw["provider"],
            cache=raw["cache"],
            latency_ms=float(raw["latency_ms"]),
            first_audio_ms=_number(raw["first_audio_ms"]),
            characters_billed=int(raw["characters_billed"]),
            characters_saved=int(raw["characters_saved"]),
            quality=_number(raw["quality"]),
            fallback=raw["fallback"] == "1",
            error=raw["error"] or None,
        )


_FIELD_NAMES = tuple(f.name for f in fields(AnalyticsEvent))
_values_of = operator.attrgetter(*_FIELD_NAMES)
# One encoder for every event: json.dumps with separators builds a new one per call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def _number(value: str) -> float | None:
    return float(value) if value else None


class EventLog:
    def __init__(
        self, redis: Redis, max_events: int = MAX_EVENTS, flush_every_s: float = 1.0
    ) -> None:
        self._redis = redis
        self._max_events = max_events
        self._pending: list[AnalyticsEvent] = []
        self._append = redis.register_script(_APPEND)
        self._flusher = Periodic("analytics-events", self.flush, flush_every_s)

    def record(self, event: AnalyticsEvent) -> None:
        """Keep `event` for the next write (within a second)."""
        self._pending.append(event)

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()

    async def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        try:
            for start in range(0, len(pending), EVENTS_PER_CALL):
                packed = [event.packed() for event in pending[start : start + EVENTS_PER_CALL]]
                await self._append(keys=[EVENTS], args=[self._max_events, *packed])
        except (RedisError, OSError):
            logger.debug("%d analytics events dropped: Redis is away", len(pending))

    async def read(
        self, since: float, until: float | None = None, limit: int | None = None
    ) -> list[AnalyticsEvent]:
        """The events written between `since` and `until` (epoch seconds), oldest first."""
        start = str(math.floor(since * 1000))
        end = "+" if until is None else str(math.ceil(until * 1000))
        entries = await self._redis.xrange(EVENTS, min=start, max=end, count=limit) or []
        return [AnalyticsEvent.from_fields(fields) for _, fields in entries if fields]
