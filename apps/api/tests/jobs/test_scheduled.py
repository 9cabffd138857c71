"""Scheduled work through a real worker: maintenance and warm-ups, each once per slot."""

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.cache.audio_cache import CATALOG_INDEX
from app.config import Settings
from app.jobs.celery_config import CACHE_MAINTAIN, WARM_UP, make_celery
from app.jobs.schedule_runs import last_runs, recent_runs
from app.tts.warm_up import last_probe
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.jobs.conftest import WorkerFactory
from tests.jobs.polling import wait_for_job

pytestmark = pytest.mark.integration


def _send(settings: Settings, task: str, slot: str) -> None:
    celery = make_celery(settings)
    try:
        celery.send_task(task, args=(slot,))
    finally:
        celery.close()


async def _wait_for_run(state: aioredis.Redis, task: str, runs: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while len(found := await recent_runs(state, task)) < runs:
        assert time.monotonic() < deadline, f"{task} did not run"
        await asyncio.sleep(0.1)
    return found


async def test_a_warm_up_probes_upstream_and_refreshes_active_agents_once_per_slot(
    jobs_client: httpx.AsyncClient,
    jobs_settings: Settings,
    start_worker: WorkerFactory,
    elevenlabs: FakeElevenLabs,
    fresh_redis: str,
) -> None:
    agent = {"display_name": "Maple", "persona": "casual", "languages": ["es"]}
    await jobs_client.put("/api/v1/voice/agents/maple", json=agent)
    await jobs_client.put("/api/v1/voice/agents/idle", json=agent | {"active": False})
    start_worker()
    state = aioredis.Redis.from_url(fresh_redis)
    try:
        _send(jobs_settings, WARM_UP, "08:00")
        (run,) = await _wait_for_run(state, WARM_UP)
        (job_id,) = run["result"]["jobs"]
        status = await wait_for_job(jobs_client, job_id)
        probe = await last_probe(state)

        _send(jobs_settings, WARM_UP, "08:00")  # the same slot again: a duplicate delivery
        _send(jobs_settings, WARM_UP, "17:00")
        runs = await _wait_for_run(state, WARM_UP, runs=2)
        await asyncio.sleep(1)  # room for a wrongly repeated 08:00 run to show up
        runs = await recent_runs(state, WARM_UP)
    finally:
        await state.aclose()

    assert run["slot"] == "08:00"
    assert status["kind"] == "pregenerate"
    assert status["notes"][0] == "warm-up 08:00"
    assert status["counts"]["failed"] == 0
    assert status["counts"]["done"] > 0
    assert probe is not None
    assert probe["ok"] is True
    assert probe["character_limit"] == 100_000
    assert [r["slot"] for r in runs] == ["17:00", "08:00"]
    assert any(r.path == "/v1/user/subscription" for r in elevenlabs.stats().requests)


async def test_nightly_maintenance_tidies_the_cache_and_is_recorded_for_health(
    jobs_settings: Settings, start_worker: WorkerFactory, fresh_redis: str
) -> None:
    state = aioredis.Redis.from_url(fresh_redis)
    try:
        await state.sadd(CATALOG_INDEX, "sv:audio:v1:gone")
        await state.set("sv:audio-hits:gone", 3)
        start_worker()
        _send(jobs_settings, CACHE_MAINTAIN, "02:00")
        _send(jobs_settings, CACHE_MAINTAIN, "02:00")
        (run,) = await _wait_for_run(state, CACHE_MAINTAIN)
        await asyncio.sleep(1)
        runs = await recent_runs(state, CACHE_MAINTAIN)
        recorded = await last_runs(state)
        index_left = await state.scard(CATALOG_INDEX)
        counter_left = await state.exists("sv:audio-hits:gone")
    finally:
        await state.aclose()

    assert len(runs) == 1
    assert run["result"]["dangling_catalog_dropped"] == 1
    assert run["result"]["dangling_hit_counters_dropped"] == 1
    assert "jobs_compacted" in run["result"]
    assert recorded[CACHE_MAINTAIN]["slot"] == "02:00"
    assert (index_left, counter_left) == (0, 0)
