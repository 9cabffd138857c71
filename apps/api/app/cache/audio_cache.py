"""The audio cache in Redis: lookups in one round trip, TTL policy, promotion of hot segments.

A cache outage is never an error: the failing call answers "unavailable" (the request goes on
without cache, `X-Cache: bypass`) and Redis is left alone for a moment before it is tried
again, so a dead server costs one timeout per pause, not one per request.
"""

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.entry import CacheEntry, CorruptEntryError, decode_entry, encode_entry
from app.config import CacheSettings

logger = logging.getLogger(__name__)

HITS_PREFIX = "sv:audio-hits:"

# KEYS: audio key 1, its hits key, audio key 2, its hits key, ...; ARGV: long ttl, promote-at.
# Returns the values (false for misses) and, last, how many segments were promoted. Counting
# hits in the same round trip as the read keeps a cache hit at one Redis call.
_LOOKUP = """
local values = {}
local promoted = 0
for i = 1, #KEYS, 2 do
  local value = redis.call('GET', KEYS[i])
  values[#values + 1] = value
  if value then
    local hits = redis.call('INCR', KEYS[i + 1])
    redis.call('EXPIRE', KEYS[i + 1], ARGV[1])
    if hits >= tonumber(ARGV[2]) and redis.call('TTL', KEYS[i]) < tonumber(ARGV[1]) then
      promoted = promoted + redis.call('EXPIRE', KEYS[i], ARGV[1])
    end
  end
end
values[#values + 1] = promoted
return values
"""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What the cache had for each key: an entry, or None; `corrupt` values count as None."""

    entries: list[CacheEntry | None]
    corrupt: int


class AudioCache:
    def __init__(self, redis: Redis, settings: CacheSettings) -> None:
        self._redis = redis
        self._settings = settings
        self._paused_until = 0.0
        self._lookup = redis.register_script(_LOOKUP)
        self.corrupt_seen = 0
        self.promotions = 0

    @property
    def available(self) -> bool:
        return self._settings.enabled and time.monotonic() >= self._paused_until

    def _pause(self, exc: Exception) -> None:
        logger.warning("audio cache unavailable (%s): synthesizing without it", type(exc).__name__)
        self._paused_until = time.monotonic() + self._settings.outage_pause_s

    async def lookup(self, keys: list[str], wire_format: str) -> Lookup | None:
        """The entries for `keys` in one round trip (hits counted, hot ones promoted).

        None when the cache cannot be used now.
        """
        if not self.available:
            return None
        if not keys:
            return Lookup([], 0)
        script_keys = [k for key in keys for k in (key, HITS_PREFIX + key.rsplit(":", 1)[-1])]
        try:
            *values, promoted = await self._lookup(
                keys=script_keys,
                args=[self._settings.catalog_ttl_s, self._settings.promote_after_hits],
            )
        except (RedisError, OSError) as exc:
            self._pause(exc)
            return None
        self.promotions += int(promoted)
        entries: list[CacheEntry | None] = []
        corrupt = 0
        for key, value in zip(keys, values, strict=True):
            entry = self._decode(key, value, wire_format)
            corrupt += value is not None and entry is None
            entries.append(entry)
        self.corrupt_seen += corrupt
        return Lookup(entries, corrupt)

    async def get(self, key: str, wire_format: str) -> CacheEntry | None:
        found = await self.lookup([key], wire_format)
        return found.entries[0] if found is not None else None

    def _decode(self, key: str, value: bytes | str | None, wire_format: str) -> CacheEntry | None:
        if not isinstance(value, bytes):
            return None
        try:
            entry = decode_entry(value)
        except CorruptEntryError as exc:
            logger.warning("cache value %s is unusable (%s): treated as a miss", key, exc)
            return None
        if entry.meta.wire_format != wire_format:
            logger.warning("cache value %s is %s, not %s", key, entry.meta.wire_format, wire_format)
            return None
        return entry

    def ttl_for(self, entry: CacheEntry) -> int:
        return self._settings.catalog_ttl_s if entry.meta.catalog else self._settings.dynamic_ttl_s

    async def store(self, key: str, entry: CacheEntry) -> bool:
        if not self.available:
            return False
        try:
            await self._redis.set(key, encode_entry(entry), ex=self.ttl_for(entry))
        except (RedisError, OSError) as exc:
            self._pause(exc)
            return False
        return True

    async def memory(self) -> dict[str, int | str] | None:
        """The cache server's memory figures and evictions, as Redis reports them."""
        try:
            memory = await self._redis.info("memory")
            stats = await self._redis.info("stats")
        except (RedisError, OSError):
            return None
        return {
            "used_memory_bytes": int(memory.get("used_memory", 0)),
            "maxmemory_bytes": int(memory.get("maxmemory", 0)),
            "maxmemory_policy": str(memory.get("maxmemory_policy", "")),
            "evicted_keys": int(stats.get("evicted_keys", 0)),
        }
