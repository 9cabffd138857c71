"""The audio this process served from the cache lately, kept in its memory up to a byte budget.

A hit from here costs no round trip to Redis, no decoding and no wait on the event loop: the
segment's bytes are already the response's. Only entries Redis has answered with are kept (a
segment asked for at least twice), so one-off texts do not push hot phrases out.

A cache key covers everything that shapes the audio, so a copy is never wrong; it can outlive
its Redis value (TTL ended, evicted by maintenance), which is why a copy is dropped after
`max_age_s` and Redis is asked again.
"""

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.cache.entry import CacheEntry

# What an entry costs besides its audio (key, metadata, the bookkeeping here), roughly.
ENTRY_OVERHEAD_BYTES = 600
# No one entry may take more than this share of the budget (it would empty the rest).
MAX_SHARE_OF_BUDGET = 0.25


@dataclass(frozen=True, slots=True)
class _Held:
    entry: CacheEntry
    size: int
    expires_at: float


class HotAudio:
    """Least-recently-used entries within `max_bytes`, none older than `max_age_s`."""

    def __init__(
        self,
        max_bytes: int,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_age_s = max_age_s
        self._clock = clock
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def get(self, key: str) -> CacheEntry | None:
        held = self._held.get(key)
        if held is None:
            return None
        if self._clock() >= held.expires_at:
            self._drop(key)
            return None
        self._held.move_to_end(key)
        self.hits += 1
        return held.entry

    def put(self, key: str, entry: CacheEntry) -> None:
        size = len(entry.audio) + len(key) + ENTRY_OVERHEAD_BYTES
        if size > self._max_bytes * MAX_SHARE_OF_BUDGET:
            return
        if key in self._held:
            self._drop(key)
        self._held[key] = _Held(entry, size, self._clock() + self._max_age_s)
        self.bytes += size
        while self.bytes > self._max_bytes:
            oldest = next(iter(self._held))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, key: str) -> None:
        self.bytes -= self._held.pop(key).size
