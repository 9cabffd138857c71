"""Live WebSocket sessions, counted per process and across every process in the state Redis."""

import asyncio
import logging
import os
import secrets
from contextlib import suppress

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.observability import metrics

logger = logging.getLogger(__name__)

COUNTS = "sv:ws:sessions"  # hash: process id -> sessions open there
ALIVE = "sv:ws:processes"  # zset: process id -> heartbeat expiry (ms)
_HEARTBEAT_S = 5.0

# KEYS: counts, alive; ARGV: process id, count, alive ms. Drops processes that went silent.
_REPORT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(dead) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
end
return 1
"""


def process_tag() -> str:
    """This process among all of the service's: its pid, unique even across hosts."""
    return f"{os.getpid()}-{secrets.token_hex(4)}"


class SessionRegistry:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._report = redis.register_script(_REPORT)
        self.process_id = process_tag()
        self.local = 0
        self._task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._dirty = asyncio.Event()

    def opened(self) -> None:
        self.local += 1
        metrics.WEBSOCKET_SESSIONS.inc()
        self._dirty.set()

    def closed(self) -> None:
        self.local -= 1
        metrics.WEBSOCKET_SESSIONS.dec()
        self._dirty.set()

    async def global_count(self) -> int | None:
        """Sessions open across every live process (None when Redis cannot say)."""
        try:
            counts = await self._redis.hvals(COUNTS)
        except (RedisError, OSError):
            return None
        return sum(int(count) for count in counts)

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_reporting(), name="session-registry")

    async def stop(self) -> None:
        self._stopped.set()
        self.local = 0
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        with suppress(RedisError, OSError):
            await self._redis.hdel(COUNTS, self.process_id)

    async def _keep_reporting(self) -> None:
        # Counts are written when they change (at most every 100 ms) and on a heartbeat, so
        # a thousand sessions opening at once cost a handful of writes, not a thousand.
        while not self._stopped.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), _HEARTBEAT_S)
            self._dirty.clear()
            with suppress(RedisError, OSError):  # the next tick reports again
                await self._report(
                    keys=[COUNTS, ALIVE],
                    args=[self.process_id, self.local, int(_HEARTBEAT_S * 3000)],
                )
            await asyncio.sleep(0.1)
