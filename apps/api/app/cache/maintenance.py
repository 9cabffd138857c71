"""Nightly cache maintenance: tidy the indexes, refresh catalog audio, keep within budget.

- Catalog index entries whose audio is gone are dropped; catalog audio close to expiry gets
  its full catalog TTL back (it is still wanted: it is in the catalog).
- Hit counters whose audio is gone are dropped.
- Above the memory budget, dynamic audio closest to expiry is deleted first (catalog audio
  is kept) until the excess is freed; Redis' own eviction stays the backstop.
"""

import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from app.cache.audio_cache import CATALOG_INDEX, HITS_PREFIX
from app.cache.keys import KEY_PREFIX
from app.redis_text import text

logger = logging.getLogger(__name__)

_BATCH = 500


@dataclass
class MaintenanceReport:
    catalog_entries: int = 0
    dangling_catalog_dropped: int = 0
    catalog_refreshed: int = 0
    dangling_hit_counters_dropped: int = 0
    used_memory_bytes: int = 0
    memory_budget_bytes: int = 0
    evicted_for_budget: int = 0
    freed_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


async def _batches(found: AsyncIterator[bytes | str]) -> AsyncIterator[list[str]]:
    batch: list[str] = []
    async for item in found:
        batch.append(text(item))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def maintain(
    redis: Redis, *, catalog_ttl_s: int, refresh_before_s: int, memory_budget_bytes: int
) -> MaintenanceReport:
    report = MaintenanceReport()
    await _tidy_catalog(redis, catalog_ttl_s, refresh_before_s, report)
    await _drop_dangling_hit_counters(redis, report)
    await _keep_within_budget(redis, memory_budget_bytes, report)
    return report


async def _tidy_catalog(
    redis: Redis, catalog_ttl_s: int, refresh_before_s: int, report: MaintenanceReport
) -> None:
    async for keys in _batches(redis.sscan_iter(CATALOG_INDEX, count=_BATCH)):
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.ttl(key)
            ttls = await pipe.execute()
        gone = [key for key, ttl in zip(keys, ttls, strict=True) if ttl == -2]
        stale = [k for k, ttl in zip(keys, ttls, strict=True) if 0 <= ttl < refresh_before_s]
        report.catalog_entries += len(keys) - len(gone)
        async with redis.pipeline(transaction=False) as pipe:
            if gone:
                pipe.srem(CATALOG_INDEX, *gone)
            for key in stale:
                pipe.expire(key, catalog_ttl_s)
            await pipe.execute()
        report.dangling_catalog_dropped += len(gone)
        report.catalog_refreshed += len(stale)


async def _drop_dangling_hit_counters(redis: Redis, report: MaintenanceReport) -> None:
    async for counters in _batches(redis.scan_iter(match=HITS_PREFIX + "*", count=_BATCH)):
        audio_keys = [KEY_PREFIX + counter.removeprefix(HITS_PREFIX) for counter in counters]
        async with redis.pipeline(transaction=False) as pipe:
            for key in audio_keys:
                pipe.exists(key)
            present = await pipe.execute()
        dangling = [c for c, p in zip(counters, present, strict=True) if not p]
        if dangling:
            await redis.delete(*dangling)
        report.dangling_hit_counters_dropped += len(dangling)


async def _keep_within_budget(redis: Redis, budget: int, report: MaintenanceReport) -> None:
    memory = await redis.info("memory")
    used = int(memory.get("used_memory", 0))
    maxmemory = int(memory.get("maxmemory", 0))
    budget = budget or int(maxmemory * 0.9)
    report.used_memory_bytes, report.memory_budget_bytes = used, budget
    if budget <= 0 or used <= budget:
        return
    excess = used - budget
    catalog = {text(m) for m in await redis.smembers(CATALOG_INDEX)}
    candidates: list[tuple[int, str]] = []
    async for keys in _batches(redis.scan_iter(match=KEY_PREFIX + "*", count=_BATCH)):
        dynamic = [key for key in keys if key not in catalog]
        async with redis.pipeline(transaction=False) as pipe:
            for key in dynamic:
                pipe.ttl(key)
            ttls = await pipe.execute()
        candidates.extend((ttl, key) for key, ttl in zip(dynamic, ttls, strict=True) if ttl >= 0)
    candidates.sort()
    for _, key in candidates:
        if report.freed_bytes >= excess:
            break
        size = await redis.memory_usage(key) or 0
        report.evicted_for_budget += int(await redis.delete(key))
        report.freed_bytes += int(size)
    logger.info(
        "cache above its budget by %d bytes: %d entries deleted, %d bytes freed",
        excess,
        report.evicted_for_budget,
        report.freed_bytes,
    )
