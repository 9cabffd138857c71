"""A coroutine run in the background every so often, and once more when it is stopped."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

logger = logging.getLogger(__name__)

_STOP_GRACE_S = 5.0


class Periodic:
    """Runs `tick` every `every_s` seconds from start() until stop(), then a last time.

    The last tick lets work gathered in memory (counters, batches) reach Redis on shutdown.
    A tick that raises is logged and the next one runs on time.
    """

    def __init__(self, name: str, tick: Callable[[], Awaitable[None]], every_s: float) -> None:
        self._name = name
        self._tick = tick
        self._every_s = every_s
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        # A tick under way is let finish (cancelled, it could lose the batch it took), unless
        # it hangs; then the last tick runs here.
        self._stopped.set()
        if self._task is not None:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._task, _STOP_GRACE_S)
        await self._tick_once()

    async def _run(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._every_s)
            if self._stopped.is_set():
                return
            await self._tick_once()

    async def _tick_once(self) -> None:
        try:
            await self._tick()
        except Exception:
            logger.exception("background %s failed; trying again on the next tick", self._name)
