"""Celery tasks: thin adapters that run a domain function on the worker's runtime."""

from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.jobs import scheduled
from app.jobs.celery_app import celery_app, runtime
from app.jobs.celery_config import BULK_SYNTHESIZE, CACHE_MAINTAIN, EVALUATE, WARM_UP
from app.jobs.runtime import TaskDeadlineError
from app.tts import batch

# A Redis restart mid-task: the task is safe to run again (recorded items are skipped).
_TRANSIENT = (RedisConnectionError, RedisTimeoutError)


@celery_app.task(
    name=BULK_SYNTHESIZE,
    # Cut short, a chunk keeps what it finished; the retry does the rest.
    autoretry_for=(*_TRANSIENT, TaskDeadlineError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=10,
)
def bulk_synthesize(job_id: str, chunk: int) -> dict[str, int]:
    return runtime.run(batch.synthesize_chunk, job_id, chunk)


@celery_app.task(name=CACHE_MAINTAIN, autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=3)
def maintain_cache(slot: str | None = None) -> dict[str, Any]:
    return runtime.run(scheduled.run_scheduled, CACHE_MAINTAIN, slot, scheduled.maintain_cache)


@celery_app.task(name=WARM_UP, autoretry_for=_TRANSIENT, retry_backoff=True, max_retries=3)
def warm_up(slot: str | None = None) -> dict[str, Any]:
    return runtime.run(scheduled.run_scheduled, WARM_UP, slot, scheduled.warm_up_voices)


@celery_app.task(name=EVALUATE)
def evaluate() -> dict[str, Any]:
    return runtime.run(scheduled.run_scheduled, EVALUATE, None, scheduled.evaluate)
