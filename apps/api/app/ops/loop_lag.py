"""How late this process's event loop runs its callbacks: the measure of local overload.

A ticker asks to be woken every `every_s`; how much later than asked it wakes is the lag.
When the loop lags, every await in the process resumes late by as much: callers hear gaps,
and upstream's first bytes look late. Health shows it, and the WebSocket route can refuse new
sessions on it (STREAMING__REFUSE_SESSIONS_ABOVE_LAG_MS).
"""

import asyncio
from collections import deque

from app.observability import metrics
from app.periodic import Periodic

# Ticks kept: at 20 a second, the last 15 s.
_KEPT = 300


class LoopLag:
    def __init__(self, every_s: float = 0.05) -> None:
        self._every_s = every_s
        self._ticks: deque[tuple[float, float]] = deque(maxlen=_KEPT)  # (loop time, lag s)
        self._last: float | None = None
        self._ticker = Periodic("loop-lag", self._tick, every_s)

    def start(self) -> None:
        self._last = asyncio.get_running_loop().time()
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()

    async def _tick(self) -> None:
        now = asyncio.get_running_loop().time()
        last = now if self._last is None else self._last  # start() has set it
        lag = max(0.0, now - last - self._every_s)
        self._ticks.append((now, lag))
        metrics.EVENT_LOOP_LAG.set(lag)
        self._last = now

    def worst(self, within_s: float) -> float:
        """The longest lag seen in the last `within_s` seconds, the tick overdue now included.

        A loop so busy that the ticker has not run yet is lagging by how overdue it is.
        """
        if self._last is None:
            return 0.0
        now = asyncio.get_running_loop().time()
        overdue = max(0.0, now - self._last - self._every_s)
        since = now - within_s
        seen = (lag for at, lag in reversed(self._ticks) if at >= since)
        return max(overdue, max(seen, default=0.0))


def lag_ms(loop_lag: LoopLag | None, within_s: float) -> float:
    """`loop_lag.worst(within_s)` in milliseconds; 0 where the loop is not watched."""
    return loop_lag.worst(within_s) * 1000 if loop_lag is not None else 0.0
