"""Anomalies and their alerts: real Redis, a real HTTP sink, time moved by passing `now`."""

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from app.analytics.alerts import OUTBOX, evaluate_and_alert
from app.analytics.anomalies import AnomalyStore
from app.analytics.events import AnalyticsEvent, EventLog
from app.config import AnalyticsSettings, CircuitSettings, MonitoringSettings
from app.jobs import scheduled
from app.services import open_services
from app.tts.circuit import Circuits
from app.tts.errors import UpstreamServerError
from app.tts.models import Provider
from tests.conftest import SettingsFactory
from tests.fakes.monitoring_sink import FakeMonitoringSink

pytestmark = pytest.mark.integration

AGENT = "front-desk"
RULES = AnalyticsSettings(
    window_s=300,
    min_requests=3,
    resend_s=30,
    send_timeout_s=0.5,
    retry_base_s=10,
    retry_max_s=100,
)


@pytest.fixture(scope="module")
def running_sink() -> Iterator[FakeMonitoringSink]:
    with FakeMonitoringSink() as sink:
        yield sink


@pytest.fixture
def sink(running_sink: FakeMonitoringSink) -> FakeMonitoringSink:
    running_sink.status, running_sink.delay_s = 200, 0.0
    running_sink.clear()
    return running_sink


@pytest.fixture
def monitoring(sink: FakeMonitoringSink) -> MonitoringSettings:
    return MonitoringSettings(webhook_url=sink.url, api_key=SecretStr("test-token"))


def _event(
    latency_ms: float, *, fallback: bool = False, agent: str | None = AGENT
) -> AnalyticsEvent:
    return AnalyticsEvent(
        at=time.time(),
        surface="http",
        outcome="ok",
        agent=agent,
        persona="friendly",
        language="en",
        provider="espeak" if fallback else "elevenlabs",
        cache="miss",
        latency_ms=latency_ms,
        first_audio_ms=latency_ms / 2,
        characters_billed=20,
        characters_saved=0,
        quality=0.9,
        fallback=fallback,
        error=None,
    )


async def _record(log: EventLog, *events: AnalyticsEvent) -> None:
    for event in events:
        log.record(event)
    await log.flush()


async def _slow_traffic(redis: aioredis.Redis) -> EventLog:
    log = EventLog(redis)
    await _record(log, *(_event(2500, fallback=True) for _ in range(4)))
    return log


def _named(
    alerts: list[dict[str, Any]], alertname: str, scope: str | None = AGENT
) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"]["alertname"] == alertname and a["labels"].get("voice_agent_id") == scope
    ]


def _alert_posts(sink: FakeMonitoringSink) -> int:
    return sum(isinstance(r.body, list) for r in sink.requests)


