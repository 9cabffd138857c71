"""The worker's runtime: one loop per process, run only while a task runs."""

import time

import redis

from app.jobs.celery_config import make_celery
from app.jobs.runtime import WorkerRuntime
from app.limits.upstream import HOLDERS, Priority
from app.services import Services
from tests.conftest import SettingsFactory


def test_a_tasks_upstream_slots_are_back_when_the_task_returns(
    make_settings: SettingsFactory, fresh_redis: str
) -> None:
    settings = make_settings()
    runtime = WorkerRuntime(settings, make_celery(settings))

    async def hold_a_slot(services: Services) -> None:
        async with services.limiter.slot(Priority.BULK, time.monotonic() + 5):
            pass

    try:
        runtime.run(hold_a_slot)
        # The loop stops with the task: a slot not given back by now stays taken until the
        # next task runs the loop, or its lease runs out.
        with redis.Redis.from_url(fresh_redis) as client:
            assert client.zcard(HOLDERS.format(upstream="elevenlabs")) == 0
    finally:
        runtime.close()
