"""A client leaving mid-utterance leaves no task behind (uvicorn served in this test's loop)."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import websockets

from app.config import Settings
from tests.asgi import served as serve_in_loop
from tests.fakes.elevenlabs_server import FakeElevenLabs

pytestmark = pytest.mark.integration


@pytest.fixture
async def served(upstream_settings: Settings) -> AsyncIterator[str]:
    async with serve_in_loop(upstream_settings) as base_url:
        yield base_url.replace("http://", "ws://") + "/api/v1/voice/streaming/stream/"


async def test_leaving_mid_utterance_leaves_no_task_running(
    served: str, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.chunk_delay_s = 0.2
    await asyncio.sleep(0.2)  # background loops of the app settle
    before = len(asyncio.all_tasks())

    async with websockets.connect(served + "leaver") as ws:
        await ws.send(json.dumps({"type": "start", "output_format": "ulaw_8000"}))
        await ws.recv()
        text = "The listing has four bedrooms. The yard is large. The roof is new."
        await ws.send(
            json.dumps({"type": "text", "utterance_id": "u", "text": text, "flush": True})
        )
        while json.loads(await ws.recv()).get("type") != "audio":
            pass
        during = len(asyncio.all_tasks())

    for _ in range(100):
        if len(asyncio.all_tasks()) <= before:
            break
        await asyncio.sleep(0.05)
    assert during > before  # the session really had work under way
    assert len(asyncio.all_tasks()) <= before
