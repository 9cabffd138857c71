"""Celery tasks: thin adapters that run a domain function on the worker's runtime."""

import logging
from typing import Any

from billiard.einfo import ExceptionInfo
from celery import Task
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.jobs import scheduled
from app.jobs.celery_app import celery_app, runtime, settings
from app.jobs.celery_config import BULK_SYNTHESIZE, CACHE_MAINTAIN, EVALUATE, WARM_UP
from app.jobs.runtime import TaskDeadlineError
from app.tts import batch

logger = logging.getLogger(__name__)

# A Redis restart mid-task: the task is safe to run again (recorded items are skipped).
_TRANSIENT = (RedisConnectionError, RedisTimeoutError)
CHUNK_FAILED = "chunk_failed"


class BulkChunkTask(Task[[str, int], dict[str, int]]):
    """A chunk that failed for good (not retried, or out of retries) fails its open items.

    Without this the job would stay `running` until it expired, its items `queued`.
    """

    def on_failure(
        self,
        exc: Exception,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: ExceptionInfo,
    ) -> None:
        job_id, chunk = args
        message = f"the chunk's task failed for good: {type(exc).__name__}: {exc}"[:300]
        try:
            failed = runtime.run(batch.fail_unfinished, job_id, chunk, CHUNK_FAILED, message)
        except (RedisError, OSError) as error:
            logger.error("job %s chunk %d failed; its items not marked: %r", job_id, chunk, error)
            return
        logger.error(
            "job %s chunk %d failed for good (%r): %d items failed", job_id, chunk, exc, failed
        )


@celery_app.task(
    base=BulkChunkTask,
    name=BULK_SYNTHESIZE,
    # Cut short, a chunk keeps what it finished; the retry does the rest.
    autoretry_for=(*_TRANSIENT, TaskDeadlineError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=settings.jobs.chunk_max_retries,
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
