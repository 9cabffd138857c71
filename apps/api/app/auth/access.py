"""Who is calling: the key a request or WebSocket presents, checked for a scope (DESIGN §8).

Keys are read from `Authorization: Bearer`, `X-API-Key` or, for browsers on the WebSocket,
`?token=`. Keys are required once any exists: a bootstrap admin key in the settings or one in
the state Redis (checked at most once a second, so the first `make keys create` locks the
service within a second). Until then the service is open, which `app.serve` allows on a
loopback address only. `AUTH__ENABLED=false` turns keys off (loopback only too).

When the state Redis cannot answer, keys cannot be checked. A key this process accepted within
`AUTH__OUTAGE_GRACE_S` is still admitted, with the scopes it had (unthrottled: the budgets
live in Redis), so calls under way go on speaking; any other key is refused with 503 (fail
closed), or admitted unchecked with `AUTH__FAIL_OPEN=true`, for operators who prefer
availability to control. A revocation made during the outage reaches a process when its
pub/sub channel is back.
"""

import logging
import time
from contextlib import suppress
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from app.auth.errors import (
    AuthUnavailableError,
    InsufficientScopeError,
    InvalidKeyError,
    MissingKeyError,
    RateLimitedError,
)
from app.auth.guard import CHARACTERS, REQUESTS, Guard, Outcome, RateDecision, Verdict
from app.auth.keys import hash_secret, parse_key
from app.auth.local import KnownKey, LocalKeys
from app.auth.pepper import load_pepper
from app.auth.scopes import Scope
from app.auth.store import CHANGED, KEY_IDS, KEY_RECORD, KeyStore
from app.config import AuthSettings
from app.notifications import Notifier
from app.observability.middleware import RESPONSE_HEADERS

logger = logging.getLogger(__name__)

_KEYS_EXIST_TTL_S = 1.0
KEY_RECORD_PREFIX = KEY_RECORD.removesuffix("{id}")

_INVALID = {
    Outcome.MALFORMED: "The API key is not of the form sv_<id>_<secret>.",
    Outcome.UNKNOWN: "The API key is not valid.",
    Outcome.BAD_SECRET: "The API key is not valid.",
    Outcome.REVOKED: "The API key was revoked.",
    Outcome.EXPIRED: "The API key has expired.",
    Outcome.ROTATED_OUT: "The API key was rotated and its grace period is over.",
}


@dataclass(frozen=True, slots=True)
class Caller:
    """An admitted caller: its key id (None when the service is open) and its limits."""

    key_id: str | None
    characters_per_minute: int | None = None
    checked: bool = True  # False: admitted unchecked (open service, or failing open)


OPEN = Caller(key_id=None, checked=False)


def presented_key(conn: HTTPConnection, allow_query: bool) -> str | None:
    authorization = conn.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else authorization
    key = conn.headers.get("x-api-key")
    if key is None and allow_query:
        key = conn.query_params.get("token")
    return key


