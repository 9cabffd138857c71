"""The global upstream limit: a leased, FIFO-fair counting semaphore in Redis.

Every process shares one set of slots (default 50). A slot is a member of a sorted set scored
by its lease expiry (Redis server time); each process renews the leases of all the slots it
holds in one call every third of a lease, so a crashed process's slots free themselves within
one lease. Slots are given back by a task of their own, in batches: leaving a slot costs the
caller no round trip, and a cancelled caller cannot skip it. Waiters queue by ticket, live
traffic and bulk work in separate queues: bulk may never take the reserved slots and yields
to waiting live calls. Waiters sleep until a release is announced (or a short recheck timer
fires, for expired leases and lost messages) instead of polling. When Redis is unreachable each
process falls back to its share of the slots and returns to the global limit by itself.
"""

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.analytics.rollups import Rollups, Sample
from app.config import LimiterSettings
from app.notifications import Notifier
from app.observability import metrics
from app.redis_text import text

logger = logging.getLogger(__name__)

HOLDERS = "sv:limiter:{upstream}:holders"
LIVE_QUEUE = "sv:limiter:{upstream}:queue:live"
BULK_QUEUE = "sv:limiter:{upstream}:queue:bulk"
WAITING = "sv:limiter:{upstream}:waiting"
TICKETS = "sv:limiter:{upstream}:tickets"
COOLDOWN = "sv:limiter:{upstream}:cooldown"
PROCESSES = "sv:limiter:{upstream}:processes"
RELEASED = "sv:limiter:released"

# KEYS: holders, own queue, live queue, waiting (member -> alive-until), tickets, cooldown
# ARGV: member, limit, reserved for others (0 live, N bulk), lease ms, waiter alive ms, is_bulk
# Returns {granted (1/0/-1 cooling down), holders after, free slots left (or, cooling down,
# the ms of it left), ticket}
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now)
for _, m in ipairs(gone) do
  redis.call('ZREM', KEYS[3], m)
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZREM', KEYS[4], m)
end
local cooling = redis.call('PTTL', KEYS[6])
if cooling > 0 then return {-1, redis.call('ZCARD', KEYS[1]), cooling, 0} end
local member = ARGV[1]
local ticket = redis.call('ZSCORE', KEYS[2], member)
if not ticket then
  ticket = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[2], ticket, member)
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), member)
local held = redis.call('ZCARD', KEYS[1])
local free = tonumber(ARGV[2]) - tonumber(ARGV[3]) - held
if ARGV[6] == '1' then free = free - redis.call('ZCARD', KEYS[3]) end
local rank = redis.call('ZRANK', KEYS[2], member)
if free > 0 and rank < free then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), member)
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[4], member)
  return {1, held + 1, free - 1, tonumber(ticket)}
end
return {0, held, 0, tonumber(ticket)}
"""

# KEYS: holders; ARGV: lease ms, members. Returns the members whose slot is gone (expired).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# KEYS: holders, live queue, bulk queue, waiting; ARGV: channel, members.
# Announces how many slots it freed; returns that count.
_RELEASE = """
local freed = 0
for i = 2, #ARGV do
  freed = freed + redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
  redis.call('ZREM', KEYS[3], ARGV[i])
  redis.call('ZREM', KEYS[4], ARGV[i])
end
if freed > 0 then redis.call('PUBLISH', ARGV[1], freed) end
return freed
"""

# KEYS: holders. Leases still running by Redis' clock (expired ones linger until an acquire).
_IN_USE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

# KEYS: processes; ARGV: process id, alive ms
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""


class Priority(StrEnum):
    LIVE = "live"
    BULK = "bulk"


class SlotUnavailableError(Exception):
    """No slot within the time allowed, or upstream asked us to back off."""

    def __init__(self, message: str, cooling_down: bool = False) -> None:
        super().__init__(message)
        self.cooling_down = cooling_down


@dataclass
class LimiterStats:
    """This process's slots (waits, timeouts and refusals go to the shared rollups)."""

    acquired: int = 0
    local_fallbacks: int = 0


