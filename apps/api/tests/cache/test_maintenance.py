"""Nightly cache maintenance and the cache's catalog index, against the session's private Redis."""

import redis.asyncio as aioredis

from app.cache.audio_cache import CATALOG_INDEX, HITS_PREFIX, AudioCache
from app.cache.entry import CacheEntry, new_entry
from app.cache.keys import KEY_PREFIX
from app.cache.maintenance import maintain
from app.config import CacheSettings

DAY = 86_400
CATALOG_TTL = 7 * DAY
REFRESH_BEFORE = 2 * DAY
NO_BUDGET_PRESSURE = 1 << 40  # far above anything a test server holds


def _key(name: str) -> str:
    return KEY_PREFIX + name


def _entry(*, catalog: bool, audio: bytes = b"\xff" * 800) -> CacheEntry:
    return new_entry(
        audio, wire_format="ulaw_8000", provider="elevenlabs", voice_id="v",
        duration_ms=100, quality=1.0, characters_billed=10, catalog=catalog,
    )  # fmt: skip


async def _catalog(redis_client: aioredis.Redis) -> set[str]:
    members = await redis_client.smembers(CATALOG_INDEX)
    return {m.decode() if isinstance(m, bytes) else m for m in members}


async def _used_memory(redis_client: aioredis.Redis) -> int:
    return int((await redis_client.info("memory"))["used_memory"])


# maintain(): the catalog index