class Access:
    """Admits callers for a scope and charges their buckets; one per process."""

    def __init__(self, redis: Redis, settings: AuthSettings, events: Notifier) -> None:
        self._redis = redis
        self._settings = settings
        self._events = events
        self._guard: Guard | None = None
        self._pepper: str | None = None
        self._keys_exist = settings.bootstrap_admin_key is not None
        self._keys_checked_at = float("-inf")
        self._local = LocalKeys(settings.cache_s, settings.lease_fraction, settings.lease_s)
        self._remembered_on = -1  # the subscription the remembered keys were learnt under
        events.on(CHANGED, self._changed)

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    async def admit(self, conn: HTTPConnection, scope: Scope, allow_query: bool = False) -> Caller:
        """The caller of `conn` if its key holds `scope`; raises the 401/403/429/503 if not."""
        if not self._settings.enabled:
            return OPEN
        raw = presented_key(conn, allow_query)
        parsed = None if raw is None else parse_key(raw)
        digest: str | None = None
        try:
            if raw is None:
                if await self._keys_required():
                    raise MissingKeyError()
                return OPEN
            guard = await self._loaded_guard()
            digest = None if parsed is None else hash_secret(parsed.secret, self._pepper or "")
            remembering = self._remembering()
            if parsed is not None and digest is not None and remembering:
                known = self._local.known(parsed.id, digest, scope)
                if known is not None:
                    return await self._admit_known(conn, parsed.id, known)
            asked_at = time.monotonic()
            client = conn.client.host if conn.client is not None else None
            verdict = await guard.check(raw, scope, client=client)
        except (RedisError, OSError) as exc:
            if parsed is not None and digest is not None:
                grace = self._settings.outage_grace_s
                known = self._local.last_good(parsed.id, digest, scope, grace)
                if known is not None:  # accepted lately: live callers keep speaking
                    return Caller(parsed.id, known.characters_per_minute, checked=False)
            return self._without_redis(exc)
        if not verdict.ok:  # the key's id only: a secret never reaches a log line
            logger.info("API key %s refused: %s", verdict.key_id or "-", verdict.outcome.value)
        caller = _judged(verdict, scope)
        if verdict.rate is not None:
            setattr(conn.state, RESPONSE_HEADERS, verdict.rate.headers())
        if parsed is not None and digest is not None and verdict.rate is not None:
            entry = KnownKey(
                digest, verdict.scopes, verdict.rate.limit, verdict.characters_per_minute, asked_at
            )
            self._local.remember(parsed.id, entry, asked_at, use=remembering)
        return caller

    async def _admit_known(self, conn: HTTPConnection, key_id: str, known: KnownKey) -> Caller:
        guard = await self._loaded_guard()
        limit = known.requests_per_minute

        async def take(tokens: int) -> RateDecision:
            return await guard.charge(key_id, tokens, limit, bucket=REQUESTS)

        decision = await self._local.spend(key_id, REQUESTS, 1, limit, take)
        if not decision.allowed:
            raise RateLimitedError("Requests per minute for this key exceeded.", decision.headers())
        setattr(conn.state, RESPONSE_HEADERS, decision.headers())
        return Caller(key_id, known.characters_per_minute)

    async def charge_characters(
        self, conn: HTTPConnection, caller: Caller, characters: int
    ) -> None:
        """Takes `characters` from the key's characters bucket, or raises 429."""
        if caller.key_id is None or not caller.checked or characters <= 0:
            return
        key_id = caller.key_id
        limit = caller.characters_per_minute or self._settings.characters_per_minute
        try:
            guard = await self._loaded_guard()

            async def take(tokens: int) -> RateDecision:
                return await guard.charge(key_id, tokens, limit, bucket=CHARACTERS)

            decision = await self._local.spend(key_id, CHARACTERS, characters, limit, take)
        except (RedisError, OSError) as exc:
            self._without_redis(exc)
            return
        if not decision.allowed:
            raise RateLimitedError(
                f"Characters per minute for this key exceeded ({limit}).", decision.headers()
            )

    async def store(self) -> KeyStore:
        """The key store, keyed with this install's pepper (admin routes)."""
        await self._loaded_guard()
        assert self._pepper is not None
        return KeyStore(self._redis, self._pepper)

    @property
    def rotation_grace_s(self) -> float:
        return float(self._settings.rotation_grace_s)

    def _remembering(self) -> bool:
        """Whether accepted keys may be remembered: only while changes would be heard."""
        if self._settings.cache_s <= 0 or not self._events.connected.is_set():
            return False
        if self._events.connections != self._remembered_on:
            self._local.forget_all()  # announcements may have been missed in between
            self._remembered_on = self._events.connections
        return True

    def _changed(self, data: bytes) -> None:
        self._local.forget(data.decode(errors="replace").removeprefix(KEY_RECORD_PREFIX))

    async def _keys_required(self) -> bool:
        if self._keys_exist:
            return True  # keys never stop being required in a process once seen
        now = time.monotonic()
        if now - self._keys_checked_at >= _KEYS_EXIST_TTL_S:
            self._keys_checked_at = now
            # Unreachable, the state Redis cannot have given this process a key to require:
            # an open service (loopback only) stays open.
            with suppress(RedisError, OSError):
                self._keys_exist = bool(await self._redis.scard(KEY_IDS))
        return self._keys_exist

    async def _loaded_guard(self) -> Guard:
        if self._guard is None:
            self._pepper = await load_pepper(self._redis, self._settings)
            self._guard = Guard(self._redis, self._pepper, self._settings)
        return self._guard

    def _without_redis(self, exc: Exception) -> Caller:
        if not self._settings.fail_open:
            raise AuthUnavailableError() from exc
        logger.warning("state Redis unreachable: a caller admitted unchecked (AUTH__FAIL_OPEN)")
        return OPEN


def _judged(verdict: Verdict, scope: Scope) -> Caller:
    if verdict.ok:
        return Caller(verdict.key_id, verdict.characters_per_minute)
    outcome = verdict.outcome
    if outcome is Outcome.WRONG_SCOPE:
        raise InsufficientScopeError(scope)
    if outcome is Outcome.RATE_LIMITED:
        assert verdict.rate is not None
        raise RateLimitedError("Requests per minute for this key exceeded.", verdict.rate.headers())
    if outcome is Outcome.TOO_MANY_FAILURES:
        retry = RateDecision(outcome, 0, 0, verdict.retry_after_s, verdict.retry_after_s)
        raise RateLimitedError(
            "Too many requests with invalid API keys from this address.",
            {"Retry-After": retry.headers()["Retry-After"]},
            code="too_many_failed_attempts",
        )
    raise InvalidKeyError(_INVALID.get(outcome, "The API key is not valid."))
