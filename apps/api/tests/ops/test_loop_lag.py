"""The event loop's lag: how late timers run while something holds the loop."""

import asyncio
import time

from app.ops.loop_lag import LoopLag


async def test_a_free_loop_shows_little_lag_and_a_held_one_shows_how_long_it_was_held() -> None:
    lag = LoopLag(every_s=0.02)
    lag.start()
    try:
        await asyncio.sleep(0.3)
        free = lag.worst(within_s=1.0)

        time.sleep(0.4)  # noqa: ASYNC251 -- holds the loop, as a CPU-bound burst would
        while_held = lag.worst(within_s=1.0)  # the ticker has not run yet: it is overdue
        await asyncio.sleep(0.1)
        afterwards = lag.worst(within_s=1.0)
        await asyncio.sleep(0.3)
        recent_only = lag.worst(within_s=0.2)
    finally:
        await lag.stop()

    assert free < 0.1
    assert while_held >= 0.35
    assert afterwards >= 0.35  # remembered for the window
    assert recent_only < 0.1  # the hold is older than the window asked about


async def test_before_it_starts_there_is_no_lag_to_report() -> None:
    assert LoopLag().worst(within_s=5.0) == 0.0
