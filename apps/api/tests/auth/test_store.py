"""The key store: only hashes in Redis, listing without them, rotation and revocation."""

import json

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from app.auth import KeyStore, Scope, load_pepper
from app.auth.keys import hash_secret, parse_key
from app.auth.models import KeyStatus
from app.auth.store import KEY_IDS, RevokedKeyError, UnknownKeyError
from app.config import AuthSettings
from app.errors import ValidationFailedError
from tests.auth.conftest import PEPPER


async def _everything_stored(redis_client: aioredis.Redis) -> str:
    dump = []
    async for name in redis_client.scan_iter():
        kind = await redis_client.type(name)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        value = (
            await redis_client.hgetall(name)
            if kind == "hash"
            else await redis_client.smembers(name)
            if kind == "set"
            else await redis_client.get(name)
        )
        dump.append(f"{name!r} {value!r}")
    return "\n".join(dump)


async def test_a_created_key_is_stored_as_its_hmac_and_never_as_its_secret(
    store: KeyStore, redis_client: aioredis.Redis
) -> None:
    created = await store.create("frontend", [Scope.SYNTHESIZE, Scope.STREAM])
    parsed = parse_key(created.key)
    assert parsed is not None

    stored = await _everything_stored(redis_client)

    assert parsed.secret not in stored
    assert hash_secret(parsed.secret, PEPPER) in stored
    assert await redis_client.sismember(KEY_IDS, parsed.id)
    assert created.info.id == parsed.id
    assert created.info.scopes == (Scope.STREAM, Scope.SYNTHESIZE)
    assert created.key not in repr(created)


async def test_the_listing_is_json_without_any_secret_or_hash(store: KeyStore) -> None:
    first = await store.create("one", [Scope.ADMIN], requests_per_minute=5)
    second = await store.create("two", [Scope.BULK], expires_in_s=60, characters_per_minute=9)
    rotated = await store.rotate(second.info.id, grace_s=60)

    listed = await store.list()
    text = json.dumps([k.model_dump(mode="json") for k in listed])

    assert [k.id for k in listed] == [first.info.id, second.info.id]
    assert "hash" not in text
    for raw in (first.key, second.key, rotated.key):
        parsed = parse_key(raw)
        assert parsed is not None
        assert parsed.secret not in text
        assert hash_secret(parsed.secret, PEPPER) not in text
    assert listed[0].requests_per_minute == 5
    assert listed[1].characters_per_minute == 9
    assert listed[1].expires_at is not None
    assert listed[1].previous_valid_until is not None


async def test_get_answers_none_for_unknown_or_junk_ids(store: KeyStore) -> None:
    assert await store.get("abcdef012345") is None
    assert await store.get("../../etc") is None
    assert await store.get("") is None


async def test_revoking_marks_the_key_and_keeps_the_first_revocation_time(
    redis_client: aioredis.Redis,
) -> None:
    now = [1000.0]
    store = KeyStore(redis_client, PEPPER, clock=lambda: now[0])
    created = await store.create("k", [Scope.SYNTHESIZE])

    first = await store.revoke(created.info.id)
    now[0] = 2000.0
    again = await store.revoke(created.info.id)

    assert first.revoked_at == again.revoked_at == 1000.0
    assert again.status(now[0]) is KeyStatus.REVOKED


async def test_unknown_ids_cannot_be_rotated_or_revoked(store: KeyStore) -> None:
    with pytest.raises(UnknownKeyError):
        await store.revoke("abcdef012345")
    with pytest.raises(UnknownKeyError):
        await store.rotate("abcdef012345", grace_s=10)
    assert await store.list() == []


async def test_a_revoked_key_cannot_be_rotated_back_to_life(store: KeyStore) -> None:
    created = await store.create("k", [Scope.SYNTHESIZE])
    await store.revoke(created.info.id)

    with pytest.raises(RevokedKeyError):
        await store.rotate(created.info.id, grace_s=10)


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "k", "scopes": []},
        {"name": "  ", "scopes": [Scope.BULK]},
        {"name": "x" * 101, "scopes": [Scope.BULK]},
        {"name": "k", "scopes": [Scope.BULK], "expires_in_s": 0},
        {"name": "k", "scopes": [Scope.BULK], "requests_per_minute": 0},
        {"name": "k", "scopes": [Scope.BULK], "characters_per_minute": -1},
    ],
)
async def test_nonsense_keys_are_refused(store: KeyStore, arguments: dict[str, object]) -> None:
    with pytest.raises(ValidationFailedError):
        await store.create(**arguments)  # type: ignore[arg-type]
    assert await store.list() == []


async def test_without_a_configured_pepper_every_process_gets_the_same_one(
    redis_client: aioredis.Redis, fresh_redis: str
) -> None:
    async with aioredis.Redis.from_url(fresh_redis) as other:
        first = await load_pepper(redis_client, AuthSettings())
        second = await load_pepper(other, AuthSettings())

    assert first == second
    assert len(first) >= 32
    assert await load_pepper(redis_client, AuthSettings(pepper=SecretStr(PEPPER))) == PEPPER
