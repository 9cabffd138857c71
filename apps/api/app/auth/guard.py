"""The per-request key check and the key's request bucket, in one Redis round trip.

A Lua script reads the key's record, checks the presented secret, revocation, expiry and
scope, and takes tokens from the key's request bucket (capacity: its per-minute limit,
refilled at limit/60 per second, in `sv:ratelimit:<id>:<bucket>` with a PEXPIRE so idle
buckets vanish). Only a caller who holds a right secret learns that a key is revoked or
expired, and only such a caller spends tokens: a wrong secret never drains the key's bucket.

Timing: the script compares hex HMAC-SHA256 digests with Lua's `==`, which may stop at the
first differing byte. That leaks nothing useful. The attacker chooses the secret, not its
digest: without the pepper they cannot compute the digest of any guess, so they can neither
aim a guess at a digest prefix nor tell which guess would extend one; a prefix learnt by
timing does not help to find a preimage of the stored HMAC. The one place where a secret is
compared directly, the bootstrap admin key from the environment, uses `hmac.compare_digest`.

Brute force: failed authentications (malformed key, unknown id, wrong secret) are counted per
client address in a fixed window (`sv:authfail:<address>`); past the limit the script answers
`too_many_failures` before it looks at any key. Successes do not reset the count, so one
valid key cannot launder guesses at others.
"""

import hmac
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from app.auth.keys import hash_secret, parse_key
from app.auth.scopes import Scope
from app.auth.store import record_key
from app.redis_text import text

if TYPE_CHECKING:  # app.config imports app.auth.keys to check the bootstrap key
    from app.config import AuthSettings

BUCKET_KEY = "sv:ratelimit:{id}:{bucket}"
FAILURES_KEY = "sv:authfail:{address}"
REQUESTS = "requests"
CHARACTERS = "characters"
_BUCKET_NAME = re.compile(r"[a-z][a-z_]{0,31}")
_MAX_ADDRESS_LENGTH = 64

# take(bucket key, limit per minute, cost, now ms) -> {outcome, limit, remaining, reset ms,
# retry after ms}. A cost above the capacity passes on a full bucket and leaves a debt.
_TAKE = """
local function take(key, limit, cost, now)
  local rate = limit / 60000
  local state = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(state[1])
  local at = tonumber(state[2])
  if tokens == nil or at == nil then
    tokens = limit
    at = now
  end
  if now > at then
    tokens = tokens + (now - at) * rate
    at = now
  end
  tokens = math.min(limit, tokens)
  local need = math.min(cost, limit)
  if tokens < need then
    return {'rate_limited', limit, math.max(0, math.floor(tokens)),
            math.ceil((limit - tokens) / rate), math.ceil((need - tokens) / rate)}
  end
  tokens = tokens - cost
  local full_in = math.ceil((limit - tokens) / rate)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(at))
  redis.call('PEXPIRE', key, full_in + 1000)
  return {'ok', limit, math.max(0, math.floor(tokens)), full_in, 0}
end
"""

# KEYS: bucket; ARGV: limit, cost, now ms
_CHARGE = (
    _TAKE
    + """
return take(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))
"""
)

