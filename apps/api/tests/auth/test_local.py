"""A process's memory of keys: leases of the shared budgets, and forgetting on change."""

import asyncio
import time

from app.auth.guard import Outcome, RateDecision
from app.auth.local import KnownKey, LocalKeys
from app.auth.scopes import Scope


class SharedBucket:
    """The Redis bucket's arithmetic, counting how often it is asked (one ask: one trip)."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.asked: list[int] = []

    async def take(self, tokens: int) -> RateDecision:
        self.asked.append(tokens)
        if tokens > self.tokens:
            return RateDecision(Outcome.RATE_LIMITED, 1000, self.tokens, 60.0, 1.5)
        self.tokens -= tokens
        return RateDecision(Outcome.OK, 1000, self.tokens, 60.0)


def _keys(cache_s: float = 10.0, lease_s: float = 10.0) -> LocalKeys:
    return LocalKeys(cache_s=cache_s, lease_fraction=0.02, lease_s=lease_s)


async def test_requests_are_spent_from_leases_one_round_trip_per_lease() -> None:
    local, shared = _keys(), SharedBucket(1000)

    decisions = [await local.spend("k", "requests", 1, 1000, shared.take) for _ in range(45)]

    assert all(d.allowed for d in decisions)
    assert shared.asked == [20, 20, 20]
    assert shared.tokens == 1000 - 60
    assert decisions[-1].remaining == 1000 - 60 + 15  # the shared rest and this lease's rest


async def test_near_the_end_of_the_budget_the_exact_cost_is_taken_then_refused() -> None:
    local, shared = _keys(), SharedBucket(3)

    taken = [await local.spend("k", "requests", 1, 1000, shared.take) for _ in range(4)]

    assert [d.allowed for d in taken] == [True, True, True, False]
    assert taken[-1].retry_after_s == 1.5
    assert shared.tokens == 0


async def test_unspent_tokens_lapse() -> None:
    local, shared = _keys(lease_s=0.05), SharedBucket(1000)
    await local.spend("k", "characters", 5, 1000, shared.take)
    await asyncio.sleep(0.1)
    await local.spend("k", "characters", 5, 1000, shared.take)

    assert shared.asked == [20, 20]


async def test_a_key_is_known_by_its_secret_and_scope_until_forgotten_or_stale() -> None:
    local = _keys(cache_s=0.05)
    asked_at = time.monotonic()
    local.remember(
        "k", KnownKey("digest", frozenset({Scope.STREAM}), 600, None, asked_at), asked_at
    )

    assert local.known("k", "digest", Scope.STREAM) is not None
    assert local.known("k", "other-secret", Scope.STREAM) is None
    assert local.known("k", "digest", Scope.BULK) is None
    await asyncio.sleep(0.06)
    assert local.known("k", "digest", Scope.STREAM) is None


async def test_what_was_learnt_before_a_change_is_not_remembered_after_it() -> None:
    local, shared = _keys(), SharedBucket(1000)
    asked_at = time.monotonic()
    await local.spend("k", "requests", 1, 1000, shared.take)
    local.forget("k")  # announced while the guard was being asked
    entry = KnownKey("digest", frozenset({Scope.ADMIN}), 600, None, asked_at)
    local.remember("k", entry, asked_at)

    assert local.known("k", "digest", Scope.STREAM) is None
    await local.spend("k", "requests", 1, 1000, shared.take)
    assert len(shared.asked) == 2  # the lease went with the key
