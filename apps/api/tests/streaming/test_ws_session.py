"""The WebSocket session (DESIGN §5) on a real uvicorn process, spoken to with `websockets`."""

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
import websockets
from websockets.asyncio.client import ClientConnection

from app.tts.personas import JESSICA, WILL
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess, upstream_env

pytestmark = pytest.mark.integration
PATH = "/api/v1/voice/streaming/stream/"
REPLY = (
    "Hello, this is Sarah from Maple Realty. I am calling about the house on Oak Avenue. "
    "Would Saturday morning work for a showing?"
)


@pytest.fixture(scope="module")
def server(
    redis_url: str, fake_elevenlabs: FakeElevenLabs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = upstream_env(
        redis_url,
        fake_elevenlabs.base_url,
        fake_elevenlabs.api_key,
        STREAMING__IDLE_TIMEOUT_S="1.5",
        # Tests here empty Redis to start uncached; the memory tier would outlive that.
        CACHE__MEMORY_BYTES="0",
    )
    with ApiProcess(env, tmp_path_factory.mktemp("ws")) as process:
        yield process.base_url.replace("http://", "ws://")


@pytest.fixture
async def connect(server: str, elevenlabs: FakeElevenLabs) -> AsyncIterator[Any]:
    opened: list[ClientConnection] = []

    async def open_session(session_id: str = "call-1") -> ClientConnection:
        ws = await websockets.connect(server + PATH + session_id, max_size=None)
        opened.append(ws)
        return ws

    yield open_session
    for ws in opened:
        await ws.close()


async def _recv(ws: ClientConnection, within_s: float = 10.0) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(ws.recv(), within_s)))


async def _send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def _until(ws: ClientConnection, predicate: Any) -> list[dict[str, Any]]:
    seen = []
    while True:
        message = await _recv(ws)
        seen.append(message)
        if predicate(message):
            return seen


async def test_a_phone_call_gets_twilio_media_of_160_ulaw_bytes_paced_in_real_time(
    connect: Any,
) -> None:
    ws = await connect()
    await _send(ws, {"type": "start", "output_format": "ulaw_8000", "frames": "twilio",
                     "stream_sid": "MZ42"})  # fmt: skip
    ready = await _recv(ws)
    started = time.monotonic()
    for piece in (REPLY[:50], REPLY[50:100]):
        await _send(ws, {"type": "text", "utterance_id": "u1", "text": piece})
    await _send(ws, {"type": "text", "utterance_id": "u1", "text": REPLY[100:], "flush": True})

    messages = await _until(ws, lambda m: m.get("type") == "metrics")
    elapsed = time.monotonic() - started

    assert ready == {"type": "ready", "session_id": "call-1", "output_format": "ulaw_8000",
                     "sample_rate": 8000}  # fmt: skip
    media = [m for m in messages if m.get("event") == "media"]
    assert media
    assert all(
        m["streamSid"] == "MZ42" and set(m) == {"event", "streamSid", "media"} for m in media
    )
    assert {len(base64.b64decode(m["media"]["payload"])) for m in media} == {160}
    audio_s = len(media) * 0.02
    assert audio_s - 0.5 < elapsed  # paced: no faster than real time, less the 300 ms lead
    marks = [m for m in messages if m.get("event") == "mark"]
    assert marks == [{"event": "mark", "streamSid": "MZ42", "mark": {"name": "u1"}}]
    metrics = messages[-1]
    assert metrics["utterance_id"] == "u1"
    assert metrics["provider"] == "elevenlabs"
    assert metrics["ttfa_ms"] > 0


@pytest.mark.parametrize("output_format", ["pcm_16000", "mp3_44100_128"])
async def test_a_browser_gets_json_audio_frames_in_order(connect: Any, output_format: str) -> None:
    ws = await connect()
    await _send(ws, {"type": "start", "output_format": output_format, "frames": "json"})
    await _recv(ws)
    await _send(ws, {"type": "text", "utterance_id": "u9", "text": REPLY, "flush": True})

    messages = await _until(ws, lambda m: m.get("type") == "mark")

    audio = [m for m in messages if m.get("type") == "audio"]
    assert [m["seq"] for m in audio] == list(range(len(audio)))
    assert {m["utterance_id"] for m in audio} == {"u9"}
    if output_format == "pcm_16000":
        assert {len(base64.b64decode(m["audio"])) for m in audio} == {640}  # 20 ms of 16 kHz
    assert messages[-1] == {"type": "mark", "name": "u9"}


