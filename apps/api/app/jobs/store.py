"""Jobs in the state Redis: the items asked for, each item's outcome, and the counts.

A job is a hash of counters and facts, a hash of its items (index -> request) and a hash of
their results (index -> outcome), all kept for the job's retention. Recording an item's
result is idempotent: a chunk redone after a worker died counts each item once.
"""

import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from redis.asyncio import Redis

from app.errors import NotFoundError
from app.redis_text import text
from app.tts.models import SynthesizeRequest

logger = logging.getLogger(__name__)

JOB_KEY = "sv:job:{job_id}"
ITEMS_KEY = "sv:job:{job_id}:items"
RESULTS_KEY = "sv:job:{job_id}:results"
JOB_IDS = "sv:jobs"  # zset: job id -> created (epoch seconds), for compaction

# KEYS: job, results; ARGV: index, result JSON, status counter, 1 if cached, now, retention.
# Returns 1 when the result is new (and counted), 0 when the item was already recorded, -1
# when the job is gone (past retention, or dropped while a chunk ran).
_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'cached', 1) end
local finished = tonumber(redis.call('HGET', KEYS[1], 'done') or '0')
  + tonumber(redis.call('HGET', KEYS[1], 'failed') or '0')
if finished >= tonumber(redis.call('HGET', KEYS[1], 'total')) then
  redis.call('HSET', KEYS[1], 'status', 'completed', 'finished_at', ARGV[5])
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[5])
return 1
"""


class JobKind(StrEnum):
    BULK = "bulk"
    PREGENERATE = "pregenerate"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"


class ItemState(StrEnum):
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class JobItem(BaseModel):
    """One thing to say: the synthesize body, the client's id, whether it is a catalog phrase."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request: SynthesizeRequest
    id: str | None = None
    catalog: bool = False


class ItemFigures(BaseModel):
    """What an item's synthesis came to, as job results and bulk answers report it."""

    status: ItemState
    cache: str | None = None
    provider: str | None = None
    audio_duration_ms: int | None = None
    quality_score: float | None = None
    characters_billed: int = 0
    error: dict[str, Any] | None = None


class ItemResult(ItemFigures):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The audio is kept with the job (it is not in the shared cache: fallback or cache:false).
    stored: bool = False


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: str
    kind: JobKind
    state: JobState
    total: int
    chunks: int
    chunk_items: int
    done: int
    failed: int
    cached: int
    created_at: float
    updated_at: float
    finished_at: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def queued(self) -> int:
        return self.total - self.done - self.failed

    def chunk_indices(self, chunk: int) -> range:
        start = chunk * self.chunk_items
        return range(start, min(self.total, start + self.chunk_items))


class JobNotFoundError(NotFoundError):
    code = "job_not_found"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"No job {job_id!r}: it never existed or is past its retention.",
            details={"job_id": job_id},
        )


