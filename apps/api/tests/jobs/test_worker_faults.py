"""Worker faults: a worker killed mid-job, a chunk past its time limit, a chunk that cannot
run at all (own workers each)."""

import httpx
import pytest
import redis.asyncio as aioredis

from app.jobs.store import ITEMS_KEY, RESULTS_KEY
from app.jobs.tasks import CHUNK_FAILED
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.jobs.conftest import WorkerFactory
from tests.jobs.polling import job_status, wait_for_job
from tests.jobs.test_worker import BULK, listing, upstream_texts

pytestmark = pytest.mark.integration


async def test_a_worker_killed_mid_job_leaves_every_item_done_exactly_once(
    jobs_client: httpx.AsyncClient, start_worker: WorkerFactory, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.ttfb_s = 0.3
    items = [{"text": listing(i), "output_format": "ulaw_8000"} for i in range(200)]
    first_worker = start_worker()
    accepted = await jobs_client.post(BULK, json={"items": items, "background": True})
    job_id = accepted.json()["job_id"]

    before = await wait_for_job(jobs_client, job_id, done_at_least=40)
    first_worker.kill()
    at_kill = await job_status(jobs_client, job_id)
    done_before_kill = {i["index"] for i in at_kill["items"] if i["status"] == "done"}
    assert before["counts"]["done"] < 200
    start_worker()
    status = await wait_for_job(jobs_client, job_id, timeout_s=90)

    assert (status["counts"]["done"], status["counts"]["failed"]) == (200, 0)
    assert [i["status"] for i in status["items"]] == ["done"] * 200
    calls = upstream_texts(elevenlabs)
    # What was done before the kill was never asked of ElevenLabs again.
    assert all(calls[listing(i)] == 1 for i in done_before_kill)
    # At most the items in flight when the worker died (2 chunks of 10) were asked twice.
    assert sum(calls.values()) <= 200 + 20
    assert set(calls) == {listing(i) for i in range(200)}


async def test_a_chunk_past_its_time_limit_is_retried_and_keeps_what_it_finished(
    jobs_client: httpx.AsyncClient, start_worker: WorkerFactory, elevenlabs: FakeElevenLabs
) -> None:
    # 10 items, 3 at a time, 0.8 s each: a chunk needs ~3 s and is cut at 2 s.
    elevenlabs.behavior.ttfb_s = 0.8
    process = start_worker(
        JOBS__TASK_TIME_LIMIT_S="2", JOBS__VISIBILITY_TIMEOUT_S="12", JOBS__ITEM_CONCURRENCY="3"
    )
    items = [{"text": listing(i), "output_format": "pcm_16000"} for i in range(10)]
    accepted = await jobs_client.post(BULK, json={"items": items, "background": True})

    status = await wait_for_job(jobs_client, accepted.json()["job_id"], timeout_s=60)

    assert (status["counts"]["done"], status["counts"]["failed"]) == (10, 0)
    calls = upstream_texts(elevenlabs)
    # Only the items cut off mid-request (at most 3) were asked twice.
    assert set(calls) == {listing(i) for i in range(10)}
    assert sum(calls.values()) <= 10 + 3
    log = process.log()
    assert "Retry in" in log
    assert "TaskDeadlineError" in log


async def test_a_damaged_item_fails_alone_and_the_job_completes(
    jobs_client: httpx.AsyncClient, start_worker: WorkerFactory, redis_client: aioredis.Redis
) -> None:
    items = [{"text": listing(i), "output_format": "pcm_16000"} for i in range(4)]
    accepted = await jobs_client.post(BULK, json={"items": items, "background": True})
    job_id = accepted.json()["job_id"]
    # Damaged before any worker reads it.
    await redis_client.hset(ITEMS_KEY.format(job_id=job_id), "2", "{not an item")
    start_worker()

    status = await wait_for_job(jobs_client, job_id, timeout_s=60)

    assert (status["counts"]["done"], status["counts"]["failed"]) == (3, 1)
    assert [i["index"] for i in status["items"]] == [0, 1, 3]  # the damaged one is not shown
    assert all(i["status"] == "done" for i in status["items"])
    results = await redis_client.hget(RESULTS_KEY.format(job_id=job_id), "2")
    assert results is not None
    assert b"item_unreadable" in results


async def test_a_chunk_out_of_retries_fails_its_open_items_and_the_job_completes(
    jobs_client: httpx.AsyncClient, start_worker: WorkerFactory, elevenlabs: FakeElevenLabs
) -> None:
    # Every try is cut at the 2 s limit (the first byte takes 5 s); one retry, then no more.
    elevenlabs.behavior.ttfb_s = 5.0
    process = start_worker(JOBS__TASK_TIME_LIMIT_S="2", JOBS__CHUNK_MAX_RETRIES="1")
    items = [{"text": listing(i), "output_format": "pcm_16000"} for i in range(3)]
    accepted = await jobs_client.post(BULK, json={"items": items, "background": True})

    status = await wait_for_job(jobs_client, accepted.json()["job_id"], timeout_s=60)

    assert status["status"] == "completed"
    assert (status["counts"]["done"], status["counts"]["failed"]) == (0, 3)
    assert {i["error"]["code"] for i in status["items"]} == {CHUNK_FAILED}
    assert "TaskDeadlineError" in status["items"][0]["error"]["message"]
    assert "failed for good" in process.log()
