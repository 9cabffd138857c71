"""The guard: every verdict, the request and character buckets, and the brute-force brake."""

import time

import pytest
import redis.asyncio as aioredis

from app.auth import Guard, KeyStore, Outcome, Scope
from app.auth.guard import BUCKET_KEY
from app.auth.keys import parse_key
from tests.auth.conftest import BOOTSTRAP_KEY, PEPPER, auth_settings

T0 = 1_700_000_000.0


def _id(raw: str) -> str:
    parsed = parse_key(raw)
    assert parsed is not None
    return parsed.id


def _wrong_secret(raw: str) -> str:
    return f"sv_{_id(raw)}_" + "W" * 43


async def test_a_created_key_is_accepted_for_its_scope(store: KeyStore, guard: Guard) -> None:
    created = await store.create("frontend", [Scope.SYNTHESIZE])

    verdict = await guard.check(created.key, Scope.SYNTHESIZE)

    assert verdict.outcome is Outcome.OK
    assert verdict.ok
    assert verdict.key_id == created.info.id
    assert verdict.scopes == {Scope.SYNTHESIZE}
    assert verdict.rate is not None
    assert (verdict.rate.limit, verdict.rate.remaining) == (60, 59)
    assert 0 < verdict.rate.reset_s <= 1.0
    assert verdict.characters_per_minute == 100_000


async def test_a_wrong_secret_is_refused(store: KeyStore, guard: Guard) -> None:
    created = await store.create("frontend", [Scope.SYNTHESIZE])

    verdict = await guard.check(_wrong_secret(created.key), Scope.SYNTHESIZE)

    assert verdict.outcome is Outcome.BAD_SECRET
    assert verdict.rate is None
    assert not verdict.ok


@pytest.mark.parametrize(
    "raw", [None, "", "sv_", "Bearer x", "sv_abcdef012345_short", "x" * 10_000, "sv_\x00"]
)
async def test_a_malformed_key_is_refused_without_raising(guard: Guard, raw: str | None) -> None:
    assert (await guard.check(raw, Scope.SYNTHESIZE)).outcome is Outcome.MALFORMED


async def test_a_key_of_an_unknown_id_is_refused(guard: Guard) -> None:
    verdict = await guard.check("sv_abcdef012345_" + "A" * 43, Scope.SYNTHESIZE)

    assert verdict.outcome is Outcome.UNKNOWN


async def test_a_revoked_key_is_refused(store: KeyStore, guard: Guard) -> None:
    created = await store.create("frontend", [Scope.SYNTHESIZE])
    await store.revoke(created.info.id)

    assert (await guard.check(created.key, Scope.SYNTHESIZE)).outcome is Outcome.REVOKED
    # A wrong secret learns nothing about the key's state.
    wrong = await guard.check(_wrong_secret(created.key), Scope.SYNTHESIZE)
    assert wrong.outcome is Outcome.BAD_SECRET


async def test_a_key_expires_at_its_time(store: KeyStore, guard: Guard) -> None:
    now = time.time()
    created = await store.create("temp", [Scope.SYNTHESIZE], expires_in_s=10)

    before = await guard.check(created.key, Scope.SYNTHESIZE, now=now + 9)
    after = await guard.check(created.key, Scope.SYNTHESIZE, now=now + 11)

    assert before.outcome is Outcome.OK
    assert after.outcome is Outcome.EXPIRED


async def test_after_a_rotation_the_old_secret_works_until_the_grace_ends(
    store: KeyStore, guard: Guard
) -> None:
    now = time.time()
    old = await store.create("frontend", [Scope.SYNTHESIZE])
    new = await store.rotate(old.info.id, grace_s=100)

    assert new.info.id == old.info.id
    assert new.key != old.key
    assert (await guard.check(new.key, Scope.SYNTHESIZE, now=now)).ok
    assert (await guard.check(old.key, Scope.SYNTHESIZE, now=now + 50)).ok
    late = await guard.check(old.key, Scope.SYNTHESIZE, now=now + 101)
    assert late.outcome is Outcome.ROTATED_OUT
    assert (await guard.check(new.key, Scope.SYNTHESIZE, now=now + 101)).ok


async def test_a_second_rotation_ends_the_first_secret_at_once(
    store: KeyStore, guard: Guard
) -> None:
    first = await store.create("frontend", [Scope.SYNTHESIZE])
    second = await store.rotate(first.info.id, grace_s=100)
    third = await store.rotate(first.info.id, grace_s=100)

    assert (await guard.check(first.key, Scope.SYNTHESIZE)).outcome is Outcome.BAD_SECRET
    assert (await guard.check(second.key, Scope.SYNTHESIZE)).ok
    assert (await guard.check(third.key, Scope.SYNTHESIZE)).ok


