"""Starting a job: its record in the state Redis, then one Celery message per chunk."""

import asyncio
import logging

from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

from app.errors import ServiceUnavailableError
from app.jobs.celery_config import BULK_SYNTHESIZE
from app.jobs.store import JobItem, JobKind, JobRecord, JobStore
from app.observability import metrics

logger = logging.getLogger(__name__)


class BrokerUnavailableError(ServiceUnavailableError):
    code = "broker_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(
            "Background jobs cannot be queued right now (the job broker is unreachable); "
            "nothing was queued. Live synthesis is not affected.",
            details={"reason": detail},
            headers={"Retry-After": "5"},
        )


class JobSubmitter:
    def __init__(self, store: JobStore, celery: Celery, chunk_items: int) -> None:
        self._store = store
        self._celery = celery
        self._chunk_items = chunk_items

    async def submit(self, kind: JobKind, items: list[JobItem], notes: list[str]) -> JobRecord:
        """The job, recorded and queued; BrokerUnavailableError (and no job) if it cannot be."""
        try:
            record = await self._store.create(kind, items, self._chunk_items, notes)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailableError(f"state Redis: {type(exc).__name__}") from exc
        try:
            await asyncio.to_thread(self._publish, record.job_id, record.chunks)
        except (KombuError, OperationalError, RedisError, OSError) as exc:
            logger.warning("job %s not queued: %r", record.job_id, exc)
            try:
                await self._store.drop(record.job_id)
            except (RedisError, OSError):
                logger.warning("job %s record left behind; it expires", record.job_id)
            raise BrokerUnavailableError(type(exc).__name__) from exc
        metrics.JOBS_SUBMITTED.labels(kind).inc()
        return record

    def _publish(self, job_id: str, chunks: int) -> None:
        # One connection for all the chunks, no publish retries: a broker that is down is
        # reported within broker_connection_timeout (kombu still retries opening a channel).
        with self._celery.producer_or_acquire() as producer:
            for chunk in range(chunks):
                self._celery.send_task(
                    BULK_SYNTHESIZE, args=(job_id, chunk), producer=producer, retry=False
                )
