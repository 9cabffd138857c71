"""A segment that scores below the threshold is made once more in the persona's fallback voice."""

import httpx

from app.tts.personas import LILY, MATILDA
from tests.asgi import app_client
from tests.conftest import SettingsFactory
from tests.fakes.elevenlabs_server import FakeElevenLabs

SYNTHESIZE = "/api/v1/voice/synthesize"
BODY = {"text": "The open house starts at noon on Saturday.", "language": "en"}


def _voices(fake: FakeElevenLabs) -> list[str]:
    return [r.path.split("/")[3] for r in fake.stats().requests if r.path.startswith("/v1/text-to")]


async def test_a_silent_take_is_retried_in_the_fallback_voice_then_spoken_offline_uncached(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.silent_audio = True
    settings = make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url},
        # Without the sound gate (which stops silence before any scoring: test_sound_gate.py)
        # the silent take is made whole and scored.
        synthesis={"sound_gate_ms": 0},
    )
    async with app_client(settings) as client:
        first = await client.post(SYNTHESIZE, json=BODY)
        again = await client.post(SYNTHESIZE, json=BODY)

    assert first.status_code == 200
    # Both takes held no speech: the caller hears the offline engine, never the silence.
    assert first.headers["x-provider"] == "espeak"
    assert float(first.headers["x-quality-score"]) > 0.5
    # Persona professional: Matilda first, Lily (its fallback voice) for the retry; neither
    # poor take is cached, so the second request asks again.
    assert _voices(elevenlabs) == [MATILDA.voice_id, LILY.voice_id] * 2
    assert again.headers["x-cache"] != "hit"


async def test_a_good_take_is_not_retried_and_is_cached(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    first = await upstream_client.post(SYNTHESIZE, json=BODY)
    again = await upstream_client.post(SYNTHESIZE, json=BODY)

    assert float(first.headers["x-quality-score"]) >= 0.5
    assert _voices(elevenlabs) == [MATILDA.voice_id]
    assert again.headers["x-cache"] == "hit"
