"""Streams under way and when each last moved audio to its caller: the stalled ones, everywhere.

A stream owes its caller audio from its start until its end. Time spent waiting for the
caller (a WebSocket utterance whose next sentence the client has not sent yet) is not owed
and does not count. A stream that owes audio and has moved none for `stall_after_s` is
stalled: the upstream hangs, or the caller stopped reading.

Each process publishes its stalled streams to the state Redis every few seconds, so the
detailed health check of any process lists those of all of them.
"""

import itertools
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.observability import metrics
from app.periodic import Periodic
from app.redis_text import text

logger = logging.getLogger(__name__)

STALLED = "sv:streams:stalled"  # hash: process id -> {"at": epoch s, "streams": [...]}
PUBLISH_EVERY_S = 5.0
# A process whose report is older than this is taken for gone; its report is dropped.
_REPORT_STALE_S = 3 * PUBLISH_EVERY_S


class StreamProgress:
    """One stream's audio delivery, told by whoever hands audio to the caller."""

    __slots__ = ("surface", "stream_id", "started_at", "bytes_sent", "_moved_at", "_waiting")

    def __init__(self, surface: str, stream_id: str) -> None:
        self.surface = surface
        self.stream_id = stream_id
        self.started_at = time.time()
        self.bytes_sent = 0
        self._moved_at = time.monotonic()
        self._waiting = 0

    def moved(self, nbytes: int) -> None:
        self.bytes_sent += nbytes
        self._moved_at = time.monotonic()

    @contextmanager
    def waiting_for_caller(self) -> Iterator[None]:
        """Time in here is the caller's, not owed audio: the stall clock restarts after it."""
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            self._moved_at = time.monotonic()

    def silent_for(self, now: float) -> float | None:
        """Seconds since audio last moved while owed; None while waiting for the caller."""
        return None if self._waiting else now - self._moved_at


@dataclass(frozen=True, slots=True)
class StalledStream:
    surface: str
    stream_id: str
    silent_s: float
    bytes_sent: int
    started_at: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "surface": self.surface,
            "stream_id": self.stream_id,
            "silent_s": round(self.silent_s, 1),
            "bytes_sent": self.bytes_sent,
            "started_at": self.started_at,
        }


class StreamWatch:
    def __init__(self, redis: Redis, process_id: str, stall_after_s: float) -> None:
        self._redis = redis
        self._process_id = process_id
        self.stall_after_s = stall_after_s
        self._open: dict[int, StreamProgress] = {}
        self._ids = itertools.count()
        self._publisher = Periodic("stalled-streams", self.publish, PUBLISH_EVERY_S)

    @contextmanager
    def track(self, surface: str, stream_id: str) -> Iterator[StreamProgress]:
        key = next(self._ids)
        progress = self._open[key] = StreamProgress(surface, stream_id)
        try:
            yield progress
        finally:
            del self._open[key]

    @property
    def open_streams(self) -> int:
        """Audio streams this process is sending right now."""
        return len(self._open)

    def stalled(self) -> list[StalledStream]:
        """This process's streams that owe audio and moved none for stall_after_s."""
        now = time.monotonic()
        found = []
        for progress in self._open.values():
            silent = progress.silent_for(now)
            if silent is not None and silent >= self.stall_after_s:
                found.append(
                    StalledStream(
                        progress.surface,
                        progress.stream_id,
                        silent,
                        progress.bytes_sent,
                        progress.started_at,
                    )
                )
        return found

    async def publish(self) -> None:
        stalled = self.stalled()
        metrics.STALLED_STREAMS.set(len(stalled))
        report = {"at": time.time(), "streams": [s.as_dict() for s in stalled]}
        with suppress(RedisError, OSError):  # the next tick publishes again
            await self._redis.hset(STALLED, self._process_id, json.dumps(report))

    async def everywhere(self) -> list[dict[str, Any]]:
        """Stalled streams of every live process (this one's alone when Redis cannot say)."""
        try:
            reports = await self._redis.hgetall(STALLED)
        except (RedisError, OSError):
            return [s.as_dict() for s in self.stalled()]
        now = time.time()
        found: list[dict[str, Any]] = []
        gone = []
        for raw_id, raw in reports.items():
            process_id = text(raw_id)
            report = json.loads(raw)
            if process_id == self._process_id:
                continue  # this process's own list is fresher in memory
            if now - float(report["at"]) > _REPORT_STALE_S:
                gone.append(process_id)
                continue
            found.extend({**s, "process": process_id} for s in report["streams"])
        found.extend({**s.as_dict(), "process": self._process_id} for s in self.stalled())
        if gone:
            with suppress(RedisError, OSError):
                await self._redis.hdel(STALLED, *gone)
        return found

    def start(self) -> None:
        self._publisher.start()

    async def stop(self) -> None:
        await self._publisher.stop()
        with suppress(RedisError, OSError):
            await self._redis.hdel(STALLED, self._process_id)