class JobStore:
    def __init__(self, redis: Redis, retention_s: int) -> None:
        self._redis = redis
        self._retention_s = retention_s
        self._record = redis.register_script(_RECORD)

    @property
    def retention_s(self) -> int:
        return self._retention_s

    async def create(
        self, kind: JobKind, items: list[JobItem], chunk_items: int, notes: list[str]
    ) -> JobRecord:
        job_id = f"job_{secrets.token_hex(10)}"
        now = time.time()
        chunks = -(-len(items) // chunk_items)
        keys = self._keys(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys[0],
                mapping={
                    "kind": kind.value,
                    "status": JobState.QUEUED.value,
                    "total": len(items),
                    "chunks": chunks,
                    "chunk_items": chunk_items,
                    "done": 0,
                    "failed": 0,
                    "cached": 0,
                    "created_at": now,
                    "updated_at": now,
                    "notes": json.dumps(notes),
                },
            )
            pipe.hset(
                keys[1],
                mapping={str(i): item.model_dump_json() for i, item in enumerate(items)},
            )
            for key in keys:
                pipe.expire(key, self._retention_s)
            pipe.zadd(JOB_IDS, {job_id: now})
            await pipe.execute()
        record = await self.get(job_id)
        assert record is not None
        return record

    async def get(self, job_id: str) -> JobRecord | None:
        raw = await self._redis.hgetall(JOB_KEY.format(job_id=job_id))
        if not raw:
            return None
        values = {text(k): text(v) for k, v in raw.items()}
        return JobRecord(
            job_id=job_id,
            kind=JobKind(values["kind"]),
            state=JobState(values["status"]),
            total=int(values["total"]),
            chunks=int(values["chunks"]),
            chunk_items=int(values["chunk_items"]),
            done=int(values["done"]),
            failed=int(values["failed"]),
            cached=int(values["cached"]),
            created_at=float(values["created_at"]),
            updated_at=float(values["updated_at"]),
            finished_at=float(values["finished_at"]) if "finished_at" in values else None,
            notes=json.loads(values.get("notes", "[]")),
        )

    async def require(self, job_id: str) -> JobRecord:
        record = await self.get(job_id)
        if record is None:
            raise JobNotFoundError(job_id)
        return record

    async def mark_running(self, job_id: str) -> None:
        key = JOB_KEY.format(job_id=job_id)
        # Only a queued job becomes running; a completed one stays completed.
        await self._redis.eval(
            "if redis.call('HGET', KEYS[1], 'status') == 'queued' then "
            "redis.call('HSET', KEYS[1], 'status', 'running') end return 1",
            1,
            key,
        )

    async def items(self, job_id: str, indices: list[int]) -> dict[int, JobItem]:
        """The items at `indices`; one that is gone or cannot be read is left out."""
        if not indices:
            return {}
        values = await self._redis.hmget(ITEMS_KEY.format(job_id=job_id), [str(i) for i in indices])
        found: dict[int, JobItem] = {}
        for index, value in zip(indices, values, strict=True):
            if value is None:
                continue
            try:
                found[index] = JobItem.model_validate_json(value)
            except ValidationError:
                logger.warning("job %s item %d is damaged: left out", job_id, index)
        return found

    async def results(self, job_id: str, indices: list[int] | None = None) -> dict[int, ItemResult]:
        key = RESULTS_KEY.format(job_id=job_id)
        if indices is None:
            found = {int(text(k)): v for k, v in (await self._redis.hgetall(key)).items()}
        else:
            values = await self._redis.hmget(key, [str(i) for i in indices]) if indices else []
            found = {i: v for i, v in zip(indices, values, strict=True) if v is not None}
        return {index: ItemResult.model_validate_json(value) for index, value in found.items()}

    async def record(self, job_id: str, index: int, result: ItemResult) -> bool:
        """Store the item's outcome once; False when it had one already (a redone chunk) or
        the job is gone."""
        cached = result.status == ItemState.DONE and result.cache == "hit"
        counted = await self._record(
            keys=[JOB_KEY.format(job_id=job_id), RESULTS_KEY.format(job_id=job_id)],
            args=[
                index,
                result.model_dump_json(),
                result.status.value,
                int(cached),
                time.time(),
                self._retention_s,
            ],
        )
        return int(counted) == 1

    async def drop(self, job_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*self._keys(job_id))
            pipe.zrem(JOB_IDS, job_id)
            await pipe.execute()

    async def compact(self, now: float | None = None) -> int:
        """Forget jobs past their retention (their keys expire; the index is trimmed here)."""
        cutoff = (time.time() if now is None else now) - self._retention_s
        found = await self._redis.zrangebyscore(JOB_IDS, "-inf", cutoff)
        stale = [text(j) for j in found if isinstance(j, bytes | str)]
        for job_id in stale:
            await self.drop(job_id)
        return len(stale)

    @staticmethod
    def _keys(job_id: str) -> tuple[str, str, str]:
        return (
            JOB_KEY.format(job_id=job_id),
            ITEMS_KEY.format(job_id=job_id),
            RESULTS_KEY.format(job_id=job_id),
        )


JOB_AUDIO_KEY = "sv:job-audio:{job_id}:{index}"


class JobAudio:
    """Audio a job made that the shared cache does not hold (fallback voices, `cache: false`).

    Kept in the cache Redis for the job's retention; an evicted value is made again on demand.
    """

    def __init__(self, cache_redis: Redis, retention_s: int) -> None:
        self._redis = cache_redis
        self._retention_s = retention_s

    async def keep(self, job_id: str, index: int, audio: bytes) -> None:
        key = JOB_AUDIO_KEY.format(job_id=job_id, index=index)
        await self._redis.set(key, audio, ex=self._retention_s)

    async def get(self, job_id: str, index: int) -> bytes | None:
        value = await self._redis.get(JOB_AUDIO_KEY.format(job_id=job_id, index=index))
        return value if isinstance(value, bytes) else None
