"""A key store and a guard over the test's emptied Redis, sharing one pepper."""

from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from app.auth import Guard, KeyStore
from app.config import AuthSettings

PEPPER = "test-pepper-0123456789"
# A bootstrap key of the right shape; no record of it exists in Redis.
BOOTSTRAP_KEY = "sv_b00tstrapadm_" + "B" * 43


@pytest.fixture
def store(redis_client: aioredis.Redis) -> KeyStore:
    return KeyStore(redis_client, PEPPER)


def auth_settings(**fields: Any) -> AuthSettings:
    return AuthSettings(pepper=SecretStr(PEPPER), **fields)


@pytest.fixture
def guard(redis_client: aioredis.Redis) -> Guard:
    return Guard(redis_client, PEPPER, auth_settings(requests_per_minute=60))
