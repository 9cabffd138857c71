"""Running awaitables concurrently, bounded, and receiving their results in order."""

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


async def in_order(
    jobs: Sequence[Callable[[], Awaitable[T]]], limit: int
) -> AsyncGenerator[T, None]:
    """Start up to `limit` jobs at once; yield each result as soon as all before it are out.

    Closing the generator early (a client went away) cancels every job still running.
    """
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    tasks = [asyncio.create_task(run(job)) for job in jobs]
    try:
        for task in tasks:
            yield await task
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
