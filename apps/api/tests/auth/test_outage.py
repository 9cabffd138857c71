"""The state Redis away: keys accepted lately keep speaking, others get the configured answer."""

import asyncio

import httpx
import pytest

from app.config import Settings
from tests.asgi import app_client
from tests.auth.conftest import BOOTSTRAP_KEY, PEPPER
from tests.conftest import DisposableRedis

SYNTHESIZE = "/api/v1/voice/synthesize"
TEXT = {"text": "The open house starts at noon."}

pytestmark = pytest.mark.integration


def _settings(url: str, **auth: object) -> Settings:
    return Settings(
        elevenlabs={"api_key": None},  # type: ignore[arg-type]
        redis={"url": url, "cache_url": None, "socket_timeout_s": 0.3},  # type: ignore[arg-type]
        monitoring={"webhook_url": None, "api_key": None},  # type: ignore[arg-type]
        auth={"pepper": PEPPER, "bootstrap_admin_key": BOOTSTRAP_KEY, **auth},  # type: ignore[arg-type]
    )


async def _new_key(client: httpx.AsyncClient) -> str:
    created = await client.post(
        "/api/v1/keys",
        json={"name": "bridge", "scopes": ["synthesize"]},
        headers={"X-API-Key": BOOTSTRAP_KEY},
    )
    return str(created.json()["key"])


async def test_a_key_accepted_before_the_outage_still_speaks_and_a_new_one_gets_503(
    disposable_redis: DisposableRedis,
) -> None:
    async with app_client(_settings(disposable_redis.url)) as client:
        known, unseen = await _new_key(client), await _new_key(client)
        assert (await client.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": known})).is_success
        disposable_redis.kill()
        await asyncio.sleep(0.5)

        during_known = await client.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": known})
        during_unseen = await client.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": unseen})

    assert during_known.status_code == 200
    assert during_unseen.status_code == 503
    assert during_unseen.json()["error"]["code"] == "auth_unavailable"
    assert during_unseen.headers["retry-after"] == "1"


async def test_failing_open_admits_unchecked_during_the_outage(
    disposable_redis: DisposableRedis,
) -> None:
    async with app_client(_settings(disposable_redis.url, fail_open=True)) as client:
        unseen = await _new_key(client)
        disposable_redis.kill()
        await asyncio.sleep(0.5)
        during = await client.post(SYNTHESIZE, json=TEXT, headers={"X-API-Key": unseen})
        no_key = await client.post(SYNTHESIZE, json=TEXT)

    assert during.status_code == 200
    assert no_key.status_code == 401  # keys are required: a key must still be presented