async def test_a_key_without_the_scope_is_refused_and_spends_nothing(
    store: KeyStore, guard: Guard, redis_client: aioredis.Redis
) -> None:
    created = await store.create("reader", [Scope.ANALYTICS, Scope.STREAM])

    verdict = await guard.check(created.key, Scope.BULK)

    assert verdict.outcome is Outcome.WRONG_SCOPE
    assert verdict.scopes == {Scope.ANALYTICS, Scope.STREAM}
    bucket = BUCKET_KEY.format(id=created.info.id, bucket="requests")
    assert not await redis_client.exists(bucket)


async def test_admin_implies_every_scope(store: KeyStore, guard: Guard) -> None:
    created = await store.create("ops", [Scope.ADMIN])

    for scope in Scope:
        assert (await guard.check(created.key, scope)).ok, scope


async def test_requests_pass_up_to_the_limit_then_wait_for_the_refill(
    store: KeyStore, guard: Guard
) -> None:
    created = await store.create("small", [Scope.SYNTHESIZE], requests_per_minute=5)

    passed = [await guard.check(created.key, Scope.SYNTHESIZE, now=T0) for _ in range(5)]
    refused = await guard.check(created.key, Scope.SYNTHESIZE, now=T0 + 1)

    assert [v.rate.remaining for v in passed if v.rate] == [4, 3, 2, 1, 0]
    assert refused.outcome is Outcome.RATE_LIMITED
    assert refused.rate is not None
    assert refused.retry_after_s == pytest.approx(11, abs=0.01)  # one token per 12 s
    assert refused.rate.headers()["Retry-After"] == "11"
    assert refused.rate.headers()["RateLimit-Remaining"] == "0"
    early = await guard.check(created.key, Scope.SYNTHESIZE, now=T0 + 11.9)
    assert early.outcome is Outcome.RATE_LIMITED
    assert (await guard.check(created.key, Scope.SYNTHESIZE, now=T0 + 12)).ok
    assert not (await guard.check(created.key, Scope.SYNTHESIZE, now=T0 + 12)).ok
    full = await guard.check(created.key, Scope.SYNTHESIZE, now=T0 + 600)
    assert full.rate is not None
    assert full.rate.remaining == 4


async def test_an_idle_bucket_vanishes_once_it_would_be_full(
    store: KeyStore, guard: Guard, redis_client: aioredis.Redis
) -> None:
    created = await store.create("k", [Scope.SYNTHESIZE])
    await guard.check(created.key, Scope.SYNTHESIZE)

    ttl_ms = await redis_client.pttl(BUCKET_KEY.format(id=created.info.id, bucket="requests"))

    assert 0 < ttl_ms <= 1000 + 1000  # one token's refill (1 s at 60/min) plus a margin


async def test_the_characters_bucket_is_charged_separately(store: KeyStore, guard: Guard) -> None:
    created = await store.create("k", [Scope.SYNTHESIZE], characters_per_minute=600)
    verdict = await guard.check(created.key, Scope.SYNTHESIZE, now=T0)
    assert verdict.characters_per_minute == 600
    key_id = created.info.id

    first = await guard.charge(key_id, cost=500, limit=600, now=T0)
    second = await guard.charge(key_id, cost=200, limit=600, now=T0)
    later = await guard.charge(key_id, cost=200, limit=600, now=T0 + 10)

    assert (first.outcome, first.remaining) == (Outcome.OK, 100)
    assert second.outcome is Outcome.RATE_LIMITED
    assert second.retry_after_s == pytest.approx(10)  # 100 more at 10 characters a second
    assert (later.outcome, later.remaining) == (Outcome.OK, 0)
    # The request bucket was not touched by the characters.
    again = await guard.check(created.key, Scope.SYNTHESIZE, now=T0)
    assert again.rate is not None
    assert again.rate.remaining == 58


async def test_a_cost_above_the_capacity_passes_only_on_a_full_bucket(guard: Guard) -> None:
    big = await guard.charge("abcdef012345", cost=150, limit=100, now=T0)
    small = await guard.charge("abcdef012345", cost=1, limit=100, now=T0 + 10)
    paid = await guard.charge("abcdef012345", cost=1, limit=100, now=T0 + 30.6)

    assert big.allowed
    assert not small.allowed
    # 50 owed, then 1 token, at 100 a minute: 30.6 s after the big charge.
    assert small.retry_after_s == pytest.approx(20.6, abs=0.01)
    assert paid.allowed