# KEYS: record, request bucket, failures
# ARGV: mode (key | trusted | reject), presented hash (reject: the outcome), now ms,
#       required scope, cost, default rpm, default cpm, max failures (0: off), window ms
# Returns {outcome, limit, remaining, reset ms, retry after ms, scopes, characters/minute}
_CHECK = (
    _TAKE
    + """
local now = tonumber(ARGV[3])
local max_failures = tonumber(ARGV[8])
if max_failures > 0 then
  local failures = tonumber(redis.call('GET', KEYS[3]) or '0')
  if failures >= max_failures then
    local ttl = redis.call('PTTL', KEYS[3])
    if ttl < 0 then ttl = tonumber(ARGV[9]) end
    return {'too_many_failures', 0, 0, 0, ttl, '', 0}
  end
end
local function refuse(outcome, counts)
  if counts and max_failures > 0 then
    redis.call('INCR', KEYS[3])
    if redis.call('PTTL', KEYS[3]) < 0 then redis.call('PEXPIRE', KEYS[3], ARGV[9]) end
  end
  return {outcome, 0, 0, 0, 0, '', 0}
end
if ARGV[1] == 'reject' then return refuse(ARGV[2], true) end
local scopes = 'admin'
local rpm = tonumber(ARGV[6])
local cpm = tonumber(ARGV[7])
if ARGV[1] == 'key' then
  local r = redis.call('HMGET', KEYS[1], 'hash', 'previous_hash', 'previous_valid_until',
                       'revoked_at', 'expires_at', 'scopes', 'requests_per_minute',
                       'characters_per_minute')
  if not r[1] then return refuse('unknown', true) end
  local previous = false
  if ARGV[2] ~= r[1] then
    if not r[2] or ARGV[2] ~= r[2] then return refuse('bad_secret', true) end
    previous = true
  end
  if r[4] then return refuse('revoked', false) end
  if r[5] and now >= tonumber(r[5]) * 1000 then return refuse('expired', false) end
  if previous and (not r[3] or now >= tonumber(r[3]) * 1000) then
    return refuse('rotated_out', false)
  end
  scopes = r[6] or ''
  if r[7] then rpm = tonumber(r[7]) end
  if r[8] then cpm = tonumber(r[8]) end
end
local allowed = false
for scope in string.gmatch(scopes, '[^,]+') do
  if scope == ARGV[4] or scope == 'admin' then allowed = true end
end
if not allowed then return {'wrong_scope', 0, 0, 0, 0, scopes, cpm} end
local decision = take(KEYS[2], rpm, tonumber(ARGV[5]), now)
decision[6] = scopes
decision[7] = cpm
return decision
"""
)


class Outcome(StrEnum):
    OK = "ok"
    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"
    BAD_SECRET = "bad_secret"
    ROTATED_OUT = "rotated_out"
    WRONG_SCOPE = "wrong_scope"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_FAILURES = "too_many_failures"


@dataclass(frozen=True)
class RateDecision:
    """One token-bucket answer: OK or RATE_LIMITED, with what the RateLimit-* headers say."""

    outcome: Outcome
    limit: int
    remaining: int
    # Seconds until the bucket is full again.
    reset_s: float
    retry_after_s: float = 0.0

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.OK

    def headers(self) -> dict[str, str]:
        """RateLimit-Limit/-Remaining/-Reset, and Retry-After when refused (whole seconds)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers


@dataclass(frozen=True)
class Verdict:
    """The guard's answer for one request."""

    outcome: Outcome
    key_id: str | None = None
    scopes: frozenset[Scope] = frozenset()
    # The request bucket's state: set for OK and RATE_LIMITED.
    rate: RateDecision | None = None
    retry_after_s: float = 0.0
    # The key's characters-per-minute limit, for `Guard.charge` once the body is parsed.
    characters_per_minute: int | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


def _decision(reply: list[Any]) -> RateDecision:
    outcome, limit, remaining, reset_ms, retry_ms = reply[:5]
    return RateDecision(
        outcome=Outcome(text(outcome)),
        limit=int(limit),
        remaining=int(remaining),
        reset_s=int(reset_ms) / 1000,
        retry_after_s=int(retry_ms) / 1000,
    )


class BadKeyBrake:
    """Failed authentications per client address in a fixed window (counted by the guard)."""

    def __init__(self, redis: Redis, max_failures: int, window_s: float = 60.0) -> None:
        self._redis = redis
        self.max_failures = max_failures
        self.window_ms = int(window_s * 1000)

    def key(self, address: str) -> str:
        return FAILURES_KEY.format(address=address[:_MAX_ADDRESS_LENGTH])

    async def failures(self, address: str) -> int:
        value = await self._redis.get(self.key(address))
        return 0 if value is None else int(value)

    async def reset(self, address: str) -> None:
        await self._redis.delete(self.key(address))