async def test_a_new_anomaly_is_sent_once_in_alertmanager_v2_shape_with_the_bearer(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    now = time.time()

    first = await evaluate_and_alert(redis_client, log, RULES, monitoring, now)
    again = await evaluate_and_alert(redis_client, log, RULES, monitoring, now + 1)

    posts = [r for r in sink.requests if isinstance(r.body, list)]
    assert len(posts) == 1
    assert posts[0].headers["authorization"] == "Bearer test-token"
    assert posts[0].headers["content-type"] == "application/json"
    (slow,) = _named(posts[0].body, "VoiceSlowResponses")
    assert slow["labels"] == {
        "alertname": "VoiceSlowResponses",
        "severity": "warning",
        "service": "seiketsu-voice",
        "scope": "agent",
        "voice_agent_id": AGENT,
    }
    assert set(slow["annotations"]) == {"summary", "description"}
    assert slow["startsAt"].endswith("Z")
    assert "endsAt" not in slow
    assert slow["generatorURL"].startswith("http")
    assert _named(posts[0].body, "VoiceHighFallbackRate")
    assert _named(posts[0].body, "VoiceSlowResponses", scope=None)  # overall too
    assert first["sent"] == len(posts[0].body) == first["started"] == first["firing"]
    assert (again["sent"], again["started"], again["firing"]) == (0, 0, first["firing"])


async def test_a_firing_alert_is_sent_again_once_resend_s_has_passed(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    now = time.time()

    await evaluate_and_alert(redis_client, log, RULES, monitoring, now)
    await evaluate_and_alert(redis_client, log, RULES, monitoring, now + RULES.resend_s - 1)
    await evaluate_and_alert(redis_client, log, RULES, monitoring, now + RULES.resend_s + 1)

    slow = _named(sink.alerts(), "VoiceSlowResponses")
    assert len(slow) == 2
    assert slow[0]["startsAt"] == slow[1]["startsAt"]
    assert "endsAt" not in slow[1]


async def test_a_cleared_anomaly_is_resolved_once_with_ends_at_and_kept_in_history(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    now = time.time()
    fired = await evaluate_and_alert(redis_client, log, RULES, monitoring, now)
    later = now + RULES.window_s + 1  # the slow requests are out of the window

    cleared = await evaluate_and_alert(redis_client, log, RULES, monitoring, later)
    await evaluate_and_alert(redis_client, log, RULES, monitoring, later + 1)

    store = AnomalyStore(redis_client, RULES.history_size)
    slow = _named(sink.alerts(), "VoiceSlowResponses")
    assert len(slow) == 2
    assert "endsAt" in slow[1]
    assert slow[1]["startsAt"] == slow[0]["startsAt"]
    assert slow[1]["endsAt"] > slow[1]["startsAt"]
    assert cleared["resolved"] == fired["started"]
    assert cleared["sent"] == fired["started"]
    assert await store.current() == []
    history = await store.history()
    assert len(history) == 2 * fired["started"]
    assert sum(a.ends_at is not None for a in history) == fired["started"]


async def test_one_slow_request_fires_nothing(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = EventLog(redis_client)
    await _record(log, _event(5000, fallback=True), _event(100, agent="other"))

    outcome = await evaluate_and_alert(redis_client, log, RULES, monitoring)

    assert outcome["firing"] == 0
    assert sink.alerts() == []


async def test_an_agent_far_above_its_own_baseline_fires_below_the_fixed_threshold(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    rules = RULES.model_copy(update={"window_s": 1.0})
    log = EventLog(redis_client)
    await _record(log, *(_event(300) for _ in range(4)))
    await evaluate_and_alert(redis_client, log, rules, monitoring)
    await asyncio.sleep(1.1)  # the first requests leave the 1 s window
    await _record(log, *(_event(1000) for _ in range(4)))

    await evaluate_and_alert(redis_client, log, rules, monitoring)

    names = {a["labels"]["alertname"] for a in sink.alerts()}
    assert names == {"VoiceLatencyAboveBaseline"}
    assert _named(sink.alerts(), "VoiceLatencyAboveBaseline")


async def test_a_sink_that_is_down_gets_the_alerts_later_with_backoff(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    now = time.time()
    sink.status = 500

    failed = await evaluate_and_alert(redis_client, log, RULES, monitoring, now)
    entries = await redis_client.hgetall(OUTBOX)
    posts_after_failure = _alert_posts(sink)
    waiting = await evaluate_and_alert(redis_client, log, RULES, monitoring, now + 5)
    posts_while_backing_off = _alert_posts(sink)
    await evaluate_and_alert(redis_client, log, RULES, monitoring, now + 11)  # 2nd failure
    posts_after_retry = _alert_posts(sink)
    sink.status = 200
    early = await evaluate_and_alert(redis_client, log, RULES, monitoring, now + 11 + 19)
    delivered = await evaluate_and_alert(redis_client, log, RULES, monitoring, now + 11 + 21)

    assert (failed["sent"], failed["queued"]) == (0, failed["started"])
    assert len(entries) == failed["started"]
    assert (posts_after_failure, posts_while_backing_off, posts_after_retry) == (1, 1, 2)
    assert (waiting["sent"], waiting["queued"]) == (0, failed["started"])
    assert (early["sent"], early["queued"]) == (0, failed["started"])
    assert (delivered["sent"], delivered["queued"]) == (failed["started"], 0)
    assert await redis_client.hlen(OUTBOX) == 0
    slow = _named(sink.alerts(), "VoiceSlowResponses")
    assert len(slow) == 1


async def test_failed_sends_record_their_attempts_and_next_try(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    now = time.time()
    sink.status = 503

    await evaluate_and_alert(redis_client, log, RULES, monitoring, now)
    await evaluate_and_alert(redis_client, log, RULES, monitoring, now + 10)

    store_entries = await redis_client.hgetall(OUTBOX)
    entries = [json.loads(raw) for raw in store_entries.values()]
    assert entries
    for entry in entries:
        assert entry["attempts"] == 2
        assert entry["next_try_at"] == pytest.approx(now + 10 + 20)
        assert entry["last_error"] == "HTTP 503"


async def test_a_slow_sink_costs_the_evaluation_a_short_timeout_and_queues_the_alerts(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    sink.delay_s = 5

    started = time.perf_counter()
    outcome = await evaluate_and_alert(redis_client, log, RULES, monitoring)
    elapsed = time.perf_counter() - started

    assert elapsed < 2 * RULES.send_timeout_s + 1
    assert outcome["sent"] == 0
    assert outcome["queued"] == outcome["started"] > 0
    assert outcome["summary_pushed"] is False


async def test_the_scheduled_evaluation_pushes_a_summary_and_never_the_elevenlabs_key(
    make_settings: SettingsFactory, sink: FakeMonitoringSink
) -> None:
    settings = make_settings(
        elevenlabs={"api_key": "sk-eleven-very-secret"},
        monitoring={"webhook_url": sink.url, "api_key": "test-token"},
        analytics={"min_requests": 3},
    )
    async with open_services(settings) as services:
        await _record(services.events, *(_event(2500, fallback=True) for _ in range(4)))
        outcome = await scheduled.evaluate(services, None)

    (summary,) = sink.summaries()
    assert outcome["beat"] == "alive"
    assert outcome["started"] > 0
    assert outcome["summary_pushed"] is True
    assert summary.headers["authorization"] == "Bearer test-token"
    assert summary.body["requests"] == 4
    assert summary.body["fallback_rate"] == 1.0
    assert summary.body["latency_p95_ms"] == 2500
    assert set(summary.body) >= {
        "error_rate",
        "cache_hit_rate",
        "quality_average",
        "first_audio_p95_ms",
        "window_s",
    }
    assert sink.alerts()
    for request in sink.requests:
        assert "sk-eleven-very-secret" not in request.raw
        assert "sk-eleven-very-secret" not in str(request.headers)


async def test_the_anomalies_route_shows_what_fires_and_the_history(
    redis_client: aioredis.Redis,
    client: httpx.AsyncClient,
    sink: FakeMonitoringSink,
    monitoring: MonitoringSettings,
) -> None:
    log = await _slow_traffic(redis_client)
    await evaluate_and_alert(redis_client, log, RULES, monitoring)

    response = await client.get("/api/v1/voice/analytics/anomalies", params={"limit": 100})

    assert response.status_code == 200
    body = response.json()
    firing = {a["labels"]["alertname"] for a in body["firing"]}
    assert {"VoiceSlowResponses", "VoiceHighFallbackRate"} <= firing
    assert all(a["ends_at"] is None for a in body["firing"])
    assert len(body["history"]) == len(body["firing"])


async def test_an_overlapping_evaluation_is_skipped_so_nothing_is_sent_twice(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    log = await _slow_traffic(redis_client)
    sink.delay_s = 0.3  # keeps the first evaluation busy while the second starts

    outcomes = await asyncio.gather(
        evaluate_and_alert(redis_client, log, RULES, monitoring),
        evaluate_and_alert(redis_client, log, RULES, monitoring),
    )

    skipped = [o for o in outcomes if "skipped" in o]
    assert len(skipped) == 1
    assert len(_named(sink.alerts(), "VoiceSlowResponses")) == 1
    assert await redis_client.exists("sv:analytics:evaluating") == 0


async def test_a_voice_whose_circuit_opens_fires_and_its_closing_resolves(
    redis_client: aioredis.Redis, sink: FakeMonitoringSink, monitoring: MonitoringSettings
) -> None:
    circuits = Circuits(redis_client, CircuitSettings(failure_threshold=1))
    await circuits.failed(
        Provider.ELEVENLABS, "v1", UpstreamServerError(Provider.ELEVENLABS, "answered 503")
    )
    log = EventLog(redis_client)
    now = time.time()

    opened = await evaluate_and_alert(
        redis_client, log, RULES, monitoring, now, circuits=circuits.views()
    )
    await circuits.succeeded(Provider.ELEVENLABS, "v1")
    closed = await evaluate_and_alert(
        redis_client, log, RULES, monitoring, now + 1, circuits=circuits.views()
    )

    fired, resolved = [r.body for r in sink.requests if isinstance(r.body, list)]
    (alert,) = _named(fired, "VoiceProviderUnavailable", scope=None)
    assert alert["labels"]["provider"] == "elevenlabs"
    assert alert["labels"]["voice"] == "v1"
    assert "upstream_server_error" in alert["annotations"]["summary"]
    assert "endsAt" not in alert
    (ended,) = _named(resolved, "VoiceProviderUnavailable", scope=None)
    assert "endsAt" in ended
    assert (opened["started"], closed["resolved"]) == (1, 1)
