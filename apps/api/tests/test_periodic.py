"""The background ticker the rollups and the cache's hit counts are written by."""

import asyncio

from app.periodic import Periodic


async def test_ticks_on_schedule_survives_a_failing_tick_and_ticks_once_more_at_stop() -> None:
    ticks: list[float] = []
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        ticks.append(loop.time())
        if len(ticks) == 1:
            raise RuntimeError("Redis went away")

    periodic = Periodic("test", tick, every_s=0.05)
    periodic.start()
    await asyncio.sleep(0.18)
    running = len(ticks)
    await periodic.stop()

    assert 2 <= running <= 4  # the failure on the first tick did not end the loop
    assert len(ticks) == running + 1  # the last tick, so nothing gathered is left behind
    await asyncio.sleep(0.1)
    assert len(ticks) == running + 1  # and nothing after stop