class Guard:
    """Checks a presented key for a scope and charges its buckets."""

    def __init__(
        self,
        redis: Redis,
        pepper: str,
        settings: "AuthSettings",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pepper = pepper
        self._settings = settings
        self._clock = clock
        self.brake = BadKeyBrake(redis, settings.max_failures_per_minute)
        bootstrap = settings.bootstrap_admin_key
        self._bootstrap = None if bootstrap is None else parse_key(bootstrap.get_secret_value())
        if bootstrap is not None and self._bootstrap is None:
            raise ValueError("bootstrap_admin_key is not an sv_<id>_<secret> key")
        self._check = redis.register_script(_CHECK)
        self._charge = redis.register_script(_CHARGE)

    def _now_ms(self, now: float | None) -> int:
        return int((self._clock() if now is None else now) * 1000)

    async def check(
        self,
        raw: str | None,
        required: Scope,
        *,
        client: str | None = None,
        cost: int = 1,
        now: float | None = None,
    ) -> Verdict:
        """Whether `raw` may act with scope `required` now; takes `cost` request tokens.

        `client` is the caller's address for the brute-force brake (None: not counted).
        """
        if cost < 0:
            raise ValueError("cost must not be negative")
        parsed = parse_key(raw)
        key_id = None if parsed is None else parsed.id
        mode, presented = "key", ""
        if parsed is None:
            mode, presented = "reject", Outcome.MALFORMED.value
        elif self._bootstrap is not None and parsed.id == self._bootstrap.id:
            matches = hmac.compare_digest(parsed.secret.encode(), self._bootstrap.secret.encode())
            mode, presented = ("trusted", "") if matches else ("reject", Outcome.BAD_SECRET.value)
        else:
            presented = hash_secret(parsed.secret, self._pepper)
        brake_on = client is not None and self.brake.max_failures > 0
        reply = await self._check(
            keys=[
                record_key(key_id or "-"),
                BUCKET_KEY.format(id=key_id or "-", bucket=REQUESTS),
                self.brake.key(client or "-"),
            ],
            args=[
                mode,
                presented,
                self._now_ms(now),
                required.value,
                cost,
                self._settings.requests_per_minute,
                self._settings.characters_per_minute,
                self.brake.max_failures if brake_on else 0,
                self.brake.window_ms,
            ],
        )
        outcome = Outcome(text(reply[0]))
        if outcome not in (Outcome.OK, Outcome.RATE_LIMITED, Outcome.WRONG_SCOPE):
            return Verdict(outcome=outcome, key_id=key_id, retry_after_s=int(reply[4]) / 1000)
        scopes = frozenset(Scope(s) for s in text(reply[5]).split(",") if s)
        cpm = int(reply[6])
        if outcome is Outcome.WRONG_SCOPE:
            return Verdict(outcome, key_id, scopes, characters_per_minute=cpm)
        rate = _decision(reply)
        return Verdict(outcome, key_id, scopes, rate, rate.retry_after_s, cpm)

    async def charge(
        self,
        key_id: str,
        cost: int,
        limit: int,
        *,
        bucket: str = CHARACTERS,
        now: float | None = None,
    ) -> RateDecision:
        """Takes `cost` from the key's `bucket` (capacity `limit` a minute), or refuses."""
        if cost < 0 or limit < 1:
            raise ValueError("cost must not be negative and limit must be at least 1")
        if not _BUCKET_NAME.fullmatch(bucket):
            raise ValueError(f"bad bucket name {bucket!r}")
        reply = await self._charge(
            keys=[BUCKET_KEY.format(id=key_id, bucket=bucket)],
            args=[limit, cost, self._now_ms(now)],
        )
        return _decision(reply)
