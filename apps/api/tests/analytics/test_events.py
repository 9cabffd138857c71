"""One analytics event per request, in the capped stream, read back by time window."""

import asyncio
import dataclasses
import time

import httpx
import redis.asyncio as aioredis

from app.analytics.events import EVENTS, EVENTS_PER_CALL, AnalyticsEvent, EventLog

SYNTHESIZE = "/api/v1/voice/synthesize"


async def _events(redis_client: aioredis.Redis, since: float) -> list[AnalyticsEvent]:
    log = EventLog(redis_client)
    deadline = time.monotonic() + 5
    while not (found := await log.read(since)):
        assert time.monotonic() < deadline, "no event written"
        await asyncio.sleep(0.1)
    return found


async def test_a_request_leaves_one_event_saying_who_spoke_how_and_at_what_cost(
    client: httpx.AsyncClient, redis_client: aioredis.Redis
) -> None:
    since = time.time()
    body = {"text": "Hola, bienvenido a la casa.", "persona": "friendly", "voice_agent_id": "a1"}
    assert (await client.post(SYNTHESIZE, json=body)).status_code == 200

    (event,) = await _events(redis_client, since)

    assert (event.surface, event.outcome, event.agent) == ("http", "ok", "a1")
    assert (event.persona, event.language, event.provider) == ("friendly", "es", "espeak")
    assert event.cache == "miss"
    assert event.latency_ms > 0
    assert event.first_audio_ms is not None
    assert event.quality is not None
    assert 0 < event.quality <= 1
    assert event.error is None
    assert event.fallback is False


def _event(**changes: object) -> AnalyticsEvent:
    event = AnalyticsEvent(
        at=time.time(), surface="http", outcome="ok", agent=None, persona="casual",
        language="en", provider="espeak", cache="hit", latency_ms=1.0, first_audio_ms=0.0,
        characters_billed=0, characters_saved=3, quality=0.9, fallback=False, error=None,
    )  # fmt: skip
    return dataclasses.replace(event, **changes)  # type: ignore[arg-type]


async def test_a_failed_request_is_an_event_with_its_error_code(
    redis_client: aioredis.Redis,
) -> None:
    log = EventLog(redis_client)
    log.record(
        _event(surface="ws", outcome="error", provider="", cache="", first_audio_ms=None,
               quality=None, error="synthesis_unavailable")
    )  # fmt: skip
    await log.flush()

    (event,) = await log.read(time.time() - 5)

    assert event.error == "synthesis_unavailable"
    assert event.first_audio_ms is None
    assert event.agent is None


async def test_the_stream_is_capped_and_a_window_reads_only_its_own_time(
    redis_client: aioredis.Redis,
) -> None:
    log = EventLog(redis_client, max_events=100)
    for _ in range(300):
        log.record(_event())
    await log.flush()
    await asyncio.sleep(0.05)
    later = time.time()
    log.record(_event(at=time.time()))
    await log.flush()

    assert await redis_client.xlen(EVENTS) < 300
    assert len(await log.read(later)) == 1


async def test_an_event_is_one_field_and_those_written_field_by_field_are_still_read(
    redis_client: aioredis.Redis,
) -> None:
    log = EventLog(redis_client)
    since = time.time() - 5
    log.record(_event(agent="a1", quality=None))
    await log.flush()
    # As events were written before they were packed: one stream field per event field.
    legacy = {
        "at": str(time.time()), "surface": "ws", "outcome": "ok", "agent": "", "persona": "casual",
        "language": "zh", "provider": "elevenlabs", "cache": "miss", "latency_ms": "12.5",
        "first_audio_ms": "", "characters_billed": "7", "characters_saved": "0",
        "quality": "0.8", "fallback": "1", "error": "",
    }  # fmt: skip
    await redis_client.xadd(EVENTS, legacy)  # type: ignore[arg-type]

    entries = await redis_client.xrange(EVENTS) or []
    stored = entries[0][1] or {}
    packed, legacy_read = await log.read(since)

    assert list(stored) == [b"e"]
    assert packed == _event(agent="a1", quality=None, at=packed.at)
    assert (legacy_read.surface, legacy_read.language, legacy_read.agent) == ("ws", "zh", None)
    assert (legacy_read.first_audio_ms, legacy_read.fallback, legacy_read.quality) == (
        None,
        True,
        0.8,
    )
    assert legacy_read.characters_billed == 7


async def test_a_flush_larger_than_one_script_call_writes_every_event_in_order(
    redis_client: aioredis.Redis,
) -> None:
    log = EventLog(redis_client)
    since = time.time() - 5
    count = 2 * EVENTS_PER_CALL + 7
    for n in range(count):
        log.record(_event(characters_saved=n))
    await log.flush()

    events = await log.read(since)

    assert [e.characters_saved for e in events] == list(range(count))
