"""Faults around the cache and the limiter: Redis dying mid-request, upstream 429 Retry-After."""

import asyncio
from collections.abc import Callable

import httpx
import pytest

from app.config import Settings
from tests.asgi import app_client
from tests.conftest import DisposableRedis
from tests.fakes.elevenlabs_server import FakeElevenLabs

URL = "/api/v1/voice/synthesize"


async def test_redis_dying_mid_request_fails_no_request_and_caching_resumes(
    make_settings: Callable[..., Settings],
    elevenlabs: FakeElevenLabs,
    disposable_redis: DisposableRedis,
) -> None:
    elevenlabs.behavior.ttfb_s = 0.4
    settings = make_settings(
        redis={"url": disposable_redis.url},
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url},
        cache={"outage_pause_s": 0.2},
    )
    async with app_client(settings) as client:
        in_flight = asyncio.create_task(client.post(URL, json={"text": "The pool was redone."}))
        await asyncio.sleep(0.2)
        disposable_redis.kill()
        during = await in_flight
        after = await client.post(URL, json={"text": "The roof is two years old."})

        disposable_redis.restart()
        await asyncio.sleep(0.3)  # past the cache's pause after the failure
        first = await client.post(URL, json={"text": "The garage fits two cars."})
        second = await client.post(URL, json={"text": "The garage fits two cars."})
        ready = await client.get("/ready")

    assert during.status_code == 200
    assert during.headers["x-provider"] == "elevenlabs"
    assert after.status_code == 200
    assert after.headers["x-cache"] == "bypass"
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert ready.json()["status"] == "ready"


async def test_a_429_with_retry_after_makes_the_service_back_off_not_hammer(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 429
    elevenlabs.behavior.error_status_text = "too_many_concurrent_requests"
    # Longer than the 2 s budget: not worth waiting for (a shorter one is waited out and
    # retried: tests/tts/test_fallback.py).
    elevenlabs.behavior.retry_after_s = 2.5
    elevenlabs.behavior.fail_first_n = 1

    first = await upstream_client.post(URL, json={"text": "Is Tuesday at noon all right?"})
    during = [
        await upstream_client.post(URL, json={"text": f"Open house number {n} is on Sunday."})
        for n in range(3)
    ]
    upstream_calls_during = elevenlabs.stats().total_requests
    await asyncio.sleep(2.6)
    after = await upstream_client.post(URL, json={"text": "The listing went live today."})

    assert first.status_code == 200
    assert first.headers["x-provider"] == "espeak"  # no second voice tried on a 429
    assert all(r.status_code == 200 and r.headers["x-provider"] == "espeak" for r in during)
    assert upstream_calls_during == 1
    assert after.headers["x-provider"] == "elevenlabs"


async def test_performance_shows_cache_billing_latency_and_limiter_use(
    upstream_client: httpx.AsyncClient,
) -> None:
    for text in ("Hello and welcome.", "Hello and welcome.", "The kitchen is brand new."):
        await upstream_client.post(URL, json={"text": text})
    await asyncio.sleep(0.1)  # recording runs in the background

    response = await upstream_client.get("/api/v1/voice/performance")

    assert response.status_code == 200
    body = response.json()
    assert set(body["windows"]) == {"5m", "1h", "24h"}
    five = body["windows"]["5m"]
    assert five["requests"] == 3
    assert five["cache"]["hit_rate"] == pytest.approx(1 / 3, abs=0.01)
    assert five["cache"]["requests_hit"] == 1
    assert five["characters_billed"] > 0
    assert five["characters_saved"] == -(-len("Hello and welcome.") // 2)
    assert five["latency"]["p50_ms"] is not None
    assert five["latency"]["p99_ms"] >= five["latency"]["p50_ms"]
    assert five["limiter"]["acquisitions"] == 2
    assert five["limiter"]["peak_in_use"] >= 1
    assert five["cache"]["bytes_served"] > 0
    assert body["now"]["cache"]["available"] is True
    assert body["now"]["cache"]["evicted_keys"] == 0
    assert body["now"]["limiter"]["slots"] == 50
    assert body["now"]["limiter"]["in_use"] == 0
    assert body["now"]["limiter"]["upstream_plan_limit"] == 10
