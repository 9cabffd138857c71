"""A bulk job submitted while the cache Redis is down still completes (the soak found one stuck)."""

import asyncio

import pytest

from app.config import Settings
from tests.asgi import app_client
from tests.conftest import DisposableRedis
from tests.jobs.conftest import WorkerFactory
from tests.jobs.polling import wait_for_job
from tests.jobs.test_worker import BULK, listing

pytestmark = pytest.mark.integration


async def test_a_job_submitted_while_the_cache_redis_is_down_completes(
    jobs_settings: Settings,
    start_worker: WorkerFactory,
    disposable_redis: DisposableRedis,
    empty_broker: str,
) -> None:
    start_worker(REDIS__CACHE_URL=disposable_redis.url)
    settings = jobs_settings.model_copy(
        update={"redis": jobs_settings.redis.model_copy(update={"cache_url": disposable_redis.url})}
    )
    items = [{"text": listing(i), "output_format": "ulaw_8000"} for i in range(10)]
    async with app_client(settings) as client:
        disposable_redis.kill()
        accepted = await client.post(BULK, json={"items": items, "background": True})
        assert accepted.status_code == 202, accepted.text
        await asyncio.sleep(3)  # the worker meets the outage
        disposable_redis.restart()

        status = await wait_for_job(client, accepted.json()["job_id"], timeout_s=60)

    assert (status["counts"]["done"], status["counts"]["failed"]) == (10, 0)
