"""The beat schedule: local times in the configured zone, and run once with two beats."""

import asyncio
import math
import re
import time
from datetime import datetime
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from app.config import Settings
from app.jobs.celery_config import CACHE_MAINTAIN, EVALUATE, REDBEAT_PREFIX, make_celery
from app.jobs.schedule_runs import recent_runs
from tests.conftest import SettingsFactory
from tests.jobs.conftest import WorkerFactory
from tests.processes import beat

NEW_YORK = ZoneInfo("America/New_York")


def _next_runs(settings: Settings, last_run: datetime) -> dict[str, datetime]:
    app = make_celery(settings)
    runs: dict[str, datetime] = {}
    for name, entry in app.conf.beat_schedule.items():
        schedule = entry["schedule"]
        if hasattr(schedule, "remaining_delta"):
            start, delta, _ = schedule.remaining_delta(last_run)
            runs[name] = (start + delta).astimezone(NEW_YORK)
    return runs


def test_the_schedule_runs_at_two_eight_and_five_local_time_in_a_non_utc_zone(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(jobs={"timezone": "America/New_York"})

    runs = _next_runs(settings, datetime(2026, 11, 30, 9, 30, tzinfo=NEW_YORK))

    assert runs == {
        "cache.maintain": datetime(2026, 12, 1, 2, 0, tzinfo=NEW_YORK),
        "voice.warm_up@08:00": datetime(2026, 12, 1, 8, 0, tzinfo=NEW_YORK),
        "voice.warm_up@17:00": datetime(2026, 11, 30, 17, 0, tzinfo=NEW_YORK),
    }
    entry = make_celery(settings).conf.beat_schedule[EVALUATE]
    assert entry["schedule"].total_seconds() == 60


def test_the_schedule_crosses_daylight_saving_time_at_local_time(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(jobs={"timezone": "America/New_York"})

    # 1 November 2026 02:00 EDT becomes 01:00 EST; the warm-up stays at 17:00 local.
    runs = _next_runs(settings, datetime(2026, 11, 1, 9, 0, tzinfo=NEW_YORK))

    assert runs["voice.warm_up@17:00"] == datetime(2026, 11, 1, 17, 0, tzinfo=NEW_YORK)
    assert (
        runs["voice.warm_up@17:00"].utcoffset()
        == datetime(2026, 11, 2, tzinfo=NEW_YORK).utcoffset()
    )


@pytest.mark.integration
@pytest.mark.usefixtures("empty_broker")
async def test_redbeat_stores_next_runs_at_local_times_of_the_configured_zone(
    worker_env: dict[str, str], broker_url: str, tmp_path: Path
) -> None:
    env = {**worker_env, "JOBS__TIMEZONE": "America/New_York"}

    with beat(env, tmp_path):
        client = aioredis.Redis.from_url(broker_url)
        try:
            deadline = time.monotonic() + 10
            while not await client.zscore(
                REDBEAT_PREFIX + ":schedule", REDBEAT_PREFIX + CACHE_MAINTAIN
            ):
                assert time.monotonic() < deadline, "RedBeat never stored the schedule"
                await asyncio.sleep(0.1)
            scheduled = cast(
                list[tuple[bytes, float]],
                await client.zrange(REDBEAT_PREFIX + ":schedule", 0, -1, withscores=True),
            )
        finally:
            await client.aclose()

    local = {
        name.decode().removeprefix(REDBEAT_PREFIX): datetime.fromtimestamp(
            math.ceil(score / 60) * 60, NEW_YORK
        )
        for name, score in scheduled
    }
    assert (local["cache.maintain"].hour, local["cache.maintain"].minute) == (2, 0)
    assert (local["voice.warm_up@08:00"].hour, local["voice.warm_up@08:00"].minute) == (8, 0)
    assert (local["voice.warm_up@17:00"].hour, local["voice.warm_up@17:00"].minute) == (17, 0)
    assert "celery.backend_cleanup" not in local


@pytest.mark.integration
@pytest.mark.usefixtures("empty_broker")
async def test_two_beats_send_each_run_once_and_the_second_takes_over_when_the_first_dies(
    worker_env: dict[str, str],
    start_worker: WorkerFactory,
    fresh_redis: str,
    tmp_path: Path,
) -> None:
    env = {
        **worker_env,
        "JOBS__EVALUATE_EVERY_S": "1",
        "JOBS__BEAT_LOCK_TIMEOUT_S": "3",
        "JOBS__BEAT_MAX_LOOP_INTERVAL_S": "1",
    }
    start_worker()
    first = beat(env, tmp_path).start().wait_ready()
    second = beat(env, tmp_path).start().wait_ready()
    state = aioredis.Redis.from_url(fresh_redis)
    try:
        await asyncio.sleep(6)
        holder, waiter = (first, second) if "Acquired lock" in first.log() else (second, first)
        assert "Acquired lock" in holder.log()
        assert not _sends(waiter.log())
        sent_before_failover = len(_sends(holder.log()))

        holder.kill()
        await asyncio.sleep(7)
        runs = await recent_runs(state, EVALUATE)
    finally:
        await state.aclose()
        first.stop()
        second.stop()

    # Beat's own log says when it sent each run: one a second, never two at once, though
    # the worker may run queued ones back to back on a loaded machine.
    sent = sorted(_sends(first.log()) + _sends(second.log()))
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    # At least a run a second while it held the lock (more when the second beat was slow to
    # start); never two at once, which the gaps show.
    assert sent_before_failover >= 4
    assert min(gaps) > 0.5, gaps
    assert "Acquired lock" in waiter.log()
    assert len(_sends(waiter.log())) >= 2
    assert len(runs) >= len(sent) - 2
    assert all(isinstance(run["result"], dict) for run in runs)


_SENT = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] "
    r"Scheduler: Sending due task analytics\.evaluate",
    re.MULTILINE,
)


def _sends(log: str) -> list[float]:
    """When a beat's log says it sent an analytics.evaluate run (epoch seconds)."""
    return [
        datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() for stamp in _SENT.findall(log)
    ]