async def test_barge_in_clears_within_the_lead_and_says_how_much_was_heard(
    connect: Any, redis_url: str
) -> None:
    ws = await connect()
    await _send(ws, {"type": "start", "output_format": "ulaw_8000", "frames": "twilio",
                     "stream_sid": "MZ7"})  # fmt: skip
    await _recv(ws)
    await _send(ws, {"type": "text", "utterance_id": "long", "text": REPLY * 3, "flush": True})
    frames = 0
    while frames < 40:  # 0.8 s of audio
        if (await _recv(ws)).get("event") == "media":
            frames += 1

    await _send(ws, {"type": "barge_in"})
    after = await _until(ws, lambda m: m.get("type") == "cleared")

    assert [m for m in after if m.get("event") == "media"].__len__() <= 16  # within the lead
    assert {"event": "clear", "streamSid": "MZ7"} in after
    cleared = after[-1]
    assert cleared["utterance_id"] == "long"
    assert 0 < cleared["spoken_chars"] < len(REPLY)
    with pytest.raises(TimeoutError):
        await _recv(ws, within_s=0.5)  # nothing more is said
    async with aioredis.Redis.from_url(redis_url) as client:
        assert await client.zcard("sv:limiter:elevenlabs:holders") == 0  # slots freed


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("not json", "invalid_message"),
        ('{"type": "dance"}', "invalid_message"),
        ('{"type": "text", "utterance_id": "u", "text": "Hi"}', "not_started"),
        ('{"type": "start", "persona": "pirate"}', "invalid_message"),
        ('{"type": "start", "output_format": "flac"}', "invalid_message"),
        ('{"type": "start", "frames": "twilio"}', "stream_sid_required"),
        ('{"type": "text"}', "invalid_message"),
    ],
)
async def test_bad_messages_get_a_recoverable_error_and_the_session_goes_on(
    connect: Any, message: str, code: str
) -> None:
    ws = await connect()

    await ws.send(message)
    error = await _recv(ws)
    await _send(ws, {"type": "ping"})

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["recoverable"] is True
    assert await _recv(ws) == {"type": "pong"}


async def test_binary_oversized_and_repeated_start_messages_are_refused_politely(
    connect: Any,
) -> None:
    ws = await connect()
    await _send(ws, {"type": "start"})
    await _recv(ws)

    await ws.send(b"\x00\x01\x02")
    binary = await _recv(ws)
    await ws.send(json.dumps({"type": "text", "utterance_id": "u", "text": "x" * 70_000}))
    oversized = await _recv(ws)
    await _send(ws, {"type": "start"})
    again = await _recv(ws)

    assert binary["code"] == "binary_not_supported"
    assert oversized["code"] == "message_too_large"
    assert again["code"] == "already_started"


async def test_a_flood_of_messages_is_slowed_not_dropped(connect: Any) -> None:
    ws = await connect()
    for _ in range(150):
        await _send(ws, {"type": "ping"})

    replies = [await _recv(ws) for _ in range(151)]

    assert sum(r == {"type": "pong"} for r in replies) == 150  # every message was answered
    assert any(r.get("code") == "rate_limited" for r in replies)


async def test_an_idle_session_is_closed_with_1000_and_a_reason(connect: Any) -> None:
    ws = await connect()
    await _send(ws, {"type": "start"})
    await _recv(ws)

    with pytest.raises(websockets.ConnectionClosedOK) as closed:
        await _recv(ws, within_s=5)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1000
    assert closed.value.rcvd.reason == "idle timeout"


