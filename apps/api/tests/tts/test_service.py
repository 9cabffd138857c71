"""SynthesisService: resolve, segment, synthesize concurrently (bounded), deliver in order."""

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.main import create_app
from tests.fakes.elevenlabs_server import FakeElevenLabs

PARAGRAPH = " ".join(
    f"Sentence number {n} describes another room of this lovely house." for n in range(12)
)


async def test_segments_run_concurrently_but_never_beyond_the_bound(
    upstream_settings: Settings, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.ttfb_s = 0.15
    synthesis = upstream_settings.synthesis.model_copy(update={"segment_concurrency": 3})
    app = create_app(upstream_settings.model_copy(update={"synthesis": synthesis}))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post(
                "/api/v1/voice/synthesize",
                json={"text": PARAGRAPH, "output_format": "pcm_16000"},
                headers={"accept": "application/json"},
            )

    assert response.status_code == 200
    stats = elevenlabs.stats()
    assert stats.total_requests == 12
    assert stats.peak_concurrent == 3
    segments = response.json()["segments"]
    assert [s["index"] for s in segments] == list(range(12))
    assert [s["text"] for s in segments] == [
        f"Sentence number {n} describes another room of this lovely house." for n in range(12)
    ]


@pytest.mark.parametrize("persona", ["professional", "multilingual"])
async def test_language_code_is_sent_only_to_models_that_take_it(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, persona: str
) -> None:
    response = await upstream_client.post(
        "/api/v1/voice/synthesize",
        json={"text": "Le llamo para confirmar la cita del sábado.", "persona": persona},
    )

    assert response.status_code == 200
    body = elevenlabs.stats().requests[0].json
    if persona == "multilingual":
        assert "language_code" not in body
        assert body["model_id"] == "eleven_multilingual_v2"
    else:
        assert body["language_code"] == "es"
        assert body["model_id"] == "eleven_flash_v2_5"
