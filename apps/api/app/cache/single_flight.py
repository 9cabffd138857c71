"""Single-flight across processes: concurrent misses of one key cost one synthesis.

The first caller anywhere takes a short Redis lock and computes; callers in the same process
await its future, callers in other processes wait for its notification and then read the
cache. A result that is not cached (the fallback spoke) travels inside the notification, so
followers still do not go upstream again. Waits are bounded: a follower that hears nothing
in time computes the segment itself rather than hang.
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.audio_cache import AudioCache
from app.cache.entry import CacheEntry, CorruptEntryError, decode_entry, encode_entry
from app.notifications import Notifier

logger = logging.getLogger(__name__)

CHANNEL = "sv:flights"
LOCK_PREFIX = "sv:flight:"
_CACHED = b"C"
_INLINE = b"I"
_FAILED = b"F"
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _LeaderGoneError(Exception):
    """The local leader was cancelled (its client left); a follower takes over."""


@dataclass(frozen=True, slots=True)
class Computed:
    """A leader's result: the entry, and whether it may be cached."""

    entry: CacheEntry
    cacheable: bool


@dataclass(frozen=True, slots=True)
class Flown:
    entry: CacheEntry
    computed_here: bool  # False: another caller paid for it


class SingleFlight:
    def __init__(self, redis: Redis, cache: AudioCache, notifier: Notifier, wait_s: float) -> None:
        self._redis = redis
        self._cache = cache
        self._notifier = notifier
        self._wait_s = wait_s
        self._release = redis.register_script(_RELEASE)
        self._local: dict[str, asyncio.Future[Computed]] = {}
        self._remote: dict[str, list[asyncio.Future[bytes]]] = {}
        notifier.on(CHANNEL, self._on_notification)

    async def run(
        self, key: str, wire_format: str, compute: Callable[[], Awaitable[Computed]]
    ) -> Flown:
        if (running := self._local.get(key)) is not None:
            try:
                computed = await asyncio.shield(running)
            except _LeaderGoneError:
                return await self.run(key, wire_format, compute)
            return Flown(computed.entry, computed_here=False)
        token = secrets.token_hex(8)
        if await self._try_lock(key, token):
            return await self._lead(key, token, compute)
        return await self._follow(key, wire_format, compute)

    async def _try_lock(self, key: str, token: str) -> bool:
        if not self._cache.available:
            return True  # no Redis: this process dedupes alone
        try:
            lease_ms = int(self._wait_s * 1000)
            return bool(await self._redis.set(LOCK_PREFIX + key, token, nx=True, px=lease_ms))
        except (RedisError, OSError):
            return True

    async def _lead(
        self, key: str, token: str, compute: Callable[[], Awaitable[Computed]]
    ) -> Flown:
        future: asyncio.Future[Computed] = asyncio.get_running_loop().create_future()
        self._local[key] = future
        try:
            computed = await compute()
        except BaseException as exc:
            # Out of the table first: a woken follower must not find this failed flight again.
            del self._local[key]
            gone = isinstance(exc, asyncio.CancelledError)
            future.set_exception(_LeaderGoneError() if gone else exc)
            future.exception()  # retrieved here; local followers get it from their await
            await asyncio.shield(self._notify(key, token, _FAILED))
            raise
        del self._local[key]
        future.set_result(computed)
        stored = computed.cacheable and await self._cache.store(key, computed.entry)
        await self._announce(key, token, computed.entry, stored)
        return Flown(computed.entry, computed_here=True)

    async def _announce(self, key: str, token: str, entry: CacheEntry, stored: bool) -> None:
        await self._notify(key, token, _CACHED if stored else _INLINE + encode_entry(entry))

    async def _notify(self, key: str, token: str, notice: bytes) -> None:
        if not self._cache.available:
            return
        try:
            await self._notifier.publish(CHANNEL, key.encode() + b"\n" + notice)
            await self._release(keys=[LOCK_PREFIX + key], args=[token])
        except (RedisError, OSError):
            pass  # followers time out and compute themselves

    async def _follow(
        self, key: str, wire_format: str, compute: Callable[[], Awaitable[Computed]]
    ) -> Flown:
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._remote.setdefault(key, []).append(waiter)
        try:
            # The leader may have finished before we listened: look once more.
            entry = await self._cache.get(key, wire_format)
            if entry is not None:
                return Flown(entry, computed_here=False)
            try:
                async with asyncio.timeout(self._wait_s):
                    notice = await waiter
            except TimeoutError:
                logger.warning("no word from the process computing %s: computing it here", key)
                return await self._compute_and_store(key, compute)
        finally:
            waiters = self._remote.get(key, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._remote.pop(key, None)
        entry = self._entry_from(notice) or await self._cache.get(key, wire_format)
        if entry is None:
            return await self._compute_and_store(key, compute)
        return Flown(entry, computed_here=False)

    async def _compute_and_store(
        self, key: str, compute: Callable[[], Awaitable[Computed]]
    ) -> Flown:
        computed = await compute()
        if computed.cacheable:
            await self._cache.store(key, computed.entry)
        return Flown(computed.entry, computed_here=True)

    @staticmethod
    def _entry_from(notice: bytes) -> CacheEntry | None:
        if notice[:1] != _INLINE:
            return None
        try:
            return decode_entry(notice[1:])
        except CorruptEntryError:
            return None

    def _on_notification(self, data: bytes) -> None:
        key, _, notice = data.partition(b"\n")
        for waiter in self._remote.get(key.decode(), []):
            if not waiter.done():
                waiter.set_result(notice)
