"""POST /api/v1/voice/synthesize: the contract of DESIGN §3, offline and through ElevenLabs."""

import base64
import io

import httpx
import numpy as np
import pytest
import soundfile as sf

from app.audio import codecs, container, mp3
from app.audio.formats import FORMATS, OutputFormat
from tests.fakes.elevenlabs_server import FakeElevenLabs

URL = "/api/v1/voice/synthesize"
CONTRACT_HEADERS = (
    "x-request-id",
    "x-cache",
    "x-provider",
    "x-language",
    "x-persona",
    "x-quality-score",
    "x-audio-duration-ms",
    "server-timing",
)


def _decoded_seconds(body: bytes) -> float:
    samples, rate = sf.read(io.BytesIO(body), dtype="int16")
    return float(len(samples) / rate)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Welcome to the open house at 42 Maple Street.", "en"),
        ("¿Le gustaría agendar una visita?", "es"),
        ("欢迎参观这套房子。", "zh"),
    ],
)
async def test_offline_synthesis_answers_a_playable_mp3_in_the_detected_language(
    client: httpx.AsyncClient, text: str, language: str
) -> None:
    response = await client.post(URL, json={"text": text, "persona": "friendly"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    for header in CONTRACT_HEADERS:
        assert header in response.headers, header
    assert response.headers["x-language"] == language
    assert response.headers["x-provider"] == "espeak"
    assert response.headers["x-persona"] == "friendly"
    assert response.headers["x-cache"] == "miss"
    seconds = _decoded_seconds(response.content)
    assert 0.8 < seconds < 8
    assert abs(int(response.headers["x-audio-duration-ms"]) / 1000 - seconds) < 0.1
    assert 0.5 <= float(response.headers["x-quality-score"]) <= 1.0
    assert "total;dur=" in response.headers["server-timing"]


async def test_an_explicit_language_is_spoken_even_when_the_text_looks_like_another(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(URL, json={"text": "Hello, how are you today?", "language": "es"})

    assert response.status_code == 200
    assert response.headers["x-language"] == "es"


async def test_personas_sound_different_offline(client: httpx.AsyncClient) -> None:
    text = "The kitchen was remodeled last spring."
    bodies = {}
    for persona in ("professional", "friendly", "authoritative", "casual", "multilingual"):
        response = await client.post(
            URL, json={"text": text, "persona": persona, "output_format": "pcm_16000"}
        )
        assert response.status_code == 200
        bodies[persona] = response.content

    assert len(set(bodies.values())) == 5


@pytest.mark.parametrize("output_format", list(OutputFormat))
async def test_every_output_format_comes_back_decodable_with_its_content_type(
    client: httpx.AsyncClient, output_format: OutputFormat
) -> None:
    spec = FORMATS[output_format]

    response = await client.post(
        URL,
        json={
            "text": "Three bedrooms, two baths. The backyard faces south.",
            "output_format": output_format.value,
        },
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == spec.media_type
    body = response.content
    if spec.wav:
        samples, rate = sf.read(io.BytesIO(body), dtype="int16")
        assert rate == spec.sample_rate
        assert body[:4] == b"RIFF"
        assert body.count(b"RIFF") == 1
        seconds = len(samples) / rate
    elif spec.encoding == "mp3":
        frames = list(mp3.iter_frames(body))
        assert {f.sample_rate for f in frames} == {spec.sample_rate}
        assert {f.bitrate_kbps for f in frames} == {spec.bitrate_kbps}
        seconds = _decoded_seconds(body)
    else:
        pcm = codecs.decode(body, spec)
        seconds = len(pcm) / spec.sample_rate
        assert np.abs(pcm.astype(np.int32)).max() > 1000  # speech, not silence
    assert 1.5 < seconds < 10


async def test_a_paragraph_is_spoken_whole_and_in_order(client: httpx.AsyncClient) -> None:
    sentences = [
        "Good afternoon, this is the listing agent for Maple Street.",
        "The house has four bedrooms and a large garden.",
        "Would you like to schedule a private showing this weekend?",
    ]
    alone_ms = 0
    for sentence in sentences:
        response = await client.post(URL, json={"text": sentence, "output_format": "pcm_16000"})
        alone_ms += int(response.headers["x-audio-duration-ms"])

    whole = await client.post(
        URL,
        json={"text": " ".join(sentences), "output_format": "pcm_16000"},
        headers={"accept": "application/json"},
    )

    assert whole.status_code == 200
    payload = whole.json()
    assert [s["text"] for s in payload["segments"]] == sentences
    assert sum(s["audio_duration_ms"] for s in payload["segments"]) == payload["audio_duration_ms"]
    # eSpeak NG carries a little state between calls: lengths agree within a few samples.
    assert abs(payload["audio_duration_ms"] - alone_ms) <= 5
    assert len(base64.b64decode(payload["audio_base64"])) / 32 == pytest.approx(
        payload["audio_duration_ms"], abs=3
    )


async def test_json_is_returned_when_the_client_asks_for_it(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL,
        json={"text": "We can meet at the property at ten.", "output_format": "wav_16000"},
        headers={"accept": "application/json"},
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert payload["request_id"] == response.headers["x-request-id"]
    assert payload["content_type"] == "audio/wav"
    assert payload["provider"] == "espeak"
    assert payload["language"] == "en"
    assert payload["language_detected"] is True
    assert payload["cache"] == "miss"
    assert payload["segments"][0]["text"] == "We can meet at the property at ten."
    audio = base64.b64decode(payload["audio_base64"])
    samples, rate = sf.read(io.BytesIO(audio), dtype="int16")
    assert rate == 16000
    assert payload["audio_duration_ms"] == pytest.approx(len(samples) / rate * 1000, abs=2)


async def test_a_request_id_from_the_caller_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, json={"text": "Thank you for calling."}, headers={"x-request-id": "bridge-42"}
    )

    assert response.headers["x-request-id"] == "bridge-42"


async def test_elevenlabs_speaks_when_a_key_is_configured(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    response = await upstream_client.post(
        URL,
        json={
            "text": "Welcome to the open house at 42 Maple Street.",
            "persona": "authoritative",
            "output_format": "ulaw_8000",
        },
    )

    assert response.status_code == 200
    assert response.headers["x-provider"] == "elevenlabs"
    assert response.headers["content-type"] == "audio/basic"
    recorded = elevenlabs.stats().requests
    assert len(recorded) == 1
    assert recorded[0].path == "/v1/text-to-speech/nPczCjzI2devNBz1zQrb/stream"
    assert recorded[0].query["output_format"] == "ulaw_8000"
    assert recorded[0].json["language_code"] == "en"
    assert len(response.content) / 8 == pytest.approx(
        int(response.headers["x-audio-duration-ms"]), abs=1
    )


async def test_wav_through_elevenlabs_asks_for_pcm_and_adds_one_header(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    response = await upstream_client.post(
        URL,
        json={
            "text": "The HOA fee is two hundred dollars. It covers the pool and the gym.",
            "output_format": "wav_22050",
        },
    )

    assert response.status_code == 200
    assert [r.query["output_format"] for r in elevenlabs.stats().requests] == ["pcm_22050"] * 2
    assert response.content.count(b"RIFF") == 1
    samples, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    assert rate == 22050
    header = container.wav_header(22050, len(response.content) - 44)
    assert response.content[:44] == header
    assert len(samples) > 0


async def test_prosody_context_is_sent_with_each_segment(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    first = "Hello, this is Sarah from Maple Realty."
    second = "I am calling about the house on Oak Avenue."

    response = await upstream_client.post(URL, json={"text": f"{first} {second}"})

    assert response.status_code == 200
    bodies = sorted((r.json for r in elevenlabs.stats().requests), key=lambda b: b["text"])
    by_text = {body["text"]: body for body in bodies}
    assert by_text[first].get("next_text") == second
    assert "previous_text" not in by_text[first]
    assert by_text[second].get("previous_text") == first
