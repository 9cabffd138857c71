"""One pub/sub connection per process, dispatching Redis notifications to local callbacks.

Waiters (single-flight followers, limiter queues) sleep on local futures and events; this
listener wakes them when another process publishes. If Redis goes away it reconnects with
backoff; notifications sent meanwhile are lost, so every waiter also has its own timeout.
"""

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

Handler = Callable[[bytes], None]
_POLL_S = 1.0
_MAX_BACKOFF_S = 2.0


class Notifier:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._handlers: dict[str, Handler] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self.connected = asyncio.Event()
        # Subscriptions made so far: a change means messages may have been missed in between.
        self.connections = 0

    def on(self, channel: str, handler: Handler) -> None:
        """Call `handler(data)` for every message on `channel` (register before start)."""
        self._handlers[channel] = handler

    async def publish(self, channel: str, data: bytes) -> None:
        await self._redis.publish(channel, data)

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="redis-notifier")

    async def stop(self) -> None:
        self._stopped.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _listen(self) -> None:
        backoff = 0.05
        while not self._stopped.is_set():
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self.connections += 1
                self.connected.set()
                backoff = 0.05
                # redis-py's get_message can swallow a cancellation: the flag is what ends it.
                while not self._stopped.is_set():
                    message = await pubsub.get_message(timeout=_POLL_S)
                    if message is None or message.get("type") != "message":
                        continue
                    channel = message["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    handler = self._handlers.get(name)
                    if handler is not None:
                        handler(message["data"])
            except (RedisError, OSError) as exc:
                self.connected.clear()
                if self._stopped.is_set():
                    return
                logger.info("notifications paused (%s); reconnecting", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
            finally:
                await _close(pubsub)


async def _close(pubsub: PubSub) -> None:
    with suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
