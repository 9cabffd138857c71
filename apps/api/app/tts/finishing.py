"""A new segment's finishing work: its clean audio, its duration and its quality score.

Scoring is numpy on short arrays: dozens of small calls that hold the GIL between the few
FFTs that release it. In a thread of the API it takes turns with the event loop, and every
turn is a delay for every call on the line: at 700 WebSocket sessions it was a quarter of the
API process's samples, and the loop fell behind. So the API finishes segments in a process of
its own, one per API process, shared by every app the process builds. A daemonic process (a
Celery prefork child) may not have children: there, and whenever the scoring process has
died, the work runs in a thread as before.
"""

import asyncio
import atexit
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache

from app.audio import codecs, container, quality
from app.audio.formats import FormatSpec
from app.tts.segmenting import spoken_length

logger = logging.getLogger(__name__)

# How soon the scoring process notices that its API process is gone.
_PARENT_CHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class FinishedSegment:
    audio: bytes
    duration_ms: int
    score: float


def finish_segment(audio: bytes, text: str, wire: FormatSpec) -> FinishedSegment:
    """The segment's clean audio (container parts stripped), its duration and its score."""
    audio = container.segment_audio(audio, wire)
    pcm = codecs.decode(audio, wire)
    score = quality.measure(pcm, wire.sample_rate, spoken_length(text)).score
    return FinishedSegment(audio, codecs.duration_ms(audio, wire), score)


class SegmentFinisher:
    """Runs `finish_segment` in a scoring process, or in a thread where there can be none."""

    def __init__(self, use_process: bool) -> None:
        self._use_process = use_process
        self._pool: ProcessPoolExecutor | None = None
        # Done once the pool's process has started and answered (it imports numpy first).
        self._up: Future[int] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the scoring process now; segments go to it once it is up."""
        self._current_pool()

    async def finish(self, audio: bytes, text: str, wire: FormatSpec) -> FinishedSegment:
        pool = self._current_pool()
        # Until the process is up (a second or so after start), segments do not wait for it.
        if pool is not None and self._up is not None and self._up.done():
            try:
                return await asyncio.wrap_future(pool.submit(finish_segment, audio, text, wire))
            except BrokenProcessPool:
                # The process died (killed, out of memory): the next call gets a new one,
                # and this segment is finished here rather than lost.
                if self._discard(pool):
                    logger.warning("the scoring process died; the next segment starts another")
        return await asyncio.to_thread(finish_segment, audio, text, wire)

    async def worker_pid(self) -> int:
        """The id of the process the work runs in (this one's when it runs in threads)."""
        pool = self._current_pool()
        if pool is None:
            return os.getpid()
        return await asyncio.wrap_future(pool.submit(os.getpid))

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _current_pool(self) -> ProcessPoolExecutor | None:
        if not self._use_process:
            return None
        with self._lock:
            if self._pool is None:
                # spawn: the API has threads, and a forked child would inherit their locks.
                self._pool = ProcessPoolExecutor(
                    1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent,
                    initargs=(os.getpid(),),
                )
                self._up = self._pool.submit(os.getpid)
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor) -> bool:
        """Drop a broken pool; False when another call had dropped it already."""
        with self._lock:
            current = self._pool is pool
            if current:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
        return current


def _exit_with_parent(parent: int) -> None:
    """In the scoring process: exit when the API does, even when it was killed outright."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


@lru_cache(maxsize=1)
def shared_finisher() -> SegmentFinisher:
    """The process's one finisher (its scoring process is stopped at interpreter exit)."""
    finisher = SegmentFinisher(use_process=not multiprocessing.current_process().daemon)
    atexit.register(finisher.close)
    return finisher
