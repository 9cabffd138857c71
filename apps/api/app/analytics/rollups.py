"""Per-minute rollups in the state Redis, shared by every process, read over rolling windows.

Each process adds up its requests' counters and latency-histogram buckets in memory and
writes them to the hash of their minute once a second (one pipelined round trip, however busy
it is); reading a window sums the minutes it covers. A sample may also count for scopes of one
dimension each (a request's agent, persona, language, providers): each scope has its own minute
hashes, and a flush makes one script call per hash touched that second, not one per request.
Percentiles come from the buckets (interpolated inside the bucket, as Prometheus'
histogram_quantile does). Recording never delays a caller, and what cannot be written while
Redis is away is dropped.
"""

import bisect
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.periodic import Periodic

logger = logging.getLogger(__name__)

PREFIX = "sv:perf:"
RETENTION_S = 25 * 3600
# Upper bounds in milliseconds; the last bucket is everything above.
BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
WINDOWS = {"5m": 5, "1h": 60, "24h": 24 * 60}

# (dimension, value), e.g. ("persona", "friendly"); values must come from a bounded set.
Scope = tuple[str, str]

# KEYS[1]: the minute's hash. ARGV: ttl, n_add, (field, amount)*, (field, value)* for maxima.
_RECORD = """
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i])
end
for i = 3 + 2 * n, #ARGV, 2 do
  local current = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if tonumber(ARGV[i + 1]) > current then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def bucket_field(metric: str, seconds: float) -> str:
    index = bisect.bisect_left(BUCKETS_MS, seconds * 1000)
    return f"{metric}_b{index}"


@dataclass
class Sample:
    """What one event adds to its minute."""

    add: dict[str, float] = field(default_factory=dict)
    maxima: dict[str, float] = field(default_factory=dict)

    def count(self, name: str, amount: float = 1) -> "Sample":
        self.add[name] = self.add.get(name, 0) + amount
        return self

    def observe(self, metric: str, seconds: float) -> "Sample":
        self.count(bucket_field(metric, seconds))
        return self.count(f"{metric}_sum_s", seconds)

    def peak(self, name: str, value: float) -> "Sample":
        self.maxima[name] = max(value, self.maxima.get(name, value))
        return self

    def merge(self, other: "Sample") -> None:
        add = self.add  # every request merges one sample: kept to plain dict work
        for name, amount in other.add.items():
            add[name] = add.get(name, 0) + amount
        for name, value in other.maxima.items():
            self.peak(name, value)


def minute_key(minute: int, scope: Scope | None = None) -> str:
    """`sv:perf:<minute>` for the whole service, `sv:perf:<dim>:<value>:<minute>` for a scope."""
    return f"{PREFIX}{minute}" if scope is None else f"{PREFIX}{scope[0]}:{scope[1]}:{minute}"


class Rollups:
    def __init__(self, redis: Redis, flush_every_s: float = 1.0) -> None:
        self._redis = redis
        self._record = redis.register_script(_RECORD)
        # Keyed by the minute and the request's scopes: one merge per request; the flush
        # spreads each entry over the service's and each scope's hash.
        self._pending: dict[tuple[int, tuple[Scope, ...]], Sample] = {}
        self._flusher = Periodic("rollups", self.flush, flush_every_s)

    def record(self, sample: Sample, scopes: tuple[Scope, ...] = ()) -> None:
        """Add `sample` to the current minute, of the service and of each scope.

        Written within a second. Callers pass only scopes of bounded dimensions.
        """
        self._pending.setdefault((int(time.time() // 60), scopes), Sample()).merge(sample)

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()

    async def flush(self) -> None:
        """Write what this process has gathered so far (one round trip)."""
        pending, self._pending = self._pending, {}
        if not pending:
            return
        hashes: dict[tuple[int, Scope | None], Sample] = {}
        for (minute, scopes), sample in pending.items():
            for scope in (None, *scopes):
                hashes.setdefault((minute, scope), Sample()).merge(sample)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (minute, scope), sample in hashes.items():
                    await self._record(
                        keys=[minute_key(minute, scope)], args=_args(sample), client=pipe
                    )
                await pipe.execute()
        except (RedisError, OSError):
            logger.debug("rollups of %d minute hashes dropped: Redis is away", len(hashes))

    async def window(
        self, minutes: int, scope: Scope | None = None, now: float | None = None
    ) -> dict[str, float]:
        """Counters summed (maxima: the largest) over the last `minutes` minutes."""
        return add_up(totals for _, totals in await self.minutes(minutes, scope, now))

    async def minutes(
        self, minutes: int, scope: Scope | None = None, now: float | None = None
    ) -> list[tuple[int, dict[str, float]]]:
        """Each of the last `minutes` minutes (oldest first) with its totals; {} when empty."""
        current = int((now or time.time()) // 60)
        numbers = range(current - minutes + 1, current + 1)
        async with self._redis.pipeline(transaction=False) as pipe:
            for minute in numbers:
                pipe.hgetall(minute_key(minute, scope))
            hashes: list[Mapping[bytes, bytes]] = await pipe.execute()
        return [(minute, merge([h])) for minute, h in zip(numbers, hashes, strict=True)]


def _args(sample: Sample) -> list[str | float | int]:
    args: list[str | float | int] = [RETENTION_S, len(sample.add)]
    for name, amount in sample.add.items():
        args += [name, amount]
    for name, value in sample.maxima.items():
        args += [name, value]
    return args


def merge(hashes: Iterable[Mapping[bytes, bytes]]) -> dict[str, float]:
    """Minute hashes as read from Redis, added up."""
    return add_up({k.decode(): float(v) for k, v in minute.items()} for minute in hashes)


def add_up(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Totals added up: counters summed, maxima (`peak_*`) the largest."""
    totals: dict[str, float] = {}
    for part in parts:
        for name, value in part.items():
            if name.startswith("peak_"):
                totals[name] = max(totals.get(name, 0.0), value)
            else:
                totals[name] = totals.get(name, 0.0) + value
    return totals


def percentile(totals: Mapping[str, float], metric: str, q: float) -> float | None:
    """The q-quantile (0–1) of `metric` in seconds, from its buckets; None when empty."""
    counts = [totals.get(f"{metric}_b{i}", 0.0) for i in range(len(BUCKETS_MS) + 1)]
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0.0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = BUCKETS_MS[index - 1] if index > 0 else 0
            upper = BUCKETS_MS[index] if index < len(BUCKETS_MS) else BUCKETS_MS[-1] * 2
            return (lower + (upper - lower) * (rank - seen) / count) / 1000
        seen += count
    return BUCKETS_MS[-1] / 1000
