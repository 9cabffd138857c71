"""Single-flight: concurrent misses of one key, in one process or several, cost one synthesis."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from app.cache.audio_cache import AudioCache
from app.cache.entry import new_entry
from app.cache.single_flight import Computed, SingleFlight
from app.config import CacheSettings
from app.notifications import Notifier

KEY = "sv:audio:v1:flight-test"
FORMAT = "ulaw_8000"
FlightFactory = Callable[..., Awaitable[SingleFlight]]


def _computed(cacheable: bool = True) -> Computed:
    entry = new_entry(
        b"\x7f" * 1600, wire_format=FORMAT, provider="elevenlabs", voice_id="v",
        duration_ms=200, quality=0.9, characters_billed=12, catalog=False,
    )  # fmt: skip
    return Computed(entry=entry, cacheable=cacheable)


@pytest.fixture
async def make_flight(fresh_redis: str) -> AsyncIterator[FlightFactory]:
    """One SingleFlight per simulated process: its own Redis client and notifier."""
    async with AsyncExitStack() as stack:

        async def build(wait_s: float = 5.0) -> SingleFlight:
            client = aioredis.Redis.from_url(fresh_redis)
            stack.push_async_callback(client.aclose)
            notifier = Notifier(client)
            flight = SingleFlight(client, AudioCache(client, CacheSettings()), notifier, wait_s)
            notifier.start()
            stack.push_async_callback(notifier.stop)
            await asyncio.wait_for(notifier.connected.wait(), 2)
            return flight

        yield build


async def test_twenty_callers_in_two_processes_share_one_computation(
    make_flight: FlightFactory,
) -> None:
    flights = [await make_flight(), await make_flight()]
    calls = 0

    async def compute() -> Computed:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return _computed()

    results = await asyncio.gather(*(flights[i % 2].run(KEY, FORMAT, compute) for i in range(20)))

    assert calls == 1
    assert sum(r.computed_here for r in results) == 1
    assert {r.entry.audio for r in results} == {_computed().entry.audio}


async def test_an_uncacheable_result_reaches_the_other_process_inside_the_notice(
    make_flight: FlightFactory, fresh_redis: str
) -> None:
    leader, follower = await make_flight(), await make_flight()
    calls = 0

    async def compute() -> Computed:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return _computed(cacheable=False)

    first = asyncio.create_task(leader.run(KEY, FORMAT, compute))
    await asyncio.sleep(0.05)
    second = await follower.run(KEY, FORMAT, compute)

    assert (await first).computed_here
    assert not second.computed_here
    assert calls == 1
    async with aioredis.Redis.from_url(fresh_redis) as client:
        assert await client.get(KEY) is None  # the fallback's audio is not cached


async def test_when_the_leader_fails_the_followers_compute_at_once(
    make_flight: FlightFactory,
) -> None:
    leader, follower = await make_flight(), await make_flight(wait_s=10)

    async def failing() -> Computed:
        await asyncio.sleep(0.1)
        raise RuntimeError("the leader's synthesis blew up")

    async def working() -> Computed:
        return _computed()

    first = asyncio.create_task(leader.run(KEY, FORMAT, failing))
    await asyncio.sleep(0.02)
    started = asyncio.get_running_loop().time()
    second = await follower.run(KEY, FORMAT, working)

    with pytest.raises(RuntimeError):
        await first
    assert second.computed_here
    assert asyncio.get_running_loop().time() - started < 2  # not the 10 s wait


async def test_a_silent_leader_costs_followers_a_bounded_wait(make_flight: FlightFactory) -> None:
    leader, follower = await make_flight(), await make_flight(wait_s=0.3)
    hang = asyncio.Event()

    async def stuck() -> Computed:
        await hang.wait()
        return _computed()

    async def working() -> Computed:
        return _computed()

    first = asyncio.create_task(leader.run(KEY, FORMAT, stuck))
    await asyncio.sleep(0.02)
    second = await asyncio.wait_for(follower.run(KEY, FORMAT, working), 2)

    assert second.computed_here
    hang.set()
    await first


async def test_a_cancelled_leader_hands_over_to_a_local_follower(
    make_flight: FlightFactory,
) -> None:
    flight = await make_flight()
    hang = asyncio.Event()

    async def stuck() -> Computed:
        await hang.wait()
        return _computed()

    async def working() -> Computed:
        return _computed()

    leader = asyncio.create_task(flight.run(KEY, FORMAT, stuck))
    await asyncio.sleep(0.02)
    follower = asyncio.create_task(flight.run(KEY, FORMAT, working))
    await asyncio.sleep(0.02)
    leader.cancel()

    result = await asyncio.wait_for(follower, 2)

    assert result.computed_here
