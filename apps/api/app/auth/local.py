"""What a process keeps of keys between requests, so a request costs no Redis round trip.

Known keys: a key the guard accepted is remembered by the HMAC of the secret presented, its
scopes and limits, for `cache_s`. A rotation or revocation is announced on a pub/sub channel
and drops it at once in every process; while that channel is down nothing is remembered
(every request asks Redis). A key expiring, or a rotated-out secret's grace ending, is
noticed within `cache_s`.

Leases: the shared per-minute budgets stay in Redis, but a process takes tokens from them a
lease at a time (`lease_fraction` of the limit, at least the request's cost) and spends them
locally; only an empty lease costs a round trip. Unspent tokens lapse after `lease_s`: at
worst each process holds back one lease of each budget from the others.
"""

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.auth.guard import Outcome, RateDecision
from app.auth.scopes import Scope, grants


@dataclass(slots=True)
class KnownKey:
    digest: str
    scopes: frozenset[Scope]
    requests_per_minute: int
    characters_per_minute: int | None
    known_at: float  # monotonic


@dataclass(slots=True)
class _Lease:
    tokens: float = 0.0
    lapses_at: float = 0.0  # monotonic
    last: RateDecision | None = None  # the shared bucket's answer to the latest lease


Take = Callable[[int], Awaitable[RateDecision]]  # takes this many tokens from Redis


@dataclass
class LocalKeys:
    cache_s: float
    lease_fraction: float
    lease_s: float
    _known: dict[str, KnownKey] = field(default_factory=dict, init=False)
    _forgotten_at: dict[str, float] = field(default_factory=dict, init=False)
    _leases: dict[tuple[str, str], _Lease] = field(default_factory=dict, init=False)
    # The last time the guard accepted each key (kept through pub/sub outages; dropped on a
    # change announced): what may still be admitted while the state Redis is unreachable.
    _last_good: dict[str, KnownKey] = field(default_factory=dict, init=False)

    def known(self, key_id: str, digest: str, scope: Scope) -> KnownKey | None:
        """The key, if this process accepted this very secret for it lately with `scope`."""
        entry = self._known.get(key_id)
        if entry is None or entry.digest != digest:
            return None
        if time.monotonic() - entry.known_at > self.cache_s:
            del self._known[key_id]
            return None
        return entry if grants(entry.scopes, scope) else None

    def remember(self, key_id: str, entry: KnownKey, asked_at: float, use: bool = True) -> None:
        """Keep what the guard said, unless the key changed since the guard was asked.

        `use=False`: only as the last known good answer (changes cannot be heard now).
        """
        if self._forgotten_at.get(key_id, float("-inf")) < asked_at:
            self._last_good[key_id] = entry
            if use:
                self._known[key_id] = entry

    def last_good(self, key_id: str, digest: str, scope: Scope, within_s: float) -> KnownKey | None:
        """The key as last accepted, if that was this very secret within `within_s`."""
        entry = self._last_good.get(key_id)
        if entry is None or entry.digest != digest or not grants(entry.scopes, scope):
            return None
        return entry if time.monotonic() - entry.known_at <= within_s else None

    def forget(self, key_id: str) -> None:
        self._known.pop(key_id, None)
        self._last_good.pop(key_id, None)
        self._forgotten_at[key_id] = time.monotonic()
        for bucket in [b for b in self._leases if b[0] == key_id]:
            del self._leases[bucket]

    def forget_all(self) -> None:
        """Announcements may have been missed (the channel was down): start over."""
        self._known.clear()
        now = time.monotonic()
        self._forgotten_at = dict.fromkeys(self._forgotten_at, now)

    async def spend(
        self, key_id: str, bucket: str, cost: int, limit: int, take: Take
    ) -> RateDecision:
        """Spends `cost` tokens of the key's `bucket`, leasing more from Redis when short."""
        lease = self._leases.setdefault((key_id, bucket), _Lease())
        now = time.monotonic()
        if now >= lease.lapses_at:
            lease.tokens = 0.0
        if lease.tokens < cost:
            wanted = max(cost, math.ceil(limit * self.lease_fraction))
            decision = await take(wanted)
            if not decision.allowed and wanted > cost:
                decision = await take(cost)  # a whole lease may not fit where the cost does
                wanted = cost
            if not decision.allowed:
                return decision
            lease.tokens += wanted
            lease.lapses_at = time.monotonic() + self.lease_s
            lease.last = decision
        lease.tokens -= cost
        return _as_seen(lease, limit)


def _as_seen(lease: _Lease, limit: int) -> RateDecision:
    """The budget as a caller should see it: the shared bucket plus this process's lease."""
    last = lease.last
    remaining = (last.remaining if last is not None else 0) + int(lease.tokens)
    reset_s = last.reset_s if last is not None else 0.0
    return RateDecision(Outcome.OK, limit, min(limit, remaining), reset_s)
