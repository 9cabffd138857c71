"""The job store and job audio, against the session's private Redis."""

import asyncio

import pytest
import redis.asyncio as aioredis

from app.jobs.store import (
    ITEMS_KEY,
    JOB_AUDIO_KEY,
    JOB_IDS,
    JOB_KEY,
    RESULTS_KEY,
    ItemResult,
    ItemState,
    JobAudio,
    JobItem,
    JobKind,
    JobNotFoundError,
    JobState,
    JobStore,
)
from app.tts.models import SynthesizeRequest

RETENTION = 3_600


@pytest.fixture
def store(redis_client: aioredis.Redis) -> JobStore:
    return JobStore(redis_client, RETENTION)


def _items(count: int) -> list[JobItem]:
    return [
        JobItem(request=SynthesizeRequest(text=f"Unit {n} on Birch Lane."), id=f"unit-{n}")
        for n in range(count)
    ]


def _done(cache: str = "miss") -> ItemResult:
    return ItemResult(
        status=ItemState.DONE, cache=cache, provider="elevenlabs", characters_billed=12
    )


def _failed() -> ItemResult:
    return ItemResult(status=ItemState.FAILED, error={"error": "quota_exceeded", "detail": "no"})


async def test_a_created_job_reads_back_queued_with_its_counts_chunks_and_notes(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    created = await store.create(JobKind.BULK, _items(5), chunk_items=2, notes=["trimmed"])

    record = await store.get(created.job_id)

    assert record == created
    assert record.job_id.startswith("job_")
    assert record.kind is JobKind.BULK
    assert record.state is JobState.QUEUED
    assert (record.total, record.done, record.failed, record.cached) == (5, 0, 0, 0)
    assert record.queued == 5
    assert record.chunks == 3  # ceil(5 / 2)
    assert record.chunk_items == 2
    assert record.notes == ["trimmed"]
    assert record.finished_at is None
    for key in (JOB_KEY, ITEMS_KEY):
        assert RETENTION - 5 < await redis_client.ttl(key.format(job_id=record.job_id)) <= RETENTION
    assert await redis_client.zscore(JOB_IDS, record.job_id) == pytest.approx(record.created_at)


async def test_a_job_that_fills_its_chunks_exactly_has_no_extra_chunk(store: JobStore) -> None:
    record = await store.create(JobKind.PREGENERATE, _items(6), chunk_items=3, notes=[])

    assert record.chunks == 2
    assert record.kind is JobKind.PREGENERATE
    assert record.notes == []


async def test_the_last_chunk_holds_only_the_items_left_over(store: JobStore) -> None:
    record = await store.create(JobKind.BULK, _items(5), chunk_items=2, notes=[])

    assert record.chunk_indices(0) == range(0, 2)
    assert record.chunk_indices(1) == range(2, 4)
    assert record.chunk_indices(2) == range(4, 5)
    assert [list(record.chunk_indices(c)) for c in range(record.chunks)] == [[0, 1], [2, 3], [4]]


async def test_items_are_read_back_by_index_and_unknown_indices_are_left_out(
    store: JobStore,
) -> None:
    items = _items(5)
    record = await store.create(JobKind.BULK, items, chunk_items=2, notes=[])

    found = await store.items(record.job_id, [4, 0, 9])

    assert found == {4: items[4], 0: items[0]}
    assert await store.items(record.job_id, []) == {}


async def test_mark_running_moves_a_queued_job_to_running(store: JobStore) -> None:
    record = await store.create(JobKind.BULK, _items(2), chunk_items=2, notes=[])

    await store.mark_running(record.job_id)

    assert (await store.require(record.job_id)).state is JobState.RUNNING


async def test_mark_running_leaves_a_completed_job_completed(store: JobStore) -> None:
    record = await store.create(JobKind.BULK, _items(1), chunk_items=1, notes=[])
    await store.record(record.job_id, 0, _done())

    await store.mark_running(record.job_id)  # a redelivered chunk starting late

    assert (await store.require(record.job_id)).state is JobState.COMPLETED


async def test_an_item_is_counted_once_and_a_repeat_record_changes_nothing(
    store: JobStore,
) -> None:
    record = await store.create(JobKind.BULK, _items(3), chunk_items=3, notes=[])
    first = _done(cache="hit")

    assert await store.record(record.job_id, 0, first) is True
    assert await store.record(record.job_id, 0, _failed()) is False
    assert await store.record(record.job_id, 0, first) is False

    after = await store.require(record.job_id)
    assert (after.done, after.failed, after.cached, after.queued) == (1, 0, 1, 2)
    assert after.state is JobState.QUEUED
    assert await store.results(record.job_id, [0]) == {0: first}


async def test_cached_counts_only_done_items_served_from_the_cache(store: JobStore) -> None:
    record = await store.create(JobKind.BULK, _items(5), chunk_items=5, notes=[])

    await store.record(record.job_id, 0, _done(cache="hit"))
    await store.record(record.job_id, 1, _done(cache="miss"))
    await store.record(record.job_id, 2, _done(cache="partial"))
    await store.record(record.job_id, 3, ItemResult(status=ItemState.FAILED, cache="hit"))
    await store.record(record.job_id, 4, _done(cache="hit"))

    after = await store.require(record.job_id)
    assert after.cached == 2
    assert (after.done, after.failed) == (4, 1)


async def test_a_job_completes_when_every_item_is_recorded_failures_included(
    store: JobStore,
) -> None:
    record = await store.create(JobKind.BULK, _items(3), chunk_items=2, notes=[])
    await store.mark_running(record.job_id)

    await store.record(record.job_id, 0, _done())
    await store.record(record.job_id, 2, _failed())
    partway = await store.require(record.job_id)
    await store.record(record.job_id, 1, _done())
    finished = await store.require(record.job_id)

    assert partway.state is JobState.RUNNING
    assert partway.finished_at is None
    assert partway.queued == 1
    assert finished.state is JobState.COMPLETED
    assert (finished.done, finished.failed, finished.queued) == (2, 1, 0)
    assert finished.finished_at is not None
    assert finished.finished_at >= finished.created_at
    assert finished.updated_at == finished.finished_at


async def test_results_are_read_for_the_given_indices_or_for_all(store: JobStore) -> None:
    record = await store.create(JobKind.BULK, _items(4), chunk_items=2, notes=[])
    zero, two = _done(cache="hit"), _failed()
    await store.record(record.job_id, 0, zero)
    await store.record(record.job_id, 2, two)

    assert await store.results(record.job_id, [0, 1]) == {0: zero}
    assert await store.results(record.job_id, [2, 3, 0]) == {2: two, 0: zero}
    assert await store.results(record.job_id, []) == {}
    assert await store.results(record.job_id) == {0: zero, 2: two}
    assert await store.results(record.job_id, None) == {0: zero, 2: two}


async def test_the_results_of_a_job_expire_with_it(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    record = await store.create(JobKind.BULK, _items(2), chunk_items=2, notes=[])

    await store.record(record.job_id, 0, _done())

    ttl = await redis_client.ttl(RESULTS_KEY.format(job_id=record.job_id))
    assert RETENTION - 5 < ttl <= RETENTION


async def test_require_of_an_unknown_job_raises_job_not_found(store: JobStore) -> None:
    assert await store.get("job_00000000000000000000") is None

    with pytest.raises(JobNotFoundError) as raised:
        await store.require("job_00000000000000000000")

    assert raised.value.code == "job_not_found"
    assert raised.value.status_code == 404


async def test_drop_removes_every_key_of_the_job_and_its_index_entry(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    record = await store.create(JobKind.BULK, _items(2), chunk_items=1, notes=["n"])
    other = await store.create(JobKind.BULK, _items(1), chunk_items=1, notes=[])
    await store.record(record.job_id, 0, _done())

    await store.drop(record.job_id)

    keys = [k.format(job_id=record.job_id) for k in (JOB_KEY, ITEMS_KEY, RESULTS_KEY)]
    assert await redis_client.exists(*keys) == 0
    assert await redis_client.zscore(JOB_IDS, record.job_id) is None
    assert await store.get(record.job_id) is None
    assert await store.get(other.job_id) == other


async def test_compact_drops_only_the_jobs_created_before_the_retention_window(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    old = await store.create(JobKind.BULK, _items(1), chunk_items=1, notes=[])
    await asyncio.sleep(0.05)  # a created_at gap the cutoff can fall into
    young = await store.create(JobKind.BULK, _items(1), chunk_items=1, notes=[])
    await store.record(old.job_id, 0, _done())

    nothing_yet = await store.compact(now=old.created_at + RETENTION - 1)
    compacted = await store.compact(now=young.created_at + RETENTION - 0.02)

    assert nothing_yet == 0
    assert compacted == 1
    assert await store.get(old.job_id) is None
    keys = [k.format(job_id=old.job_id) for k in (JOB_KEY, ITEMS_KEY, RESULTS_KEY)]
    assert await redis_client.exists(*keys) == 0
    assert await store.get(young.job_id) == young
    assert await redis_client.zrange(JOB_IDS, 0, -1) == [young.job_id.encode()]


async def test_job_audio_is_kept_for_the_retention_and_read_back(
    redis_client: aioredis.Redis,
) -> None:
    audio = JobAudio(redis_client, RETENTION)

    await audio.keep("job_abc", 3, b"\xff\x7f" * 400)

    assert await audio.get("job_abc", 3) == b"\xff\x7f" * 400
    assert await audio.get("job_abc", 4) is None
    assert await audio.get("job_other", 3) is None
    ttl = await redis_client.ttl(JOB_AUDIO_KEY.format(job_id="job_abc", index=3))
    assert RETENTION - 5 < ttl <= RETENTION


async def test_recording_into_a_job_that_is_gone_writes_nothing(
    store: JobStore, redis_client: aioredis.Redis
) -> None:
    record = await store.create(JobKind.BULK, _items(3), chunk_items=2, notes=[])
    await store.drop(record.job_id)

    counted = await store.record(record.job_id, 0, _done())

    assert counted is False
    assert await store.get(record.job_id) is None
    assert await redis_client.keys(f"sv:job:{record.job_id}*") == []
