"""The global upstream limiter against a real Redis: bound, fairness, reserve, leases, outages."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import redis.asyncio as aioredis

from app.config import LimiterSettings
from app.limits.upstream import RELEASED, Priority, SlotUnavailableError, UpstreamLimiter
from app.notifications import Notifier
from app.ops.local_redis import free_port

HOLDERS = "sv:limiter:elevenlabs:holders"
LimiterFactory = Callable[..., Awaitable[UpstreamLimiter]]


@pytest.fixture
async def make_limiter(fresh_redis: str) -> AsyncIterator[LimiterFactory]:
    """Limiters as separate processes would have them: each its own client and notifier."""
    async with AsyncExitStack() as stack:

        async def build(url: str = fresh_redis, **settings: float) -> UpstreamLimiter:
            # A generous read timeout: a timeout sends the limiter to its per-process share,
            # and a busy machine (the whole suite) can hold a 60-command burst past 1 s.
            client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=1)
            stack.push_async_callback(client.aclose)
            notifier = Notifier(client)
            limiter = UpstreamLimiter(client, notifier, LimiterSettings.model_validate(settings))
            notifier.start()
            stack.push_async_callback(notifier.stop)
            stack.push_async_callback(limiter.stop)
            if url == fresh_redis:
                await asyncio.wait_for(notifier.connected.wait(), 2)
            return limiter

        yield build


def _deadline(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def test_never_more_holders_than_slots_and_all_slots_used(
    make_limiter: LimiterFactory,
) -> None:
    limiters = [await make_limiter(upstream_slots=5, live_reserved_slots=0) for _ in range(3)]
    running = peak = 0

    async def call(limiter: UpstreamLimiter) -> None:
        nonlocal running, peak
        async with limiter.slot(Priority.LIVE, _deadline()):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.03)
            running -= 1

    await asyncio.gather(*(call(limiters[i % 3]) for i in range(60)))

    assert peak == 5


async def test_waiters_are_served_first_come_first_served(make_limiter: LimiterFactory) -> None:
    limiter = await make_limiter(upstream_slots=1, live_reserved_slots=0)
    other = await make_limiter(upstream_slots=1, live_reserved_slots=0)
    order: list[int] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with limiter.slot(Priority.LIVE, _deadline()):
            holding.set()
            await release.wait()

    async def waiter(n: int) -> None:
        async with (limiter if n % 2 else other).slot(Priority.LIVE, _deadline()):
            order.append(n)

    first = asyncio.create_task(holder())
    await holding.wait()
    waiters = []
    for n in range(6):
        waiters.append(asyncio.create_task(waiter(n)))
        await asyncio.sleep(0.05)  # each is queued before the next arrives
    release.set()
    await asyncio.gather(first, *waiters)

    assert order == list(range(6))


async def test_bulk_work_never_takes_the_live_reserve(make_limiter: LimiterFactory) -> None:
    limiter = await make_limiter(upstream_slots=3, live_reserved_slots=2)
    bulk_peak = bulk_running = 0

    async def bulk() -> None:
        nonlocal bulk_peak, bulk_running
        async with limiter.slot(Priority.BULK, _deadline()):
            bulk_running += 1
            bulk_peak = max(bulk_peak, bulk_running)
            await asyncio.sleep(0.05)
            bulk_running -= 1

    bulk_jobs = [asyncio.create_task(bulk()) for _ in range(6)]
    await asyncio.sleep(0.02)
    started = time.monotonic()
    async with limiter.slot(Priority.LIVE, _deadline()), limiter.slot(Priority.LIVE, _deadline()):
        live_wait = time.monotonic() - started
    await asyncio.gather(*bulk_jobs)

    assert bulk_peak == 1
    assert live_wait < 0.04  # the reserve was free for live calls at once


async def test_a_crashed_holders_slot_frees_itself_after_the_lease(
    make_limiter: LimiterFactory, fresh_redis: str
) -> None:
    limiter = await make_limiter(upstream_slots=2, live_reserved_slots=0, lease_s=1.0)
    async with aioredis.Redis.from_url(fresh_redis) as client:
        # Two holders of a process that died: leases run out in 300 ms, nobody renews them.
        (seconds, micros) = await client.time()
        expiry = seconds * 1000 + micros // 1000 + 300
        await client.zadd(HOLDERS, {"dead-1": expiry, "dead-2": expiry})
        started = time.monotonic()

        async with limiter.slot(Priority.LIVE, _deadline(3)):
            waited = time.monotonic() - started

    assert 0.2 < waited < 1.5


async def test_a_holder_keeps_its_slot_by_renewing_the_lease(
    make_limiter: LimiterFactory, fresh_redis: str
) -> None:
    limiter = await make_limiter(upstream_slots=1, live_reserved_slots=0, lease_s=0.3)
    other = await make_limiter(upstream_slots=1, live_reserved_slots=0, lease_s=0.3)

    async with limiter.slot(Priority.LIVE, _deadline()):
        with pytest.raises(SlotUnavailableError):
            async with other.slot(Priority.LIVE, _deadline(1.0)):
                pass  # pragma: no cover - must not be reached

    async with other.slot(Priority.LIVE, _deadline(1.0)):
        pass  # free again once released


async def test_waiting_does_not_poll_redis(make_limiter: LimiterFactory, fresh_redis: str) -> None:
    limiter = await make_limiter(upstream_slots=1, live_reserved_slots=0, recheck_s=0.5)
    async with aioredis.Redis.from_url(fresh_redis) as client:
        await client.config_resetstat()
        async with limiter.slot(Priority.LIVE, _deadline()):
            waiters = [asyncio.create_task(_hold_briefly(limiter)) for _ in range(10)]
            await asyncio.sleep(1.0)
        await asyncio.gather(*waiters)
        stats = await client.info("commandstats")

    evals = stats.get("cmdstat_evalsha", {}).get("calls", 0)
    # 10 waiters for 1 s: a 50 ms poll would make ~200 attempts; waking on releases and a
    # 0.5 s recheck makes a few per waiter.
    assert evals < 80


async def _hold_briefly(limiter: UpstreamLimiter) -> None:
    async with limiter.slot(Priority.LIVE, _deadline()):
        await asyncio.sleep(0.01)


async def test_no_slot_within_the_deadline_is_an_error_not_a_hang(
    make_limiter: LimiterFactory,
) -> None:
    limiter = await make_limiter(upstream_slots=1, live_reserved_slots=0)
    async with limiter.slot(Priority.LIVE, _deadline()):
        started = time.monotonic()
        with pytest.raises(SlotUnavailableError):
            async with limiter.slot(Priority.LIVE, _deadline(0.3)):
                pass  # pragma: no cover

    assert time.monotonic() - started < 0.8


async def test_a_retry_after_makes_every_process_hold_off(make_limiter: LimiterFactory) -> None:
    limiter = await make_limiter()
    other = await make_limiter()

    await limiter.cool_down(0.6)

    # Its budget ends before the back-off does: refused at once, for the fallback to speak.
    started = time.monotonic()
    with pytest.raises(SlotUnavailableError) as caught:
        async with other.slot(Priority.LIVE, _deadline(0.3)):
            pass  # pragma: no cover
    assert caught.value.cooling_down
    assert time.monotonic() - started < 0.2
    # Its budget outlasts the back-off: it waits the back-off out, then gets its slot.
    async with other.slot(Priority.LIVE, _deadline(2.0)):
        waited = time.monotonic() - started
    assert 0.5 <= waited < 1.2


async def test_without_redis_each_process_uses_its_share(make_limiter: LimiterFactory) -> None:
    limiter = await make_limiter(
        f"redis://127.0.0.1:{free_port()}/0", upstream_slots=4, live_reserved_slots=0
    )
    running = peak = 0

    async def call() -> None:
        nonlocal running, peak
        async with limiter.slot(Priority.LIVE, _deadline()):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(call() for _ in range(12)))

    assert peak == 4
    assert not limiter.global_mode
    assert limiter.stats.local_fallbacks == 12


async def test_slots_left_together_are_given_back_in_one_batch(
    make_limiter: LimiterFactory, fresh_redis: str
) -> None:
    limiter = await make_limiter(upstream_slots=20, live_reserved_slots=0)
    async with aioredis.Redis.from_url(fresh_redis) as client:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(RELEASED)
            assert (await pubsub.get_message(timeout=2) or {}).get("type") == "subscribe"
            leave = asyncio.Event()
            entered = asyncio.Semaphore(0)

            async def hold() -> None:
                async with limiter.slot(Priority.LIVE, _deadline()):
                    entered.release()
                    await leave.wait()

            holders = [asyncio.create_task(hold()) for _ in range(20)]
            for _ in holders:
                await entered.acquire()
            leave.set()
            await asyncio.gather(*holders)
            announced: list[int] = []
            while sum(announced) < 20:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
                assert message is not None, f"only {sum(announced)} of 20 releases announced"
                announced.append(int(message["data"]))
        assert await client.zcard(HOLDERS) == 0

    # Twenty callers leaving in the same turn of the loop cost a release call or two, not 20.
    assert len(announced) <= 2


async def test_a_cancelled_holder_gives_its_slot_back(
    make_limiter: LimiterFactory, fresh_redis: str
) -> None:
    limiter = await make_limiter(upstream_slots=1, live_reserved_slots=0)
    entered = asyncio.Event()

    async def hold_forever() -> None:
        async with limiter.slot(Priority.LIVE, _deadline()):
            entered.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold_forever())
    await entered.wait()
    holder.cancel()
    await asyncio.gather(holder, return_exceptions=True)

    started = time.monotonic()
    async with limiter.slot(Priority.LIVE, _deadline(1.0)):
        assert time.monotonic() - started < 0.5  # the slot was back at once, no lease ran out


async def test_stopping_gives_back_the_slots_just_left(
    make_limiter: LimiterFactory, fresh_redis: str
) -> None:
    limiter = await make_limiter(upstream_slots=3, live_reserved_slots=0)
    async with limiter.slot(Priority.LIVE, _deadline()):
        pass
    await limiter.stop()  # before the releaser's turn: stop() must give it back itself
    async with aioredis.Redis.from_url(fresh_redis) as client:
        assert await client.zcard(HOLDERS) == 0


async def test_a_slot_lost_while_held_is_reported_once_and_not_brought_back(
    make_limiter: LimiterFactory, fresh_redis: str, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = await make_limiter(upstream_slots=2, live_reserved_slots=0, lease_s=0.3)
    async with (
        aioredis.Redis.from_url(fresh_redis) as client,
        limiter.slot(Priority.LIVE, _deadline()),
    ):
        (member,) = await client.zrange(HOLDERS, 0, -1)
        assert isinstance(member, bytes)
        await client.zrem(HOLDERS, member)  # as if its lease had run out unrenewed
        await asyncio.sleep(0.5)  # several renewal ticks
        assert await client.zcard(HOLDERS) == 0
    lost = [r for r in caplog.records if "expired while in use" in r.getMessage()]
    assert len(lost) == 1
