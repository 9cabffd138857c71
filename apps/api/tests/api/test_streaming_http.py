"""POST /api/v1/voice/streaming/synthesize/streaming over a real uvicorn: bytes as they come."""

import io
import time
from collections.abc import Iterator

import httpx
import pytest
import soundfile as sf

from app.audio import mp3
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess, upstream_env

URL = "/api/v1/voice/streaming/synthesize/streaming"
THREE = (
    "Welcome to the open house at 42 Maple Street. The kitchen was remodeled last spring. "
    "Would you like to schedule a private showing this weekend?"
)


@pytest.fixture(scope="module")
def server(
    redis_url: str, fake_elevenlabs: FakeElevenLabs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = upstream_env(
        redis_url,
        fake_elevenlabs.base_url,
        fake_elevenlabs.api_key,
        VOICE_RESPONSE_TIMEOUT_MS="10000",
        # Tests here empty Redis to start uncached; the memory tier would outlive that.
        CACHE__MEMORY_BYTES="0",
    )
    with ApiProcess(env, tmp_path_factory.mktemp("stream")) as process:
        yield process.base_url


def _stream(server: str, body: dict[str, object]) -> tuple[float, float, bytes, httpx.Headers]:
    started = time.monotonic()
    first_at = 0.0
    data = bytearray()
    with httpx.stream("POST", server + URL, json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        headers = response.headers
        for chunk in response.iter_raw():
            if not data:
                first_at = time.monotonic() - started
            data += chunk
    return first_at, time.monotonic() - started, bytes(data), headers


@pytest.mark.integration
def test_the_first_bytes_arrive_while_upstream_is_still_producing(
    server: str, elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    elevenlabs.behavior.chunk_sizes = (1001, 333)
    elevenlabs.behavior.chunk_delay_s = 0.05  # a slow upstream: ~1.5 s per segment

    first_at, total, body, headers = _stream(server, {"text": THREE})

    assert headers["content-type"] == "audio/mpeg"
    assert headers["x-provider"] == "elevenlabs"
    assert first_at < total / 3  # forwarded as upstream sends, not after the whole text
    frames = list(mp3.iter_frames(body))
    assert sum(f.length for f in frames) == len(body)  # whole frames only, none torn at joins
    samples, rate = sf.read(io.BytesIO(body), dtype="int16")
    assert rate == 44100
    assert len(samples) / rate > 5


@pytest.mark.integration
def test_wav_streams_with_one_header_and_pcm_is_sample_aligned(
    server: str, elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    elevenlabs.behavior.chunk_sizes = (7, 333, 1001)

    _, _, wav, headers = _stream(server, {"text": THREE, "output_format": "wav_16000"})
    _, _, pcm, _ = _stream(server, {"text": THREE, "output_format": "pcm_16000"})

    assert headers["content-type"] == "audio/wav"
    assert wav.count(b"RIFF") == 1
    assert wav[44:] == pcm  # same segments, now from cache: identical samples
    assert len(pcm) % 2 == 0


@pytest.mark.integration
def test_bad_input_gets_the_json_error_body_before_any_audio(server: str) -> None:
    response = httpx.post(server + URL, json={"text": "   "}, timeout=10)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
