"""Per-minute rollups by scope: their own hashes, one batched write, read over windows."""

import asyncio
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.analytics.rollups import Rollups, Sample, minute_key

FRIENDLY = ("persona", "friendly")
SPANISH = ("language", "es")
AGENT = ("agent", "maple_01")


async def _away_from_a_minute_boundary() -> None:
    """Samples recorded in one test land in one minute."""
    if time.time() % 60 > 57:
        await asyncio.sleep(60 - time.time() % 60 + 0.1)


async def _evalsha_calls(redis_client: aioredis.Redis) -> int:
    stats: dict[str, Any] = await redis_client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_scoped_sample_counts_for_the_service_and_for_each_of_its_scopes(
    redis_client: aioredis.Redis,
) -> None:
    await _away_from_a_minute_boundary()
    rollups = Rollups(redis_client)
    rollups.record(Sample().count("requests").observe("latency", 0.2), (FRIENDLY, SPANISH))
    rollups.record(Sample().count("requests").observe("latency", 0.4), (FRIENDLY,))
    rollups.record(Sample().count("requests"))
    await rollups.flush()

    assert (await rollups.window(5))["requests"] == 3
    assert (await rollups.window(5, FRIENDLY))["requests"] == 2
    assert (await rollups.window(5, SPANISH))["requests"] == 1
    assert (await rollups.window(5, SPANISH))["latency_sum_s"] == 0.2
    assert await rollups.window(5, AGENT) == {}
    minute = int(time.time() // 60)
    assert await redis_client.exists(minute_key(minute)) == 1
    assert await redis_client.exists(f"sv:perf:persona:friendly:{minute}") == 1
    assert 0 < await redis_client.ttl(f"sv:perf:persona:friendly:{minute}") <= 25 * 3600


async def test_a_flush_makes_one_script_call_per_hash_however_many_requests(
    redis_client: aioredis.Redis,
) -> None:
    await _away_from_a_minute_boundary()
    rollups = Rollups(redis_client)
    before = await _evalsha_calls(redis_client)
    for i in range(500):
        rollups.record(Sample().count("requests"), (FRIENDLY, SPANISH) if i % 2 else (AGENT,))
    await rollups.flush()

    # The service's hash and three scopes' hashes: four calls for 500 requests.
    assert await _evalsha_calls(redis_client) - before == 4
    assert (await rollups.window(1))["requests"] == 500
    assert (await rollups.window(1, AGENT))["requests"] == 250


async def test_the_periodic_flush_writes_scopes_within_a_second_or_so(
    redis_client: aioredis.Redis,
) -> None:
    rollups = Rollups(redis_client, flush_every_s=0.1)
    rollups.start()
    try:
        rollups.record(Sample().count("requests"), (AGENT,))
        deadline = time.monotonic() + 5
        while not await rollups.window(2, AGENT):
            assert time.monotonic() < deadline, "the scope was never written"
            await asyncio.sleep(0.05)
    finally:
        await rollups.stop()
    assert (await rollups.window(2, AGENT))["requests"] == 1


async def test_minutes_lists_each_minute_of_a_scope_oldest_first_with_empty_ones_empty(
    redis_client: aioredis.Redis,
) -> None:
    rollups = Rollups(redis_client)
    now = time.time()
    current = int(now // 60)
    await redis_client.hset(minute_key(current - 2, FRIENDLY), mapping={"requests": 4})
    await redis_client.hset(minute_key(current, FRIENDLY), mapping={"requests": 1})

    minutes = await rollups.minutes(3, FRIENDLY, now)

    assert minutes == [
        (current - 2, {"requests": 4.0}),
        (current - 1, {}),
        (current, {"requests": 1.0}),
    ]
    assert (await rollups.window(3, FRIENDLY, now))["requests"] == 5
    assert (await rollups.window(2, FRIENDLY, now))["requests"] == 1


async def test_maxima_of_a_window_are_the_largest_not_the_sum(
    redis_client: aioredis.Redis,
) -> None:
    rollups = Rollups(redis_client)
    now = time.time()
    current = int(now // 60)
    await redis_client.hset(minute_key(current - 1, AGENT), mapping={"peak_slots_in_use": 7})
    await redis_client.hset(minute_key(current, AGENT), mapping={"peak_slots_in_use": 3})

    assert (await rollups.window(2, AGENT, now))["peak_slots_in_use"] == 7


async def test_a_flush_while_redis_is_away_drops_the_second_and_does_not_raise() -> None:
    # Port 1: nothing listens; no retries, so the test does not wait through their backoff.
    async with aioredis.Redis(port=1, retry=Retry(NoBackoff(), 0)) as away:
        rollups = Rollups(away)
        rollups.record(Sample().count("requests"), (AGENT, FRIENDLY))
        await rollups.flush()
        await rollups.flush()  # nothing left to write
