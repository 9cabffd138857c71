"""GET /api/v1/voice/analytics/summary, /trends and /agents/{id}, from real requests."""

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.analytics.events import EVENTS
from tests.api.test_bad_input import assert_error_body
from tests.asgi import app_client
from tests.conftest import SettingsFactory

ANALYTICS = "/api/v1/voice/analytics"
AGENTS = "/api/v1/voice/agents"
SYNTHESIZE = "/api/v1/voice/synthesize"

AGENT_TEXTS = [
    "Hola, bienvenido a la casa de la calle Maple.",
    "La cocina tiene mucha luz por la mañana.",
    "El jardín es perfecto para la familia.",
]
CASUAL_TEXTS = ["Hey there, thanks for stopping by today.", "Grab a coffee while you look around."]


async def _figures_once(client: httpx.AsyncClient, requests: int) -> dict[str, Any]:
    """The summary once `requests` requests are in its figures (written about once a second)."""
    deadline = time.monotonic() + 10
    while True:
        summary: dict[str, Any] = (await client.get(f"{ANALYTICS}/summary")).json()
        if summary["windows"]["5m"]["requests"] >= requests:
            return summary
        assert time.monotonic() < deadline, f"figures never reached {requests} requests"
        await asyncio.sleep(0.2)


@pytest.fixture
async def traffic(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Agent maple_01 (friendly, es): 3 new phrases and a repeat; casual en: 2 new phrases."""
    spec = {"display_name": "Maple", "persona": "friendly", "languages": ["es"]}
    assert (await client.put(f"{AGENTS}/maple_01", json=spec)).status_code == 201
    for text in AGENT_TEXTS:
        body = {"text": text, "voice_agent_id": "maple_01", "language": "es"}
        response = await client.post(SYNTHESIZE, json=body)
        assert response.headers["x-cache"] == "miss"
    for text in CASUAL_TEXTS:
        body = {"text": text, "persona": "casual", "language": "en"}
        assert (await client.post(SYNTHESIZE, json=body)).status_code == 200
    repeat = {"text": AGENT_TEXTS[0], "voice_agent_id": "maple_01", "language": "es"}
    assert (await client.post(SYNTHESIZE, json=repeat)).headers["x-cache"] == "hit"
    await _figures_once(client, 6)
    return client


async def test_the_summary_counts_requests_cache_hits_and_splits_the_hour_by_dimension(
    traffic: httpx.AsyncClient,
) -> None:
    summary = (await traffic.get(f"{ANALYTICS}/summary")).json()

    for window in ("5m", "1h", "24h"):
        figures = summary["windows"][window]
        assert figures["requests"] == 6
        assert figures["cache_hit_rate"] == round(1 / 6, 4)
        assert figures["error_rate"] == 0
        assert figures["fallback_rate"] == 0
        assert figures["latency"]["p95_ms"] > 0
        assert figures["first_audio"]["p50_ms"] is not None
        # The offline engine bills nothing, so a hit saves nothing.
        assert (figures["characters_billed"], figures["characters_saved"]) == (0, 0)
        assert 0 < figures["quality_average"] <= 1
    breakdown = summary["breakdown"]
    assert breakdown["window"] == "1h"
    assert {p: f["requests"] for p, f in breakdown["persona"].items()} == {
        "friendly": 4,
        "casual": 2,
    }
    assert {lang: f["requests"] for lang, f in breakdown["language"].items()} == {"es": 4, "en": 2}
    assert {p: f["requests"] for p, f in breakdown["provider"].items()} == {"espeak": 6}
    assert breakdown["persona"]["friendly"]["cache_hit_rate"] == 0.25
    assert breakdown["persona"]["casual"]["cache_hit_rate"] == 0


async def test_an_empty_service_has_null_figures_not_errors(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ANALYTICS}/summary")

    assert response.status_code == 200
    figures = response.json()["windows"]["1h"]
    assert figures["requests"] == 0
    assert figures["latency"] == {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    assert figures["cache_hit_rate"] is None
    assert figures["error_rate"] is None
    assert figures["quality_average"] is None
    assert response.json()["breakdown"]["persona"] == {}


async def test_trends_are_buckets_of_the_window_and_a_filter_selects_one_scope(
    traffic: httpx.AsyncClient,
) -> None:
    trends = (await traffic.get(f"{ANALYTICS}/trends")).json()

    assert (trends["window"], trends["step"], trends["scope"]) == ("1h", "5m", None)
    assert len(trends["buckets"]) in (12, 13)
    assert sum(b["requests"] for b in trends["buckets"]) == 6
    busy = [b for b in trends["buckets"] if b["requests"]]
    assert all(b["latency_p95_ms"] > 0 and b["error_rate"] == 0 for b in busy)
    empty = [b for b in trends["buckets"] if not b["requests"]]
    assert all(b["cache_hit_rate"] is None and b["quality_average"] is None for b in empty)
    starts = [b["start"] for b in trends["buckets"]]
    assert starts == sorted(starts)

    by_minute = (await traffic.get(f"{ANALYTICS}/trends?window=1h&step=1m")).json()
    assert len(by_minute["buckets"]) == 60

    casual = (await traffic.get(f"{ANALYTICS}/trends?persona=casual&window=6h&step=1h")).json()
    assert casual["scope"] == {"dimension": "persona", "value": "casual"}
    assert sum(b["requests"] for b in casual["buckets"]) == 2

    agent = (await traffic.get(f"{ANALYTICS}/trends?voice_agent_id=maple_01&step=15m")).json()
    assert sum(b["requests"] for b in agent["buckets"]) == 4
    busy = [b for b in agent["buckets"] if b["requests"]]
    if len(busy) == 1:  # unless the requests straddled a quarter hour
        assert busy[0]["cache_hit_rate"] == 0.25


@pytest.mark.parametrize(
    "query",
    ["window=2h", "step=10m", "window=", "window=forever&step=1h", "persona=grumpy"],
)
async def test_a_bad_window_step_or_filter_is_a_422_saying_which(
    client: httpx.AsyncClient, query: str
) -> None:
    error = assert_error_body(
        await client.get(f"{ANALYTICS}/trends?{query}"), 422, "validation_error"
    )
    assert query.split("=")[0] in str(error["details"])


async def test_two_filters_at_once_are_a_422(client: httpx.AsyncClient) -> None:
    error = assert_error_body(
        await client.get(f"{ANALYTICS}/trends?persona=casual&language=en"), 422, "validation_error"
    )
    assert "one of" in error["message"]


async def test_an_agent_has_its_figures_and_plain_recommendations(
    traffic: httpx.AsyncClient,
) -> None:
    response = await traffic.get(f"{ANALYTICS}/agents/maple_01")

    assert response.status_code == 200
    body = response.json()
    assert body["voice_agent_id"] == "maple_01"
    for window in ("1h", "24h"):
        assert body["windows"][window]["requests"] == 4
        assert body["windows"][window]["cache_hit_rate"] == 0.25
        assert body["windows"][window]["error_rate"] == 0
    advice = " ".join(body["recommendations"])
    assert "POST /streaming/pregenerate" in advice
    assert "Only 4 requests" in advice


async def test_an_agent_without_traffic_is_told_so(client: httpx.AsyncClient) -> None:
    await client.put(f"{AGENTS}/quiet", json={"display_name": "Quiet"})

    body = (await client.get(f"{ANALYTICS}/agents/quiet")).json()

    assert body["windows"]["24h"]["requests"] == 0
    assert body["windows"]["24h"]["latency"]["p95_ms"] is None
    assert body["recommendations"] == ["No traffic in this window: there is nothing to judge yet."]


async def test_an_unknown_agent_is_a_404_for_its_figures_and_for_a_trend_filter(
    client: httpx.AsyncClient,
) -> None:
    error = assert_error_body(
        await client.get(f"{ANALYTICS}/agents/nobody"), 404, "agent_not_found"
    )
    assert error["details"] == {"voice_agent_id": "nobody"}
    assert_error_body(
        await client.get(f"{ANALYTICS}/trends?voice_agent_id=nobody"), 404, "agent_not_found"
    )


async def test_an_unregistered_agent_id_in_a_request_makes_no_scope(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    body = {"text": "Welcome to the open house.", "voice_agent_id": "made_up_42"}
    assert (await client.post(SYNTHESIZE, json=body)).status_code == 200

    await _figures_once(client, 1)

    assert [k async for k in redis_client.scan_iter("sv:perf:agent:*")] == []
    assert [k async for k in redis_client.scan_iter("sv:perf:persona:professional:*")] != []


async def test_with_recording_off_requests_leave_no_figures(
    make_settings: SettingsFactory, redis_client: aioredis.Redis
) -> None:
    async with app_client(make_settings(analytics={"record_requests": False})) as client:
        before = _synthesize_requests_counted((await client.get("/metrics")).text)
        for text in CASUAL_TEXTS:
            assert (await client.post(SYNTHESIZE, json={"text": text})).status_code == 200
        await asyncio.sleep(1.5)  # rollups and events are written about once a second
        summary = (await client.get(f"{ANALYTICS}/summary")).json()
        after = _synthesize_requests_counted((await client.get("/metrics")).text)

    assert summary["windows"]["5m"]["requests"] == 0
    assert await redis_client.xlen(EVENTS) == 0
    assert after == before


def _synthesize_requests_counted(exposition: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("seiketsu_voice_http_request_duration_seconds_count")
        and 'route="/api/v1/voice/synthesize"' in line
    )
