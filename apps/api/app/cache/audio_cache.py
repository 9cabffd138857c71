"""The audio cache in Redis: one round trip per lookup, TTL policy, promotion of hot segments.

A cache outage is never an error: the failing call answers "unavailable" (the request goes on
without cache, `X-Cache: bypass`) and Redis is left alone for a moment before it is tried
again, so a dead server costs one timeout per pause, not one per request.

A hit is a plain GET (MGET for several segments), or no call at all when this process holds
the segment in memory (HotAudio: what Redis answered with lately). Hits are counted in memory
and written once a second in one script call (as the analytics rollups are), where segments
hit often enough are promoted to the long TTL: counting in the read itself made every hit a
script call, a third dearer.
"""

import logging
import time
from collections import Counter
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.entry import CacheEntry, CorruptEntryError, decode_entry, encode_entry
from app.cache.hot_audio import HotAudio
from app.config import CacheSettings
from app.observability import metrics
from app.periodic import Periodic

logger = logging.getLogger(__name__)

HITS_PREFIX = "sv:audio-hits:"
HITS_FLUSH_EVERY_S = 1.0

# KEYS: audio key 1, its hits key, audio key 2, its hits key, ...; ARGV: long ttl, promote-at,
# then the hits to add for each pair. Returns how many segments were promoted.
_COUNT_HITS = """
local promoted = 0
for i = 1, #KEYS, 2 do
  local hits = redis.call('INCRBY', KEYS[i + 1], ARGV[2 + (i + 1) / 2])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[1])
  if hits >= tonumber(ARGV[2]) and redis.call('TTL', KEYS[i]) < tonumber(ARGV[1]) then
    promoted = promoted + redis.call('EXPIRE', KEYS[i], ARGV[1])
  end
end
return promoted
"""


# KEYS: audio keys; ARGV: ttl. Lengthens each present key's TTL to at least ttl; returns how
# many keys are present.
_PIN = """
local present = 0
for _, key in ipairs(KEYS) do
  local ttl = redis.call('TTL', key)
  if ttl ~= -2 then
    present = present + 1
    if ttl >= 0 and ttl < tonumber(ARGV[1]) then redis.call('EXPIRE', key, ARGV[1]) end
  end
end
return present
"""

_SEGMENTS_FOUND = metrics.ChildCache(metrics.CACHED_SEGMENTS)

# Keys of catalog audio (pre-generated phrases): maintenance refreshes and tidies them.
CATALOG_INDEX = "sv:audio-catalog"


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
        self._count_hits = redis.register_script(_COUNT_HITS)
        self._pin = redis.register_script(_PIN)
        self._hits: Counter[str] = Counter()
        self._hits_flusher = Periodic("cache-hits", self.flush_hits, HITS_FLUSH_EVERY_S)
        self.hot = HotAudio(settings.memory_bytes, settings.memory_max_age_s)
        self.corrupt_seen = 0
        self.promotions = 0

    def start(self) -> None:
        self._hits_flusher.start()

    async def stop(self) -> None:
        await self._hits_flusher.stop()

    @property
    def available(self) -> bool:
        return self._settings.enabled and time.monotonic() >= self._paused_until

    def _pause(self, exc: Exception) -> None:
        logger.warning("audio cache unavailable (%s): synthesizing without it", type(exc).__name__)
        self._paused_until = time.monotonic() + self._settings.outage_pause_s

    async def lookup(self, keys: list[str], wire_format: str) -> Lookup | None:
        """The entries for `keys`: from memory, the rest in one round trip (hits counted).

        None when the cache cannot be used now (unless memory holds every key).
        """
        if not self._settings.enabled:
            return None
        held = [self.hot.get(key) for key in keys]
        missing = [key for key, entry in zip(keys, held, strict=True) if entry is None]
        if missing and not self.available:
            return None
        if len(missing) < len(keys):
            _SEGMENTS_FOUND("memory").inc(len(keys) - len(missing))
        if not missing:
            for key in keys:
                self._hits[key] += 1
            return Lookup(held, 0)
        try:
            # Most texts are one sentence: GET answers one key for less than MGET.
            values = (
                [await self._redis.get(missing[0])]
                if len(missing) == 1
                else await self._redis.mget(missing)
            )
        except (RedisError, OSError) as exc:
            self._pause(exc)
            return None
        fetched = iter(values)
        entries: list[CacheEntry | None] = []
        corrupt = 0
        for key, entry in zip(keys, held, strict=True):
            if entry is None:
                value = next(fetched)
                entry = self._decode(key, value, wire_format)
                corrupt += value is not None and entry is None
                if entry is not None:
                    _SEGMENTS_FOUND("redis").inc()
                    self.hot.put(key, entry)
            if entry is not None:
                self._hits[key] += 1
            entries.append(entry)
        self.corrupt_seen += corrupt
        return Lookup(entries, corrupt)

    async def flush_hits(self) -> None:
        """Add the hits counted since the last flush; promote the segments now hot enough."""
        if not self._hits:
            return
        hits, self._hits = self._hits, Counter()
        keys = [k for key in hits for k in (key, HITS_PREFIX + key.rsplit(":", 1)[-1])]
        args = [self._settings.catalog_ttl_s, self._settings.promote_after_hits, *hits.values()]
        try:
            self.promotions += int(await self._count_hits(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            # Counts are a hint for the TTL policy: losing a second of them is harmless.
            logger.debug("%d cache hit counts dropped (%s)", len(hits), type(exc).__name__)

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
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, encode_entry(entry), ex=self.ttl_for(entry))
                if entry.meta.catalog:
                    pipe.sadd(CATALOG_INDEX, key)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._pause(exc)
            return False
        return True

    async def pin(self, keys: list[str], ttl_s: int, *, catalog: bool = False) -> int | None:
        """Keep `keys` for at least `ttl_s` (catalog: also index them as catalog audio).

        Returns how many of the keys the cache holds; None when the cache cannot be used now.
        """
        if not self.available or not keys:
            return None if keys else 0
        try:
            present = int(await self._pin(keys=keys, args=[ttl_s]))
            if catalog:
                await self._redis.sadd(CATALOG_INDEX, *keys)
        except (RedisError, OSError) as exc:
            self._pause(exc)
            return None
        return present

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
