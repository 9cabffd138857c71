"""Alerting end to end: slow upstream → real requests → `analytics.evaluate` on a real worker →
Alertmanager v2 alerts at a real HTTP sink; recovery → a resolve."""

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from app.analytics.anomalies import fingerprint
from app.config import Settings
from app.jobs.celery_config import EVALUATE, make_celery
from app.jobs.schedule_runs import recent_runs
from tests.fakes.elevenlabs_server import Behavior, FakeElevenLabs
from tests.fakes.monitoring_sink import FakeMonitoringSink
from tests.jobs.conftest import WorkerFactory

pytestmark = pytest.mark.integration

AGENT = "maple"
WINDOW_S = 10
SYNTHESIZE = "/api/v1/voice/synthesize"


@pytest.fixture
def sink() -> Iterator[FakeMonitoringSink]:
    with FakeMonitoringSink() as fake:
        yield fake


async def _evaluate(settings: Settings, state: aioredis.Redis, runs: int) -> dict[str, Any]:
    celery = make_celery(settings)
    try:
        celery.send_task(EVALUATE)
    finally:
        celery.close()
    deadline = time.monotonic() + 60
    while len(found := await recent_runs(state, EVALUATE)) < runs:
        assert time.monotonic() < deadline, "analytics.evaluate did not run"
        await asyncio.sleep(0.1)
    result: dict[str, Any] = found[0]["result"]
    return result


async def _speak(client: httpx.AsyncClient, texts: list[str]) -> None:
    responses = await asyncio.gather(
        *(client.post(SYNTHESIZE, json={"text": t, "voice_agent_id": AGENT}) for t in texts)
    )
    assert [r.status_code for r in responses] == [200] * len(texts)


def _for_agent(alerts: list[dict[str, Any]], alertname: str) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"]["alertname"] == alertname and a["labels"].get("voice_agent_id") == AGENT
    ]


async def test_slow_upstream_fires_one_alert_and_recovery_resolves_it(
    jobs_client: httpx.AsyncClient,
    jobs_settings: Settings,
    start_worker: WorkerFactory,
    elevenlabs: FakeElevenLabs,
    sink: FakeMonitoringSink,
    fresh_redis: str,
) -> None:
    agent = {"display_name": "Maple", "persona": "friendly", "languages": ["en"]}
    assert (await jobs_client.put(f"/api/v1/voice/agents/{AGENT}", json=agent)).status_code < 300
    start_worker(
        MONITORING_WEBHOOK_URL=sink.url,
        TWENTYONEDEV_API_KEY="test-token",
        ANALYTICS__WINDOW_S=str(WINDOW_S),
        ANALYTICS__MIN_REQUESTS="3",
    )
    state = aioredis.Redis.from_url(fresh_redis)
    try:
        elevenlabs.behavior = Behavior(ttfb_s=3)
        await _speak(jobs_client, [f"Slow reply number {n} for the caller." for n in range(4)])
        slow_done = time.time()
        await asyncio.sleep(1.5)  # events reach Redis within a second
        first = await _evaluate(jobs_settings, state, runs=1)
        second = await _evaluate(jobs_settings, state, runs=2)
        fired = sink.alerts()

        elevenlabs.behavior = Behavior()
        await _speak(jobs_client, [f"Quick reply number {n} for the caller." for n in range(3)])
        await asyncio.sleep(max(0.0, slow_done + WINDOW_S + 1.5 - time.time()))
        third = await _evaluate(jobs_settings, state, runs=3)
    finally:
        await state.aclose()

    assert first["started"] > 0
    assert first["sent"] == first["started"]
    assert (second["started"], second["sent"]) == (0, 0)
    (slow,) = _for_agent(fired, "VoiceSlowResponses")
    assert _for_agent(fired, "VoiceHighFallbackRate")
    assert slow["labels"]["service"] == "seiketsu-voice"
    assert "endsAt" not in slow
    # No duplicate while it fires: each alert (by its labels) was sent once.
    assert set(Counter(fingerprint(a["labels"]) for a in fired).values()) == {1}

    resolved = [a for a in sink.alerts() if "endsAt" in a]
    assert third["resolved"] == first["started"]
    assert {fingerprint(a["labels"]) for a in resolved} == {fingerprint(a["labels"]) for a in fired}
    (slow_resolved,) = _for_agent(resolved, "VoiceSlowResponses")
    assert slow_resolved["startsAt"] == slow["startsAt"]
    assert slow_resolved["endsAt"] > slow["startsAt"]

    summaries = sink.summaries()
    assert len(summaries) == 3
    assert all(s.headers["authorization"] == "Bearer test-token" for s in summaries)
    assert summaries[0].body["requests"] >= 4
    assert summaries[0].body["fallback_rate"] > 0
    for request in sink.requests:
        assert request.headers["authorization"] == "Bearer test-token"
        assert elevenlabs.api_key not in request.raw