class UpstreamLimiter:
    def __init__(
        self,
        redis: Redis,
        notifier: Notifier,
        settings: LimiterSettings,
        rollups: Rollups | None = None,
        upstream: str = "elevenlabs",
    ) -> None:
        self._redis = redis
        self._rollups = rollups
        self._settings = settings
        self._keys = {
            name: template.format(upstream=upstream)
            for name, template in {
                "holders": HOLDERS,
                "live": LIVE_QUEUE,
                "bulk": BULK_QUEUE,
                "waiting": WAITING,
                "tickets": TICKETS,
                "cooldown": COOLDOWN,
                "processes": PROCESSES,
            }.items()
        }
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._in_use = redis.register_script(_IN_USE)
        self._process_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._processes = 1
        self._paused_until = 0.0
        self._local = asyncio.Semaphore(settings.upstream_slots)
        self._local_share = settings.upstream_slots
        # Local waiters by priority, each with its queue ticket (0 until it has one).
        self._waiters: dict[Priority, dict[asyncio.Event, int]] = {p: {} for p in Priority}
        self._background: asyncio.Task[None] | None = None
        # This process's slots: renewed together by one task, given back in batches by another.
        self._held: set[str] = set()
        self._to_release: list[str] = []
        self._release_wanted = asyncio.Event()
        self._all_given_back = asyncio.Event()
        self._all_given_back.set()
        self._renewer: asyncio.Task[None] | None = None
        self._releaser: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.stats = LimiterStats()
        self.plan_limit: int | None = None
        notifier.on(RELEASED, self._on_release)

    @property
    def limit(self) -> int:
        return self._settings.upstream_slots

    @property
    def global_mode(self) -> bool:
        return time.monotonic() >= self._paused_until

    def start(self) -> None:
        self._background = asyncio.create_task(self._keep_alive(), name="limiter-heartbeat")
        self._keep_slots()

    async def stop(self) -> None:
        # redis-py can swallow a cancellation (Python 3.11 timeouts); the event ends the loops.
        self._stopped.set()
        self._release_wanted.set()
        for task in (self._background, self._renewer):
            if task is not None:
                task.cancel()
        # The releaser is not cancelled: it gives back what it was handed, then ends.
        tasks = [t for t in (self._background, self._renewer, self._releaser) if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.given_back()

    @asynccontextmanager
    async def slot(self, priority: Priority, deadline: float) -> AsyncIterator[None]:
        """Hold one upstream slot until the block ends; `deadline` is a time.monotonic()."""
        started = time.monotonic()
        in_use = metrics.LIMITER_SLOTS_IN_USE.labels(priority)
        if self.global_mode and not self._stopped.is_set():
            member = f"{self._process_id}:{secrets.token_hex(6)}"
            try:
                acquired = await self._acquire_global(member, priority, deadline)
            except (RedisError, OSError) as exc:
                self._pause(exc)
                acquired = False
            if acquired:
                self._note_wait(started, priority)
                self._keep_slots()
                self._held.add(member)
                try:
                    with in_use.track_inprogress():
                        yield
                finally:
                    # Given back by the releaser, not awaited here: leaving the block costs
                    # the caller no round trip, and a cancelled caller cannot skip it.
                    self._held.discard(member)
                    self._to_release.append(member)
                    self._all_given_back.clear()
                    self._release_wanted.set()
                return
        async with self._local_slot(deadline):
            self._note_wait(started, priority)
            with in_use.track_inprogress():
                yield

    async def cool_down(self, seconds: float) -> None:
        """Upstream said "retry after": every process holds off new calls for that long."""
        if seconds <= 0 or not self.global_mode:
            return
        try:
            await self._redis.set(self._keys["cooldown"], "1", px=max(1, int(seconds * 1000)))
        except (RedisError, OSError) as exc:
            self._pause(exc)

    def observe_plan_limit(self, maximum: int | None) -> None:
        """Upstream's maximum-concurrent-requests: say so when our limit is above it."""
        if maximum is None or maximum == self.plan_limit:
            return
        self.plan_limit = maximum
        if self.limit > maximum:
            logger.warning(
                "upstream plan allows %d concurrent requests but the limiter allows %d: "
                "expect 429s; lower LIMITER__UPSTREAM_SLOTS",
                maximum,
                self.limit,
            )

    async def in_use(self) -> int | None:
        """Slots held right now across every process (None when Redis cannot say)."""
        try:
            return int(await self._in_use(keys=[self._keys["holders"]]))
        except (RedisError, OSError):
            return None

    async def _acquire_global(self, member: str, priority: Priority, deadline: float) -> bool:
        queue = self._keys[priority.value]
        reserved = self._settings.live_reserved_slots if priority == Priority.BULK else 0
        lease_ms = int(self._settings.lease_s * 1000)
        alive_ms = int(max(self._settings.recheck_s * 4, 1.0) * 1000)
        wake = asyncio.Event()
        local_queue = self._waiters[priority]
        local_queue[wake] = 0
        try:
            while True:
                granted, held, extra, ticket = await self._acquire(
                    keys=[
                        self._keys["holders"],
                        queue,
                        self._keys["live"],
                        self._keys["waiting"],
                        self._keys["tickets"],
                        self._keys["cooldown"],
                    ],
                    args=[
                        member,
                        self.limit,
                        reserved,
                        lease_ms,
                        alive_ms,
                        "1" if priority == Priority.BULK else "0",
                    ],
                )
                local_queue[wake] = ticket
                if granted == 1:
                    self.stats.acquired += 1
                    self._record(Sample().peak("peak_slots_in_use", held))
                    if extra > 0:
                        self._wake_next(priority, after=wake)
                    return True
                if granted == -1:
                    # Upstream's "retry after" ends within the budget: wait it out, then ask
                    # again. Past the budget, the caller is better served by the fallback now.
                    cooling_s = extra / 1000
                    if time.monotonic() + cooling_s < deadline:
                        await asyncio.sleep(cooling_s)
                        continue
                    self._record(Sample().count("slot_cooldown_refusals"))
                    await self._leave_queue(member, queue)
                    raise SlotUnavailableError("upstream asked us to back off", cooling_down=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._record(Sample().count("slot_timeouts"))
                    await self._leave_queue(member, queue)
                    raise SlotUnavailableError("no upstream slot within the time budget")
                wake.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(self._settings.recheck_s, remaining))
        finally:
            del local_queue[wake]

    async def _leave_queue(self, member: str, queue: str) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(queue, member)
                pipe.zrem(self._keys["waiting"], member)
                await pipe.execute()
        except (RedisError, OSError):
            pass  # the waiting entry expires by itself

    def _keep_slots(self) -> None:
        """Start, once, the tasks that renew and give back this process's slots.

        start() does; so does the first slot, for a limiter nobody started (tests, benches).
        """
        if self._releaser is None:
            self._renewer = asyncio.create_task(self._keep_renewed(), name="limiter-renewals")
            self._releaser = asyncio.create_task(self._keep_releasing(), name="limiter-releases")

    async def given_back(self) -> None:
        """Return once every slot left so far is back in Redis (or given up on, Redis away).

        For a caller about to stop running the loop (a worker between tasks): until it runs
        again, a slot still waiting for the releaser stays taken.
        """
        if self._releaser is None or self._releaser.done():
            if self._to_release:
                await self._release_batch()
            return
        await self._all_given_back.wait()

    async def _keep_releasing(self) -> None:
        while True:
            await self._release_wanted.wait()
            self._release_wanted.clear()
            if self._to_release:
                await self._release_batch()
            if not self._to_release:
                self._all_given_back.set()
            if self._stopped.is_set():
                return

    async def _release_batch(self) -> None:
        members, self._to_release = self._to_release, []
        try:
            await self._release(
                keys=[
                    self._keys["holders"],
                    self._keys["live"],
                    self._keys["bulk"],
                    self._keys["waiting"],
                ],
                args=[RELEASED, *members],
            )
        except (RedisError, OSError) as exc:
            self._pause(exc)  # the leases run out by themselves

    async def _keep_renewed(self) -> None:
        """Renew the leases of every slot this process holds, all in one call.

        A failed renewal is tried again on the next tick: one Redis hiccup must not let a
        long stream's lease lapse. Renewing a slot just given back is harmless: the script
        only extends leases that are still there.
        """
        lease_ms = int(self._settings.lease_s * 1000)
        while not self._stopped.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._settings.lease_s / 3)
            if not self._held or self._stopped.is_set():
                continue
            try:
                lost = await self._renew(keys=[self._keys["holders"]], args=[lease_ms, *self._held])
            except (RedisError, OSError):
                continue
            for member in map(text, lost):
                if member in self._held:
                    # Said once: it is not renewed again (the script would not bring it back).
                    self._held.discard(member)
                    logger.warning("upstream slot %s expired while in use", member)

    @asynccontextmanager
    async def _local_slot(self, deadline: float) -> AsyncIterator[None]:
        self.stats.local_fallbacks += 1
        self._record(Sample().count("slot_local"))
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await self._local.acquire()
        except TimeoutError as exc:
            raise SlotUnavailableError("no local upstream slot within the time budget") from exc
        try:
            yield
        finally:
            self._local.release()

    def _pause(self, exc: Exception) -> None:
        if self.global_mode:
            logger.warning(
                "limiter cannot reach Redis (%s): this process uses its share, %d of %d slots",
                type(exc).__name__,
                self._local_share,
                self.limit,
            )
        self._paused_until = time.monotonic() + 1.0

    def _note_wait(self, started: float, priority: Priority) -> None:
        waited = time.monotonic() - started
        self._record(Sample().count("slot_acquired").observe("slot_wait", waited))
        metrics.LIMITER_WAIT.labels(priority).observe(waited)

    def _record(self, sample: Sample) -> None:
        if self._rollups is not None:
            self._rollups.record(sample)

    def _on_release(self, data: bytes) -> None:
        # Each freed slot wakes the longest-waiting live call here, else bulk.
        for _ in range(int(data)):
            if not self._wake_next(Priority.LIVE) and not self._wake_next(Priority.BULK):
                return

    def _wake_next(self, priority: Priority, after: asyncio.Event | None = None) -> bool:
        """Wake this process's earliest-queued waiter (lowest ticket) that is asleep."""
        asleep = [
            (ticket or float("inf"), id(event), event)
            for event, ticket in self._waiters[priority].items()
            if event is not after and not event.is_set()
        ]
        if not asleep:
            return False
        min(asleep)[2].set()
        return True

    async def _keep_alive(self) -> None:
        """Count the processes sharing the slots, to know this one's share without Redis."""
        while not self._stopped.is_set():
            try:
                self._processes = int(
                    await self._heartbeat(
                        keys=[self._keys["processes"]], args=[self._process_id, 10_000]
                    )
                )
                self._resize_local_share(max(1, self.limit // max(1, self._processes)))
            except (RedisError, OSError):
                pass
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), 3.0)

    def _resize_local_share(self, share: int) -> None:
        if share == self._local_share:
            return
        # Only between uses: a semaphore with holders keeps its size until they are done.
        if self._local._value == self._local_share:
            self._local = asyncio.Semaphore(share)
            self._local_share = share
