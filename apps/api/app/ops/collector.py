"""Full garbage collections at moments the API chooses, not whenever CPython's rule fires.

A full collection walks every live container object while holding the GIL. With 1,000
WebSocket calls open (~280k objects) one took 100-250 ms on this machine, and CPython starts
one each time the objects surviving the young collections grow by a quarter: every ~4 s while
calls pile up. Every call's audio stops for that long, and past the pacer's lead its frames
arrive late (bench/ws_sessions.py at 1,000 sessions: 300-1,800 late frames on CPython's
schedule, none without it).

Almost everything here is freed by reference counting, and the young collections, which stay
on CPython's schedule, find the short-lived cycles. Full collections are run from here instead:
at the first quiet moment (no audio stream open in this process) once `quiet_every_s` has
passed, and in any case every `max_interval_s`, the bound on how long cyclic garbage that
reached the old generation can pile up.
"""

import gc
import time
from collections.abc import Callable

from app.observability import metrics
from app.periodic import Periodic

# CPython compares a count of young collections with this before it considers a full one.
_NEVER = 1_000_000_000
_CHECK_EVERY_S = 1.0


class FullCollections:
    """Takes full collections off CPython's schedule from start() until stop()."""

    def __init__(
        self,
        quiet: Callable[[], bool],
        quiet_every_s: float,
        max_interval_s: float,
        check_every_s: float = _CHECK_EVERY_S,
    ) -> None:
        self._quiet = quiet
        self._quiet_every_s = quiet_every_s
        self._max_interval_s = max_interval_s
        self._last = time.monotonic()
        self._running = False
        self._checks = Periodic("full-gc", self._check, check_every_s)

    def start(self) -> None:
        _take_over()
        self._running = True
        self._last = time.monotonic()
        self._checks.start()

    async def stop(self) -> None:
        if self._running:
            self._running = False
            _hand_back()
        await self._checks.stop()

    async def _check(self) -> None:
        if not self._running:
            return  # stopped: the last tick Periodic runs has nothing left to do
        since = time.monotonic() - self._last
        if since >= self._max_interval_s:
            self._collect("overdue")
        elif since >= self._quiet_every_s and _busy_since_last() and self._quiet():
            self._collect("quiet")

    def _collect(self, reason: str) -> None:
        started = time.perf_counter()
        gc.collect()
        self._last = time.monotonic()
        metrics.FULL_COLLECTIONS.labels(reason).observe(time.perf_counter() - started)


# The thresholds are the process's: apps started side by side (tests) share the saved ones,
# put back when the last of them stops.
_taken_over = 0
_saved_thresholds = gc.get_threshold()


def _take_over() -> None:
    global _taken_over, _saved_thresholds
    if _taken_over == 0:
        _saved_thresholds = gc.get_threshold()
        young, middle, _ = _saved_thresholds
        gc.set_threshold(young, middle, _NEVER)
    _taken_over += 1


def _hand_back() -> None:
    global _taken_over
    _taken_over -= 1
    if _taken_over == 0:
        gc.set_threshold(*_saved_thresholds)


def _busy_since_last() -> bool:
    """Young collections ran since the last full one (an idle process is left alone)."""
    return gc.get_count()[2] > 0