async def test_catalog_entries_whose_audio_is_gone_are_dropped_from_the_index_and_counted(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(_key("live"), b"audio", ex=CATALOG_TTL)
    await redis_client.sadd(CATALOG_INDEX, _key("live"), _key("gone-1"), _key("gone-2"))

    report = await maintain(
        redis_client,
        catalog_ttl_s=CATALOG_TTL,
        refresh_before_s=REFRESH_BEFORE,
        memory_budget_bytes=NO_BUDGET_PRESSURE,
    )

    assert report.dangling_catalog_dropped == 2
    assert report.catalog_entries == 1
    assert await _catalog(redis_client) == {_key("live")}
    assert await redis_client.get(_key("live")) == b"audio"


async def test_catalog_audio_near_expiry_gets_the_catalog_ttl_back_and_the_rest_keeps_its_own(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(_key("near"), b"audio", ex=600)
    await redis_client.set(_key("far"), b"audio", ex=5 * DAY)
    await redis_client.sadd(CATALOG_INDEX, _key("near"), _key("far"))

    report = await maintain(
        redis_client,
        catalog_ttl_s=CATALOG_TTL,
        refresh_before_s=REFRESH_BEFORE,
        memory_budget_bytes=NO_BUDGET_PRESSURE,
    )

    assert report.catalog_refreshed == 1
    assert report.catalog_entries == 2
    assert CATALOG_TTL - 60 < await redis_client.ttl(_key("near")) <= CATALOG_TTL
    assert 5 * DAY - 60 < await redis_client.ttl(_key("far")) <= 5 * DAY


# maintain(): hit counters


async def test_hit_counters_whose_audio_is_gone_are_dropped_and_live_ones_stay(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(_key("aa11"), b"audio", ex=DAY)
    await redis_client.set(HITS_PREFIX + "aa11", 2, ex=CATALOG_TTL)
    await redis_client.set(HITS_PREFIX + "bb22", 5, ex=CATALOG_TTL)  # its audio expired
    await redis_client.set(HITS_PREFIX + "cc33", 1, ex=CATALOG_TTL)  # likewise

    report = await maintain(
        redis_client,
        catalog_ttl_s=CATALOG_TTL,
        refresh_before_s=REFRESH_BEFORE,
        memory_budget_bytes=NO_BUDGET_PRESSURE,
    )

    assert report.dangling_hit_counters_dropped == 2
    assert await redis_client.get(HITS_PREFIX + "aa11") == b"2"
    assert await redis_client.exists(HITS_PREFIX + "bb22", HITS_PREFIX + "cc33") == 0
    assert await redis_client.get(_key("aa11")) == b"audio"


# maintain(): the memory budget


async def test_over_budget_the_dynamic_audio_closest_to_expiry_goes_first_and_catalog_stays(
    redis_client: aioredis.Redis,
) -> None:
    value = b"\x01" * 100_000
    dynamic_ttls = {"dyn-1": 1_000, "dyn-2": 2_000, "dyn-3": 3_000, "dyn-4": 4_000}
    for name, ttl in dynamic_ttls.items():
        await redis_client.set(_key(name), value, ex=ttl)
    # Catalog audio closer to expiry than any dynamic audio: it would go first if it could.
    for name in ("cat-1", "cat-2"):
        await redis_client.set(_key(name), value, ex=100)
        await redis_client.sadd(CATALOG_INDEX, _key(name))
    # The excess is one and a half values: the two dynamic entries closest to expiry free it.
    budget = await _used_memory(redis_client) - 150_000

    report = await maintain(
        redis_client, catalog_ttl_s=CATALOG_TTL, refresh_before_s=10, memory_budget_bytes=budget
    )

    assert report.memory_budget_bytes == budget
    assert report.used_memory_bytes > budget
    assert report.evicted_for_budget == 2
    assert report.freed_bytes >= 150_000 > 0
    assert await redis_client.exists(_key("dyn-1"), _key("dyn-2")) == 0
    assert await redis_client.exists(_key("dyn-3"), _key("dyn-4")) == 2
    assert await redis_client.exists(_key("cat-1"), _key("cat-2")) == 2
    assert await _catalog(redis_client) == {_key("cat-1"), _key("cat-2")}


async def test_catalog_audio_is_never_deleted_even_when_it_alone_is_over_budget(
    redis_client: aioredis.Redis,
) -> None:
    for name in ("cat-1", "cat-2", "cat-3"):
        await redis_client.set(_key(name), b"\x01" * 100_000, ex=100)
        await redis_client.sadd(CATALOG_INDEX, _key(name))

    report = await maintain(
        redis_client, catalog_ttl_s=CATALOG_TTL, refresh_before_s=10, memory_budget_bytes=1
    )

    assert report.evicted_for_budget == 0
    assert report.freed_bytes == 0
    assert await redis_client.exists(_key("cat-1"), _key("cat-2"), _key("cat-3")) == 3


async def test_under_budget_nothing_is_deleted(redis_client: aioredis.Redis) -> None:
    for n in range(5):
        await redis_client.set(_key(f"dyn-{n}"), b"\x01" * 10_000, ex=100 + n)
    budget = await _used_memory(redis_client) + 10_000_000

    report = await maintain(
        redis_client, catalog_ttl_s=CATALOG_TTL, refresh_before_s=10, memory_budget_bytes=budget
    )

    assert report.memory_budget_bytes == budget
    assert report.evicted_for_budget == 0
    assert report.freed_bytes == 0
    assert await redis_client.exists(*(_key(f"dyn-{n}") for n in range(5))) == 5


async def test_with_no_budget_and_no_maxmemory_nothing_is_deleted(
    redis_client: aioredis.Redis,
) -> None:
    assert (await redis_client.config_get("maxmemory"))["maxmemory"] == "0"
    await redis_client.set(_key("dyn"), b"\x01" * 10_000, ex=100)

    report = await maintain(
        redis_client, catalog_ttl_s=CATALOG_TTL, refresh_before_s=10, memory_budget_bytes=0
    )

    assert report.memory_budget_bytes == 0
    assert report.evicted_for_budget == 0
    assert await redis_client.exists(_key("dyn")) == 1


async def test_with_no_budget_the_budget_is_ninety_percent_of_maxmemory(
    redis_client: aioredis.Redis,
) -> None:
    await redis_client.set(_key("dyn"), b"\x01" * 10_000, ex=100)
    # Ten times what is used: far from Redis' own eviction, and the derived budget is not hit.
    maxmemory = 10 * await _used_memory(redis_client)
    await redis_client.config_set("maxmemory", maxmemory)
    try:
        report = await maintain(
            redis_client, catalog_ttl_s=CATALOG_TTL, refresh_before_s=10, memory_budget_bytes=0
        )
    finally:
        await redis_client.config_set("maxmemory", 0)

    assert report.memory_budget_bytes == int(maxmemory * 0.9)
    assert report.evicted_for_budget == 0
    assert await redis_client.exists(_key("dyn")) == 1


# AudioCache: pin() and the catalog index


async def test_pin_lengthens_a_short_ttl_and_never_shortens_a_long_one(
    redis_client: aioredis.Redis,
) -> None:
    cache = AudioCache(redis_client, CacheSettings())
    await redis_client.set(_key("short"), b"audio", ex=100)
    await redis_client.set(_key("long"), b"audio", ex=5 * DAY)
    await redis_client.set(_key("forever"), b"audio")

    present = await cache.pin([_key("short"), _key("long"), _key("forever")], DAY)

    assert present == 3
    assert DAY - 60 < await redis_client.ttl(_key("short")) <= DAY
    assert 5 * DAY - 60 < await redis_client.ttl(_key("long")) <= 5 * DAY
    assert await redis_client.ttl(_key("forever")) == -1


async def test_pin_counts_only_the_keys_the_cache_holds_and_creates_none(
    redis_client: aioredis.Redis,
) -> None:
    cache = AudioCache(redis_client, CacheSettings())
    await redis_client.set(_key("here"), b"audio", ex=100)

    present = await cache.pin([_key("here"), _key("missing-1"), _key("missing-2")], DAY)

    assert present == 1
    assert await redis_client.exists(_key("missing-1"), _key("missing-2")) == 0
    assert await cache.pin([], DAY) == 0


async def test_pin_as_catalog_indexes_the_keys_and_a_plain_pin_does_not(
    redis_client: aioredis.Redis,
) -> None:
    cache = AudioCache(redis_client, CacheSettings())
    for name in ("plain", "phrase-1", "phrase-2"):
        await redis_client.set(_key(name), b"audio", ex=100)

    await cache.pin([_key("plain")], DAY)
    await cache.pin([_key("phrase-1"), _key("phrase-2")], CATALOG_TTL, catalog=True)

    assert await _catalog(redis_client) == {_key("phrase-1"), _key("phrase-2")}
    assert CATALOG_TTL - 60 < await redis_client.ttl(_key("phrase-1")) <= CATALOG_TTL


async def test_storing_a_catalog_entry_indexes_it_and_a_dynamic_entry_is_not_indexed(
    redis_client: aioredis.Redis,
) -> None:
    cache = AudioCache(redis_client, CacheSettings())

    assert await cache.store(_key("catalog"), _entry(catalog=True))
    assert await cache.store(_key("dynamic"), _entry(catalog=False))

    assert await _catalog(redis_client) == {_key("catalog")}
    assert await redis_client.exists(_key("catalog"), _key("dynamic")) == 2
