"""Celery workers' heartbeats in the state Redis, so health can tell which workers are alive.

The worker's main process beats from a thread of its own every few seconds, whether or not a
task runs (the pool processes' event loops run only during tasks). A worker that stops
cleanly removes its entry; one that dies stops beating and ages out.
"""

import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from redis.asyncio import Redis

logger = logging.getLogger(__name__)

WORKERS = "sv:workers"  # hash: worker name -> JSON of its last beat
BEAT_EVERY_S = 5.0


class WorkerHeartbeat:
    def __init__(self, redis_url: str, name: str, concurrency: int) -> None:
        self._redis_url = redis_url
        self.name = name
        self._concurrency = concurrency
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=BEAT_EVERY_S)
        try:
            with redis.Redis.from_url(self._redis_url, socket_timeout=1) as client:
                client.hdel(WORKERS, self.name)
        except (redis.RedisError, OSError):
            pass  # the entry ages out

    def _run(self) -> None:
        with redis.Redis.from_url(self._redis_url, socket_timeout=1) as client:
            while True:
                beat = {
                    "name": self.name,
                    "hostname": socket.gethostname(),
                    "pid": os.getpid(),
                    "concurrency": self._concurrency,
                    "at": time.time(),
                }
                try:
                    client.hset(WORKERS, self.name, json.dumps(beat))
                except (redis.RedisError, OSError) as exc:
                    logger.debug("heartbeat not written (%s); next beat tries again", exc)
                if self._stopped.wait(BEAT_EVERY_S):
                    return


async def worker_beats(state: Redis) -> list[dict[str, Any]]:
    """Every worker's last beat, with its age in seconds, newest first."""
    now = time.time()
    beats = [json.loads(value) for value in (await state.hgetall(WORKERS)).values()]
    for beat in beats:
        beat["age_s"] = round(now - float(beat["at"]), 1)
    return sorted(beats, key=lambda beat: beat["age_s"])
