"""The memory tier: hot audio kept by each process, in front of Redis."""

import asyncio
from collections.abc import Callable

import redis.asyncio as aioredis

from app.cache.entry import CacheEntry, new_entry
from app.cache.hot_audio import ENTRY_OVERHEAD_BYTES, HotAudio
from app.cache.keys import KEY_PREFIX
from app.config import Settings
from tests.asgi import app_client
from tests.conftest import DisposableRedis
from tests.fakes.elevenlabs_server import FakeElevenLabs

URL = "/api/v1/voice/synthesize"
TEXT = "The open house starts at noon on Sunday."
KEY_SIZE = len(KEY_PREFIX) + 8


def _entry(audio_bytes: int) -> CacheEntry:
    return new_entry(
        b"\xff" * audio_bytes, wire_format="ulaw_8000", provider="elevenlabs", voice_id="v",
        duration_ms=audio_bytes // 8, quality=1.0, characters_billed=10, catalog=False,
    )  # fmt: skip


def _key(n: int) -> str:
    return f"{KEY_PREFIX}{n:08d}"  # KEY_SIZE characters


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cost(audio_bytes: int) -> int:
    return audio_bytes + KEY_SIZE + ENTRY_OVERHEAD_BYTES


def test_the_least_recently_used_entries_go_first_to_stay_within_the_budget() -> None:
    hot = HotAudio(max_bytes=4 * _cost(1000), max_age_s=60)
    for n in range(4):
        hot.put(_key(n), _entry(1000))
    assert hot.get(_key(0)) is not None  # 0 is now the most recently used

    hot.put(_key(4), _entry(1000))

    assert hot.get(_key(1)) is None
    assert [hot.get(_key(n)) is not None for n in (0, 2, 3, 4)] == [True] * 4
    assert hot.bytes == 4 * _cost(1000)
    assert len(hot) == 4
    assert hot.evictions == 1


def test_an_entry_is_dropped_once_older_than_the_max_age() -> None:
    clock = Clock()
    hot = HotAudio(max_bytes=10**6, max_age_s=30, clock=clock)
    hot.put(_key(1), _entry(100))

    clock.now += 29.9
    assert hot.get(_key(1)) is not None
    clock.now += 0.2

    assert hot.get(_key(1)) is None
    assert hot.bytes == 0
    assert len(hot) == 0


def test_an_entry_too_big_for_its_share_is_not_kept_and_keeps_the_others() -> None:
    hot = HotAudio(max_bytes=4 * _cost(1000), max_age_s=60)
    hot.put(_key(1), _entry(1000))

    hot.put(_key(2), _entry(2000))  # over a quarter of the budget

    assert hot.get(_key(2)) is None
    assert hot.get(_key(1)) is not None


def test_putting_a_key_again_replaces_it_and_counts_it_once() -> None:
    hot = HotAudio(max_bytes=10**6, max_age_s=60)
    hot.put(_key(1), _entry(100))
    newer = _entry(300)

    hot.put(_key(1), newer)

    assert hot.get(_key(1)) is newer
    assert hot.bytes == _cost(300)


def test_a_budget_of_zero_keeps_nothing() -> None:
    hot = HotAudio(max_bytes=0, max_age_s=60)
    hot.put(_key(1), _entry(10))
    assert hot.get(_key(1)) is None


async def _delete_audio(redis_url: str) -> int:
    async with aioredis.Redis.from_url(redis_url) as client:
        keys = [key async for key in client.scan_iter(match=KEY_PREFIX + "*")]
        return int(await client.delete(*keys)) if keys else 0


async def test_a_segment_redis_answered_for_is_served_from_memory_without_redis(
    make_settings: Callable[..., Settings], elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    settings = make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url}
    )
    async with app_client(settings) as client:
        first = await client.post(URL, json={"text": TEXT})  # miss: stored in Redis only
        second = await client.post(URL, json={"text": TEXT})  # hit from Redis: kept in memory
        assert await _delete_audio(fresh_redis) == 1

        third = await client.post(URL, json={"text": TEXT})
        figures = (await client.get("/api/v1/voice/performance")).json()["now"]["cache"]

    assert [r.headers["x-cache"] for r in (first, second, third)] == ["miss", "hit", "hit"]
    assert third.content == second.content == first.content
    assert elevenlabs.stats().total_requests == 1
    assert figures["memory_entries"] == 1
    assert figures["memory_hits"] == 1
    assert figures["memory_budget_bytes"] == settings.cache.memory_bytes
    assert len(first.content) < figures["memory_bytes"] < len(first.content) + 2000


async def test_without_a_memory_budget_every_hit_asks_redis(
    make_settings: Callable[..., Settings], fresh_redis: str
) -> None:
    settings = make_settings(cache={"memory_bytes": 0})
    async with app_client(settings) as client:
        await client.post(URL, json={"text": TEXT})
        hit = await client.post(URL, json={"text": TEXT})
        await _delete_audio(fresh_redis)

        again = await client.post(URL, json={"text": TEXT})

    assert hit.headers["x-cache"] == "hit"
    assert again.headers["x-cache"] == "miss"


async def test_a_copy_older_than_the_max_age_is_asked_of_redis_again(
    make_settings: Callable[..., Settings], fresh_redis: str
) -> None:
    settings = make_settings(cache={"memory_max_age_s": 0.3})
    async with app_client(settings) as client:
        await client.post(URL, json={"text": TEXT})
        await client.post(URL, json={"text": TEXT})
        await _delete_audio(fresh_redis)
        from_memory = await client.post(URL, json={"text": TEXT})
        await asyncio.sleep(0.4)

        expired = await client.post(URL, json={"text": TEXT})

    assert from_memory.headers["x-cache"] == "hit"
    assert expired.headers["x-cache"] == "miss"


async def test_hot_audio_is_still_served_while_redis_is_down(
    make_settings: Callable[..., Settings], disposable_redis: DisposableRedis
) -> None:
    settings = make_settings(redis={"url": disposable_redis.url}, cache={"outage_pause_s": 0.2})
    async with app_client(settings) as client:
        await client.post(URL, json={"text": TEXT})
        held = await client.post(URL, json={"text": TEXT})
        disposable_redis.kill()

        during = await client.post(URL, json={"text": TEXT})
        other = await client.post(URL, json={"text": "A text nobody asked for before."})

    assert during.headers["x-cache"] == "hit"
    assert during.content == held.content
    assert other.status_code == 200
    assert other.headers["x-cache"] == "bypass"


async def test_memory_hits_still_count_towards_promotion(
    make_settings: Callable[..., Settings], fresh_redis: str
) -> None:
    settings = make_settings(cache={"promote_after_hits": 3})
    async with app_client(settings) as client, aioredis.Redis.from_url(fresh_redis) as redis:
        await client.post(URL, json={"text": TEXT})
        (key,) = [k async for k in redis.scan_iter(match=KEY_PREFIX + "*")]
        for _ in range(3):  # one from Redis, then two from memory
            assert (await client.post(URL, json={"text": TEXT})).headers["x-cache"] == "hit"
        # Hits are counted in memory and written once a second.
        for _ in range(50):
            if await redis.ttl(key) > settings.cache.dynamic_ttl_s:
                break
            await asyncio.sleep(0.1)
        assert await redis.ttl(key) > settings.cache.dynamic_ttl_s
