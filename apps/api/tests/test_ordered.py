"""app.ordered.in_order: bounded concurrency, results in order, cancellation on early close."""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import aclosing

from app.ordered import in_order


async def test_results_come_in_order_while_running_at_most_the_limit() -> None:
    running = 0
    peak = 0

    def job(n: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02 * (5 - n % 5))  # later jobs finish first
            running -= 1
            return n

        return run

    results = [r async for r in in_order([job(n) for n in range(10)], limit=3)]

    assert results == list(range(10))
    assert peak == 3


async def test_closing_early_cancels_the_jobs_still_running() -> None:
    cancelled: list[int] = []

    def job(n: int) -> Callable[[], Awaitable[int]]:
        async def run() -> int:
            try:
                await asyncio.sleep(0 if n == 0 else 10)
            except asyncio.CancelledError:
                cancelled.append(n)
                raise
            return n

        return run

    async with aclosing(in_order([job(n) for n in range(4)], limit=4)) as results:
        first = await anext(results)

    assert first == 0
    assert sorted(cancelled) == [1, 2, 3]
