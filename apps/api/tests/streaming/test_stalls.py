"""Streams that owe audio and move none are listed as stalled, by every process's health."""

import asyncio
import json
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets

from app.streaming.stalls import STALLED, StreamWatch
from tests.asgi import served
from tests.conftest import SettingsFactory
from tests.fakes.elevenlabs_server import FakeElevenLabs

HEALTH = "/api/v1/voice/streaming/health/detailed"
TEXT = "The listing has four bedrooms and a large yard. The roof was replaced last spring."


async def test_a_stream_is_stalled_only_while_it_owes_audio_and_moves_none(
    redis_client: aioredis.Redis,
) -> None:
    watch = StreamWatch(redis_client, "here", stall_after_s=0.1)
    with watch.track("websocket", "call/u1") as progress:
        progress.moved(160)
        assert watch.stalled() == []
        await asyncio.sleep(0.15)
        [stalled] = watch.stalled()
        assert (stalled.surface, stalled.stream_id, stalled.bytes_sent) == (
            "websocket",
            "call/u1",
            160,
        )
        with progress.waiting_for_caller():
            await asyncio.sleep(0.15)
            assert watch.stalled() == []  # the caller has not said what to say next
        assert watch.stalled() == []  # the clock restarted when the caller spoke
        progress.moved(160)
    assert watch.stalled() == []  # ended streams owe nothing


async def test_another_processs_stalls_are_seen_and_a_silent_process_is_forgotten(
    redis_client: aioredis.Redis,
) -> None:
    there = StreamWatch(redis_client, "there", stall_after_s=0.05)
    here = StreamWatch(redis_client, "here", stall_after_s=0.05)
    with there.track("http", "req-1"):
        await asyncio.sleep(0.1)
        await there.publish()

    seen = await here.everywhere()

    assert [(s["process"], s["surface"], s["stream_id"]) for s in seen] == [
        ("there", "http", "req-1")
    ]
    old = {"at": 0.0, "streams": [{"surface": "http", "stream_id": "gone"}]}
    await redis_client.hset(STALLED, "crashed", json.dumps(old))
    assert [s["stream_id"] for s in await here.everywhere()] == ["req-1"]
    assert not await redis_client.hexists(STALLED, "crashed")


async def _stalled_streams(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get(HEALTH)
    assert response.status_code == 200
    return dict(response.json()["dependencies"]["stalled_streams"])


async def test_a_chunked_response_whose_upstream_hangs_shows_in_health_then_clears(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    settings = make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url},
        streaming={"stall_after_s": 0.3},
    )
    elevenlabs.behavior.stall_after_bytes = 4096
    elevenlabs.behavior.stall_s = 3.0
    async with served(settings) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        assert (await _stalled_streams(http))["status"] == "ok"
        body = {"text": TEXT, "output_format": "pcm_16000"}
        url = "/api/v1/voice/streaming/synthesize/streaming"
        async with http.stream("POST", url, json=body) as response:
            assert response.status_code == 200
            chunks = response.aiter_bytes()
            await anext(chunks)
            await asyncio.sleep(0.6)
            during = await _stalled_streams(http)
        for _ in range(40):  # the server notices the client left
            after = await _stalled_streams(http)
            if after["status"] == "ok":
                break
            await asyncio.sleep(0.05)

    assert during["status"] == "degraded"
    [stalled] = during["details"]["streams"]
    assert stalled["surface"] == "http"
    assert stalled["silent_s"] >= 0.3
    assert stalled["bytes_sent"] > 0
    assert after["status"] == "ok"
    assert after["details"]["streams"] == []


@pytest.mark.integration
async def test_a_websocket_utterance_stalls_but_an_unfinished_one_waiting_for_text_does_not(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    settings = make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url},
        streaming={"stall_after_s": 0.3},
    )
    async with served(settings) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        ws_url = base_url.replace("http://", "ws://") + "/api/v1/voice/streaming/stream/call-9"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "start", "output_format": "ulaw_8000"}))
            await ws.recv()
            # A sentence without its end: the session waits for the caller, which is no stall.
            await ws.send(json.dumps({"type": "text", "utterance_id": "u1", "text": "The roof"}))
            await asyncio.sleep(0.6)
            waiting = await _stalled_streams(http)

            elevenlabs.behavior.ttfb_s = 3.0
            await ws.send(
                json.dumps(
                    {"type": "text", "utterance_id": "u1", "text": " is new.", "flush": True}
                )
            )
            await asyncio.sleep(0.6)
            hanging = await _stalled_streams(http)

    assert waiting["status"] == "ok"
    assert hanging["status"] == "degraded"
    assert [s["stream_id"] for s in hanging["details"]["streams"]] == ["call-9/u1"]
