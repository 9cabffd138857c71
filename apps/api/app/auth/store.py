"""API keys in the state Redis: one hash per key (secret hashes only) and a set of ids."""

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from redis.asyncio import Redis

from app.auth.keys import format_key, hash_secret, is_key_id, new_key, new_secret
from app.auth.models import CreatedKey, KeyInfo
from app.auth.scopes import Scope, format_scopes
from app.errors import AppError, NotFoundError, ValidationFailedError
from app.redis_text import text

KEY_RECORD = "sv:apikey:{id}"
KEY_IDS = "sv:apikeys"
# Pub/sub channel: a key's record changed (rotated, revoked); the message is its record key.
CHANGED = "sv:auth:changed"
MAX_NAME_LENGTH = 100

# KEYS: record, ids; ARGV: id, then field/value pairs. 0 when the id is taken.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: record, channel; ARGV: new hash, previous valid until. 0 unknown, -1 revoked,
# 1 rotated (and announced on the channel).
_ROTATE = """
local current = redis.call('HMGET', KEYS[1], 'hash', 'revoked_at')
if not current[1] then return 0 end
if current[2] then return -1 end
redis.call('HSET', KEYS[1], 'hash', ARGV[1], 'previous_hash', current[1],
           'previous_valid_until', ARGV[2])
redis.call('PUBLISH', KEYS[2], KEYS[1])
return 1
"""

# KEYS: record, channel; ARGV: now. Revoking twice keeps the first time. 0 when unknown.
_REVOKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSETNX', KEYS[1], 'revoked_at', ARGV[1])
redis.call('PUBLISH', KEYS[2], KEYS[1])
return 1
"""


class UnknownKeyError(NotFoundError):
    code = "api_key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"No API key {key_id!r}.", details={"key_id": key_id})


class RevokedKeyError(AppError):
    status_code = 409
    code = "api_key_revoked"

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"API key {key_id!r} is revoked and cannot be rotated.", details={"key_id": key_id}
        )


def record_key(key_id: str) -> str:
    return KEY_RECORD.format(id=key_id)


def _optional_float(fields: Mapping[str, str], name: str) -> float | None:
    value = fields.get(name)
    return None if value is None else float(value)


def _optional_int(fields: Mapping[str, str], name: str) -> int | None:
    value = fields.get(name)
    return None if value is None else int(value)


def _decoded(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {text(k): text(v) for k, v in raw.items()}


def _info(fields: Mapping[str, str]) -> KeyInfo | None:
    if "id" not in fields:
        return None
    return KeyInfo(
        id=fields["id"],
        name=fields.get("name", ""),
        scopes=tuple(Scope(s) for s in fields.get("scopes", "").split(",") if s),
        created_at=float(fields.get("created_at", "0")),
        expires_at=_optional_float(fields, "expires_at"),
        revoked_at=_optional_float(fields, "revoked_at"),
        previous_valid_until=_optional_float(fields, "previous_valid_until"),
        requests_per_minute=_optional_int(fields, "requests_per_minute"),
        characters_per_minute=_optional_int(fields, "characters_per_minute"),
    )


def _positive(name: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValidationFailedError(f"{name} must be above 0", details={name: value})


class KeyStore:
    """Creates, lists, rotates and revokes keys; the guard reads the same records."""

    def __init__(self, redis: Redis, pepper: str, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._pepper = pepper
        self._clock = clock
        self._create = redis.register_script(_CREATE)
        self._rotate = redis.register_script(_ROTATE)
        self._revoke = redis.register_script(_REVOKE)

    async def create(
        self,
        name: str,
        scopes: Iterable[Scope],
        expires_in_s: float | None = None,
        requests_per_minute: int | None = None,
        characters_per_minute: int | None = None,
    ) -> CreatedKey:
        """A new key; its secret is in the result only, Redis keeps its HMAC."""
        scope_set = frozenset(Scope(s) for s in scopes)
        name = name.strip()
        if not scope_set:
            raise ValidationFailedError("a key needs at least one scope")
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValidationFailedError(f"a key's name has 1 to {MAX_NAME_LENGTH} characters")
        _positive("expires_in_s", expires_in_s)
        _positive("requests_per_minute", requests_per_minute)
        _positive("characters_per_minute", characters_per_minute)
        now = self._clock()
        optional = {
            "expires_at": None if expires_in_s is None else now + expires_in_s,
            "requests_per_minute": requests_per_minute,
            "characters_per_minute": characters_per_minute,
        }
        while True:
            key_id, secret, raw = new_key()
            fields = {
                "id": key_id,
                "name": name,
                "scopes": format_scopes(scope_set),
                "created_at": repr(now),
                "hash": hash_secret(secret, self._pepper),
                **{k: repr(v) for k, v in optional.items() if v is not None},
            }
            args = [key_id, *(item for pair in fields.items() for item in pair)]
            if await self._create(keys=[record_key(key_id), KEY_IDS], args=args):
                break
        info = _info(fields)
        assert info is not None
        return CreatedKey(info=info, key=raw)

    async def get(self, key_id: str) -> KeyInfo | None:
        if not is_key_id(key_id):
            return None
        return _info(_decoded(await self._redis.hgetall(record_key(key_id))))

    async def require(self, key_id: str) -> KeyInfo:
        info = await self.get(key_id)
        if info is None:
            raise UnknownKeyError(key_id)
        return info

    async def list(self) -> list[KeyInfo]:
        """Every key, oldest first."""
        ids = sorted(text(m) for m in await self._redis.smembers(KEY_IDS))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for key_id in ids:
                pipe.hgetall(record_key(key_id))
            records = await pipe.execute()
        infos = [info for raw in records if (info := _info(_decoded(raw))) is not None]
        return sorted(infos, key=lambda i: (i.created_at, i.id))

    async def rotate(self, key_id: str, grace_s: float) -> CreatedKey:
        """A new secret for the key; the current one keeps working for `grace_s` seconds.

        Only one previous secret is kept: rotating again within the grace ends the older one.
        """
        if grace_s < 0:
            raise ValidationFailedError("grace_s must not be negative")
        if not is_key_id(key_id):
            raise UnknownKeyError(key_id)
        secret = new_secret()
        valid_until = self._clock() + grace_s
        done = await self._rotate(
            keys=[record_key(key_id), CHANGED],
            args=[hash_secret(secret, self._pepper), repr(valid_until)],
        )
        if done == 0:
            raise UnknownKeyError(key_id)
        if done == -1:
            raise RevokedKeyError(key_id)
        return CreatedKey(info=await self.require(key_id), key=format_key(key_id, secret))

    async def revoke(self, key_id: str) -> KeyInfo:
        """Ends the key at once for every process (they drop what they knew of it on CHANGED)."""
        if not is_key_id(key_id) or not await self._revoke(
            keys=[record_key(key_id), CHANGED], args=[repr(self._clock())]
        ):
            raise UnknownKeyError(key_id)
        return await self.require(key_id)
