"""One event loop and one set of services per worker process, reused by every task.

Redis pools and the pooled ElevenLabs client are bound to the loop they were made on; keeping
the loop for the process's life keeps them (the warm-up's fresh upstream connection is still
there for the next bulk chunk) and spares each task the services' start-up.
"""

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TypeVar, TypeVarTuple, Unpack

from celery import Celery

from app.config import Settings
from app.services import Services, open_services

T = TypeVar("T")
Args = TypeVarTuple("Args")


class TaskDeadlineError(Exception):
    """A task ran past its time limit and was cancelled."""


class WorkerRuntime:
    def __init__(self, settings: Settings, celery: Celery) -> None:
        self._settings = settings
        self._celery = celery
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stack: AsyncExitStack | None = None
        self._services: Services | None = None

    def run(self, work: Callable[[Services, Unpack[Args]], Awaitable[T]], *args: *Args) -> T:
        """Run `work(services, *args)` to completion on this process's loop.

        Past `jobs.task_time_limit_s` the work is cancelled (its limiter slots and flights
        released on the way out) and TaskDeadlineError raised, for the task to retry.
        """
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._call(work, *args))

    async def _call(
        self, work: Callable[[Services, Unpack[Args]], Awaitable[T]], *args: *Args
    ) -> T:
        if self._services is None:
            stack = AsyncExitStack()
            self._services = await stack.enter_async_context(
                open_services(self._settings, self._celery)
            )
            self._stack = stack
        limit_s = self._settings.jobs.task_time_limit_s
        try:
            async with asyncio.timeout(limit_s):
                return await work(self._services, *args)
        except TimeoutError as exc:
            raise TaskDeadlineError(f"not done in {limit_s} s") from exc
        finally:
            # The loop stops when the task returns: upstream slots it left must be back in
            # Redis first, or they stay taken until the next task or the end of their lease.
            await self._services.limiter.given_back()

    def close(self) -> None:
        """Stop the services (flushing what they hold in memory) and close the loop."""
        loop, stack = self._loop, self._stack
        self._loop, self._stack, self._services = None, None, None
        if loop is None or loop.is_closed():
            return
        if stack is not None:
            loop.run_until_complete(stack.aclose())
        loop.close()
