"""The pepper keying every secret's HMAC: configured, or made once per install in Redis."""

import secrets
from typing import TYPE_CHECKING

from redis.asyncio import Redis

if TYPE_CHECKING:  # app.config imports app.auth.keys to check the bootstrap key
    from app.config import AuthSettings

PEPPER_KEY = "sv:auth:pepper"


async def load_pepper(redis: Redis, settings: "AuthSettings") -> str:
    """The configured pepper, else the install's own (SET NX: every process gets the same).

    A pepper kept next to the hashes protects them less than one from the environment:
    production should set AUTH__PEPPER. Changing the pepper invalidates every key.
    """
    if settings.pepper is not None:
        return settings.pepper.get_secret_value()
    await redis.set(PEPPER_KEY, secrets.token_urlsafe(32), nx=True)
    value = await redis.get(PEPPER_KEY)
    if value is None:
        raise RuntimeError(f"{PEPPER_KEY} vanished right after it was set")
    return value.decode() if isinstance(value, bytes) else str(value)