async def test_wrong_secrets_do_not_drain_the_keys_bucket(store: KeyStore, guard: Guard) -> None:
    created = await store.create("k", [Scope.SYNTHESIZE], requests_per_minute=2)

    for _ in range(10):
        bad = await guard.check(_wrong_secret(created.key), Scope.SYNTHESIZE, now=T0)
        assert bad.outcome is Outcome.BAD_SECRET

    assert (await guard.check(created.key, Scope.SYNTHESIZE, now=T0)).ok
    assert (await guard.check(created.key, Scope.SYNTHESIZE, now=T0)).ok


async def test_the_brake_stops_an_address_after_its_failures_even_with_a_good_key(
    store: KeyStore, redis_client: aioredis.Redis
) -> None:
    guard = Guard(redis_client, PEPPER, auth_settings(max_failures_per_minute=3))
    created = await store.create("k", [Scope.SYNTHESIZE])
    attacker, other = "203.0.113.9", "198.51.100.7"

    outcomes = [
        (await guard.check(raw, Scope.SYNTHESIZE, client=attacker)).outcome
        for raw in ("garbage", "sv_abcdef012345_" + "A" * 43, _wrong_secret(created.key))
    ]
    stopped = await guard.check(created.key, Scope.SYNTHESIZE, client=attacker)

    assert outcomes == [Outcome.MALFORMED, Outcome.UNKNOWN, Outcome.BAD_SECRET]
    assert stopped.outcome is Outcome.TOO_MANY_FAILURES
    assert 0 < stopped.retry_after_s <= 60
    assert await guard.brake.failures(attacker) == 3
    assert (await guard.check(created.key, Scope.SYNTHESIZE, client=other)).ok
    assert (await guard.check(created.key, Scope.SYNTHESIZE)).ok


async def test_successes_and_refusals_of_a_right_secret_do_not_count_as_failures(
    store: KeyStore, redis_client: aioredis.Redis
) -> None:
    guard = Guard(redis_client, PEPPER, auth_settings(max_failures_per_minute=1))
    created = await store.create("k", [Scope.ANALYTICS])
    client = "192.0.2.1"

    for scope in (Scope.ANALYTICS, Scope.BULK, Scope.ANALYTICS):
        await guard.check(created.key, scope, client=client)

    assert await guard.brake.failures(client) == 0


async def test_the_brake_opens_again_after_its_window(
    store: KeyStore, redis_client: aioredis.Redis
) -> None:
    guard = Guard(redis_client, PEPPER, auth_settings(max_failures_per_minute=1))
    guard.brake.window_ms = 200
    created = await store.create("k", [Scope.SYNTHESIZE])
    client = "192.0.2.2"
    await guard.check("nope", Scope.SYNTHESIZE, client=client)
    stopped = await guard.check(created.key, Scope.SYNTHESIZE, client=client)
    assert stopped.outcome is Outcome.TOO_MANY_FAILURES

    deadline = time.monotonic() + 5
    while not (await guard.check(created.key, Scope.SYNTHESIZE, client=client)).ok:
        assert time.monotonic() < deadline, "the brake never opened"


async def test_a_revocation_is_seen_at_once_by_another_process(
    fresh_redis: str, store: KeyStore
) -> None:
    async with aioredis.Redis.from_url(fresh_redis) as other_redis:
        other_store = KeyStore(other_redis, PEPPER)
        other_guard = Guard(other_redis, PEPPER, auth_settings())
        created = await store.create("shared", [Scope.STREAM])
        assert (await other_guard.check(created.key, Scope.STREAM)).ok
        assert [k.id for k in await other_store.list()] == [created.info.id]

        await store.revoke(created.info.id)

        assert (await other_guard.check(created.key, Scope.STREAM)).outcome is Outcome.REVOKED
        listed = await other_store.get(created.info.id)
        assert listed is not None
        assert listed.revoked_at is not None


async def test_the_bootstrap_key_is_an_admin_limited_like_any_key(
    redis_client: aioredis.Redis,
) -> None:
    settings = auth_settings(bootstrap_admin_key=BOOTSTRAP_KEY, requests_per_minute=len(Scope))
    guard = Guard(redis_client, PEPPER, settings)

    verdicts = [await guard.check(BOOTSTRAP_KEY, scope, now=T0) for scope in Scope]
    limited = await guard.check(BOOTSTRAP_KEY, Scope.ADMIN, now=T0)
    wrong = await guard.check(BOOTSTRAP_KEY[:-1] + "C", Scope.ADMIN, now=T0 + 60)

    assert all(v.ok for v in verdicts)
    assert verdicts[0].scopes == {Scope.ADMIN}
    assert limited.outcome is Outcome.RATE_LIMITED
    assert wrong.outcome is Outcome.BAD_SECRET


async def test_without_a_bootstrap_key_its_shape_is_just_an_unknown_key(guard: Guard) -> None:
    assert (await guard.check(BOOTSTRAP_KEY, Scope.ADMIN)).outcome is Outcome.UNKNOWN