async def test_a_client_leaving_mid_utterance_cancels_upstream_and_frees_its_slot(
    connect: Any, elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    redis_url = fresh_redis
    elevenlabs.behavior.chunk_delay_s = 0.2  # a long, slow upstream stream
    ws = await connect()
    await _send(ws, {"type": "start", "output_format": "ulaw_8000"})
    await _recv(ws)
    await _send(ws, {"type": "text", "utterance_id": "u", "text": REPLY, "flush": True})
    await _until(ws, lambda m: m.get("type") == "audio")

    await ws.close()

    async with aioredis.Redis.from_url(redis_url) as client:

        async def slots_free() -> bool:
            return await client.zcard("sv:limiter:elevenlabs:holders") == 0

        assert await _eventually(slots_free)

    async def upstream_idle() -> bool:
        return elevenlabs.stats().concurrent_now == 0  # the upstream request was cancelled

    assert await _eventually(upstream_idle)


async def _eventually(check: Any, within_s: float = 3.0) -> bool:
    """Poll `check` until it holds (state in another process has no event to wait on)."""
    for _ in range(int(within_s / 0.05)):
        if await check():
            return True
        await asyncio.sleep(0.05)
    return bool(await check())


async def test_an_upstream_failure_mid_utterance_is_reported_and_the_session_goes_on(
    connect: Any, elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    elevenlabs.behavior.truncate_after_bytes = 4000  # every stream breaks after 0.5 s of audio
    ws = await connect()
    await _send(ws, {"type": "start", "output_format": "ulaw_8000"})
    await _recv(ws)
    await _send(ws, {"type": "text", "utterance_id": "u", "text": REPLY, "flush": True})

    broken = await _until(ws, lambda m: m.get("type") == "mark")
    elevenlabs.behavior.truncate_after_bytes = None
    await _send(ws, {"type": "text", "utterance_id": "v", "text": REPLY, "flush": True})
    healthy = await _until(ws, lambda m: m.get("type") == "mark")

    errors = [m for m in broken if m.get("type") == "error"]
    assert [e["code"] for e in errors] == ["upstream_interrupted"] * 3  # one per sentence
    assert all(e["recoverable"] for e in errors)
    # What arrived was played (25 frames a sentence), then the offline engine said the rest
    # of each sentence: about as much speech as the healthy reply.
    assert sum(m.get("type") == "audio" for m in broken) > 150
    assert sum(m.get("type") == "audio" for m in healthy) > 200
    assert not [m for m in healthy if m.get("type") == "error"]


async def test_frames_are_not_compressed_even_when_the_client_offers_deflate(
    connect: Any,
) -> None:
    ws = await connect("call-plain")  # the websockets client offers permessage-deflate

    assert ws.response is not None
    assert "Sec-WebSocket-Extensions" not in ws.response.headers
    await _send(ws, {"type": "start", "output_format": "ulaw_8000"})
    assert (await _recv(ws))["type"] == "ready"


async def test_a_session_of_a_voice_agent_speaks_in_its_persona_unless_start_names_one(
    connect: Any, server: str, elevenlabs: FakeElevenLabs
) -> None:
    api = server.replace("ws://", "http://")
    agent = {"display_name": "Maple front desk", "persona": "friendly"}
    async with httpx.AsyncClient(base_url=api) as client:
        created = await client.put("/api/v1/voice/agents/ws-agent", json=agent)
    assert created.status_code in (200, 201)

    voices: list[str] = []
    for start in ({}, {"persona": "casual"}):
        ws = await connect(f"agent-call-{len(voices)}")
        await _send(ws, {"type": "start", "voice_agent_id": "ws-agent", **start})
        await _recv(ws)
        text = f"Thanks for holding, caller number {len(voices)}."
        await _send(ws, {"type": "text", "utterance_id": "u", "text": text, "flush": True})
        await _until(ws, lambda m: m["type"] == "mark")
        (request,) = [r for r in elevenlabs.stats().requests if r.json and r.json["text"] == text]
        voices.append(request.path.split("/")[3])

    assert voices == [JESSICA.voice_id, WILL.voice_id]  # friendly's voice, then casual's
