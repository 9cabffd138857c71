"""The fake ElevenLabs itself, over real HTTP: formats, errors, concurrency and stream faults."""

import asyncio
import io
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from app.audio import g711, mp3
from app.tts.personas import MATILDA, PROFILES, SARAH
from tests.fakes.elevenlabs_server import Behavior, FakeElevenLabs
from tests.fakes.synthetic_audio import expected_duration_s, render_audio

TEXT = "Welcome to the open house at 42 Maple Street."
FLASH = "eleven_flash_v2_5"
MULTILINGUAL = "eleven_multilingual_v2"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def _url(fake: FakeElevenLabs, voice_id: str = MATILDA.voice_id, stream: bool = True) -> str:
    return f"{fake.base_url}/v1/text-to-speech/{voice_id}" + ("/stream" if stream else "")


def _body(text: str = TEXT, **extra: Any) -> dict[str, Any]:
    return {"text": text, "model_id": FLASH, **extra}


async def _speak(
    http: httpx.AsyncClient,
    fake: FakeElevenLabs,
    output_format: str | None = "pcm_16000",
    body: dict[str, Any] | None = None,
    key: str | None = "",
    voice_id: str = MATILDA.voice_id,
) -> httpx.Response:
    headers = {"xi-api-key": fake.api_key if key == "" else key} if key is not None else {}
    params = {"output_format": output_format} if output_format else {}
    return await http.post(
        _url(fake, voice_id), params=params, json=_body() if body is None else body, headers=headers
    )


async def _until_idle(fake: FakeElevenLabs) -> None:
    for _ in range(200):
        if not fake.stats().concurrent_now:
            return
        await asyncio.sleep(0.01)


async def _drain(
    http: httpx.AsyncClient, fake: FakeElevenLabs, received: bytearray, text: str = TEXT
) -> None:
    """Stream one request's body into `received`, piece by piece as the client gets it."""
    async with http.stream(
        "POST", _url(fake), json=_body(text), headers={"xi-api-key": fake.api_key}
    ) as response:
        async for piece in response.aiter_raw():
            received += piece


def _chunk_ends(sizes: tuple[int, ...], total: int) -> list[int]:
    """Chunk end offsets when `sizes` cycle over `total` bytes."""
    ends: list[int] = []
    offset, i = 0, 0
    while offset < total:
        offset = min(total, offset + sizes[i % len(sizes)])
        ends.append(offset)
        i += 1
    return ends


# -- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output_format", "rate", "kbps"),
    [
        ("mp3_22050_32", 22050, 32),
        ("mp3_24000_48", 24000, 48),
        ("mp3_44100_32", 44100, 32),
        ("mp3_44100_64", 44100, 64),
        ("mp3_44100_96", 44100, 96),
        ("mp3_44100_128", 44100, 128),
        ("mp3_44100_192", 44100, 192),
    ],
)
async def test_mp3_formats_decode_at_their_rate_and_bitrate_for_as_long_as_the_text(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs, output_format: str, rate: int, kbps: int
) -> None:
    response = await _speak(http, elevenlabs, output_format)

    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    frames = list(mp3.iter_frames(response.content))
    assert {(f.sample_rate, f.bitrate_kbps) for f in frames} == {(rate, kbps)}
    samples, decoded_rate = sf.read(io.BytesIO(response.content), dtype="int16")
    assert decoded_rate == rate
    # LAME adds its encoder delay and pads the last frame: at most a few frames more.
    assert 0 <= len(samples) / rate - expected_duration_s(TEXT) < 0.15
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 300  # speech, not silence


@pytest.mark.parametrize(
    ("output_format", "rate", "sample_width"),
    [
        ("pcm_8000", 8000, 2),
        ("pcm_16000", 16000, 2),
        ("pcm_22050", 22050, 2),
        ("pcm_24000", 24000, 2),
        ("pcm_32000", 32000, 2),
        ("pcm_44100", 44100, 2),
        ("pcm_48000", 48000, 2),
        ("ulaw_8000", 8000, 1),
        ("alaw_8000", 8000, 1),
    ],
)
async def test_raw_formats_are_exactly_as_long_as_the_text_at_their_rate(
    http: httpx.AsyncClient,
    elevenlabs: FakeElevenLabs,
    output_format: str,
    rate: int,
    sample_width: int,
) -> None:
    response = await _speak(http, elevenlabs, output_format)

    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/pcm"
    assert len(response.content) % sample_width == 0
    duration_s = len(response.content) / sample_width / rate
    assert duration_s == pytest.approx(expected_duration_s(TEXT), abs=1 / rate)


def test_a_cjk_ideograph_lasts_as_long_as_three_latin_characters() -> None:
    assert expected_duration_s("欢迎") == pytest.approx(expected_duration_s("abcdef"))
    assert expected_duration_s("abcdefghijklmn") == pytest.approx(1.0)


async def test_g711_audio_is_the_same_speech_as_pcm_at_8000_hz(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    pcm = np.frombuffer((await _speak(http, elevenlabs, "pcm_8000")).content, dtype="<i2")
    ulaw = g711.ulaw_decode((await _speak(http, elevenlabs, "ulaw_8000")).content)
    alaw = g711.alaw_decode((await _speak(http, elevenlabs, "alaw_8000")).content)

    for companded in (ulaw, alaw):
        assert np.corrcoef(pcm.astype(np.float64), companded.astype(np.float64))[0, 1] > 0.99


async def test_identical_requests_get_identical_bytes_and_the_default_format_is_mp3_44100_128(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    first = await _speak(http, elevenlabs, output_format=None)
    second = await http.post(
        _url(elevenlabs, stream=False), json=_body(), headers={"xi-api-key": elevenlabs.api_key}
    )

    assert first.headers["content-type"] == "audio/mpeg"
    assert first.content == second.content == render_audio(TEXT, "mp3_44100_128")
    assert render_audio("Another sentence.", "mp3_44100_128") != first.content


async def test_silent_audio_is_digital_silence_of_the_right_length(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.silent_audio = True

    response = await _speak(http, elevenlabs, "pcm_16000")

    assert len(response.content) == len(render_audio(TEXT, "pcm_16000"))
    assert not any(response.content)


async def test_odd_length_appends_one_stray_byte_to_pcm(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.odd_length = True

    response = await _speak(http, elevenlabs, "pcm_22050")

    assert len(response.content) % 2 == 1
    assert response.content[:-1] == render_audio(TEXT, "pcm_22050")


# -- success headers and accounting ---------------------------------------------------------


async def test_success_headers_report_the_request_billing_and_concurrency(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.max_concurrent_requests = 7
    text = "Fifteen letters"

    flash = await _speak(http, elevenlabs, body=_body(text))
    multilingual = await _speak(
        http, elevenlabs, body={"text": text, "model_id": MULTILINGUAL}, voice_id=SARAH.voice_id
    )

    assert flash.headers["character-cost"] == flash.headers["x-character-count"] == "8"
    assert multilingual.headers["character-cost"] == "15"
    for response in (flash, multilingual):
        assert len(response.headers["request-id"]) == 20
        assert len(response.headers["history-item-id"]) == 20
        assert response.headers["current-concurrent-requests"] == "1"
        assert response.headers["maximum-concurrent-requests"] == "7"
        assert response.headers["transfer-encoding"] == "chunked"
    assert flash.headers["request-id"] != multilingual.headers["request-id"]
    stats = elevenlabs.stats()
    assert (stats.total_requests, stats.characters_billed) == (2, 8 + 15)


async def test_every_request_is_recorded_with_lower_case_headers_query_and_json(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    await http.post(
        _url(elevenlabs),
        params={"output_format": "ulaw_8000"},
        json=_body(language_code="en"),
        headers={"XI-API-KEY": elevenlabs.api_key, "X-Extra": "1"},
    )
    await http.get(f"{elevenlabs.base_url}/v1/models", headers={"xi-api-key": elevenlabs.api_key})

    first, second = elevenlabs.stats().requests
    assert (first.method, first.path) == ("POST", f"/v1/text-to-speech/{MATILDA.voice_id}/stream")
    assert first.query == {"output_format": "ulaw_8000"}
    assert first.headers["xi-api-key"] == elevenlabs.api_key
    assert first.headers["x-extra"] == "1"
    assert first.json == _body(language_code="en")
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    assert elevenlabs.stats().total_requests == 1  # the counters are about speech only


async def test_reset_restores_the_default_behavior_and_clears_the_stats(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 500
    await _speak(http, elevenlabs)

    elevenlabs.reset()

    assert elevenlabs.behavior == Behavior()
    stats = elevenlabs.stats()
    assert (stats.total_requests, stats.peak_concurrent, stats.requests) == (0, 0, [])
    assert (await _speak(http, elevenlabs)).status_code == 200


# -- errors -----------------------------------------------------------------------------------


async def test_a_missing_key_gets_401_needs_authorization(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    response = await _speak(http, elevenlabs, key=None)

    assert response.status_code == 401
    assert response.json()["detail"]["status"] == "needs_authorization"


async def test_a_wrong_key_gets_401_invalid_api_key_in_the_current_error_format(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    response = await _speak(http, elevenlabs, key="not-the-key")
    models = await http.get(f"{elevenlabs.base_url}/v1/models", headers={"xi-api-key": "nope"})

    assert response.status_code == models.status_code == 401
    detail = response.json()["detail"]
    assert detail["type"] == "authentication_error"
    assert detail["code"] == "unauthorized"
    assert detail["status"] == "invalid_api_key"
    assert detail["message"] == "Invalid API key"
    assert detail["request_id"] == response.headers["x-trace-id"]
    assert "request-id" not in response.headers
    assert response.headers["content-type"] == "application/json"
    assert elevenlabs.stats().characters_billed == 0


async def test_schema_errors_get_422_with_a_pydantic_style_detail_array(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    body = {"model_id": FLASH, "voice_settings": {"stability": 1.5, "speed": 2.0}}

    response = await _speak(http, elevenlabs, "pcm_9000", body=body)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert {tuple(item["loc"]) for item in detail} == {
        ("query", "output_format"),
        ("body", "text"),
        ("body", "voice_settings", "stability"),
        ("body", "voice_settings", "speed"),
    }
    assert all(item["msg"] and item["type"] for item in detail)


async def test_an_empty_text_and_a_body_that_is_not_json_get_422(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    empty = await _speak(http, elevenlabs, body=_body(""))
    garbled = await http.post(
        _url(elevenlabs), content=b"{not json", headers={"xi-api-key": elevenlabs.api_key}
    )

    assert empty.status_code == garbled.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body", "text"]
    assert garbled.json()["detail"][0]["type"] == "json_invalid"


async def test_language_code_with_a_model_that_is_not_v2_5_is_a_400(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    body = {"text": TEXT, "model_id": MULTILINGUAL, "language_code": "en"}

    response = await _speak(http, elevenlabs, body=body)

    assert response.status_code == 400
    assert "language_code" in response.json()["detail"]["message"]


async def test_text_over_the_model_limit_is_400_max_character_limit_exceeded(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    body = {"text": "a" * 10_001, "model_id": MULTILINGUAL}

    response = await _speak(http, elevenlabs, body=body)

    assert response.status_code == 400
    assert response.json()["detail"]["status"] == "max_character_limit_exceeded"


async def test_unknown_voices_models_and_unencodable_formats_are_refused_clearly(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    voice = await _speak(http, elevenlabs, voice_id="no-such-voice")
    model = await _speak(http, elevenlabs, body=_body(model_id="eleven_v9"))
    opus = await _speak(http, elevenlabs, "opus_48000_64")

    assert (voice.status_code, voice.json()["detail"]["status"]) == (404, "voice_not_found")
    assert (model.status_code, model.json()["detail"]["status"]) == (400, "model_not_found")
    assert opus.status_code == 400
    assert "opus_48000_64" in opus.json()["detail"]["message"]


@pytest.mark.parametrize(
    ("behavior", "status", "detail_status", "retry_after"),
    [
        (Behavior(status=401, error_status_text="quota_exceeded"), 401, "quota_exceeded", None),
        (Behavior(status=401), 401, "invalid_api_key", None),
        (
            Behavior(status=429, error_status_text="too_many_concurrent_requests"),
            429,
            "too_many_concurrent_requests",
            None,
        ),
        (
            Behavior(status=429, error_status_text="system_busy", retry_after_s=2),
            429,
            "system_busy",
            "2",
        ),
        (Behavior(status=500), 500, "internal_error", None),
        (Behavior(status=503), 503, "internal_error", None),
    ],
)
async def test_injected_faults_get_the_documented_error_bodies_and_no_audio(
    http: httpx.AsyncClient,
    elevenlabs: FakeElevenLabs,
    behavior: Behavior,
    status: int,
    detail_status: str,
    retry_after: str | None,
) -> None:
    elevenlabs.behavior = behavior

    response = await _speak(http, elevenlabs)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["detail"]["status"] == detail_status
    assert response.headers.get("retry-after") == retry_after
    assert elevenlabs.stats().characters_billed == 0


async def test_an_injected_422_has_a_detail_array(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 422

    response = await _speak(http, elevenlabs)

    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_fail_first_n_fails_only_the_first_requests(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(status=503, fail_first_n=2)

    statuses = [(await _speak(http, elevenlabs)).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]


async def test_a_non_audio_body_is_a_200_with_json(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.non_audio_body = True

    response = await _speak(http, elevenlabs)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "detail" in response.json()


# -- concurrency ------------------------------------------------------------------------------


async def test_parallel_requests_are_counted_until_their_bodies_end_and_the_peak_is_kept(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.ttfb_s = 0.3

    responses = await asyncio.gather(*(_speak(http, elevenlabs) for _ in range(5)))

    assert all(r.status_code == 200 for r in responses)
    assert max(int(r.headers["current-concurrent-requests"]) for r in responses) == 5
    stats = elevenlabs.stats()
    assert (stats.total_requests, stats.peak_concurrent, stats.concurrent_now) == (5, 5, 0)


async def test_enforced_concurrency_answers_429_above_the_maximum(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(
        ttfb_s=0.3, max_concurrent_requests=2, enforce_concurrency=True, retry_after_s=1.5
    )

    responses = await asyncio.gather(*(_speak(http, elevenlabs) for _ in range(4)))

    assert sorted(r.status_code for r in responses) == [200, 200, 429, 429]
    for rejected in (r for r in responses if r.status_code == 429):
        assert rejected.json()["detail"]["status"] == "too_many_concurrent_requests"
        assert rejected.headers["retry-after"] == "1.5"
    assert elevenlabs.stats().peak_concurrent == 4  # arrivals are counted, rejected or not


# -- stream shapes and faults ---------------------------------------------------------------


async def test_chunks_cut_at_odd_sizes_arrive_with_the_boundaries_they_were_sent_with(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    sizes = (7, 333, 1)
    elevenlabs.behavior.chunk_sizes = sizes
    expected = render_audio("Short one.", "pcm_16000")
    received: list[bytes] = []

    async with http.stream(
        "POST",
        _url(elevenlabs),
        params={"output_format": "pcm_16000"},
        json=_body("Short one."),
        headers={"xi-api-key": elevenlabs.api_key},
    ) as response:
        async for piece in response.aiter_raw():
            received.append(piece)

    assert b"".join(received) == expected
    sent_ends = set(_chunk_ends(sizes, len(expected)))
    received_ends = set(_chunk_ends(tuple(len(p) for p in received), len(expected)))
    # The client may split a chunk further (TCP reads) but never joins two: every boundary shows.
    assert sent_ends <= received_ends
    assert any(size % 2 for size in map(len, received))


async def test_a_truncated_body_raises_remote_protocol_error_on_the_client(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(chunk_sizes=(100,), truncate_after_bytes=1001)
    received = bytearray()

    with pytest.raises(httpx.RemoteProtocolError):
        await _drain(http, elevenlabs, received)

    assert len(received) == 1001
    await _until_idle(elevenlabs)
    assert elevenlabs.stats().concurrent_now == 0


async def test_a_stall_holds_the_body_until_the_client_gives_up(
    elevenlabs: FakeElevenLabs,
) -> None:
    elevenlabs.behavior = Behavior(stall_after_bytes=500, stall_s=30)
    received = bytearray()

    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.3)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await _drain(impatient, elevenlabs, received)

    assert len(received) == 500
    await _until_idle(elevenlabs)
    assert elevenlabs.stats().concurrent_now == 0  # the fake noticed the client leave


async def test_a_stall_shorter_than_the_timeout_delays_the_rest_of_the_body(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(stall_after_bytes=0, stall_s=0.25, ttfb_s=0.1)

    started = time.monotonic()
    response = await _speak(http, elevenlabs)

    assert time.monotonic() - started >= 0.35
    assert response.content == render_audio(TEXT, "pcm_16000")


async def test_ttfb_delays_the_status_line(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.ttfb_s = 0.25

    started = time.monotonic()
    async with http.stream(
        "POST", _url(elevenlabs), json=_body(), headers={"xi-api-key": elevenlabs.api_key}
    ) as response:
        headers_after = time.monotonic() - started
        await response.aread()

    assert headers_after >= 0.25


async def test_stopping_cuts_off_a_stalled_response_within_about_a_second() -> None:
    fake = FakeElevenLabs().start()
    fake.behavior = Behavior(stall_after_bytes=10, stall_s=30)
    base_url = fake.base_url

    async with (
        httpx.AsyncClient(timeout=10.0) as http,
        http.stream(
            "POST",
            f"{base_url}/v1/text-to-speech/{MATILDA.voice_id}/stream",
            json=_body(),
            headers={"xi-api-key": fake.api_key},
        ) as response,
    ):
        started = time.monotonic()
        await asyncio.to_thread(fake.stop)
        stop_s = time.monotonic() - started
        with pytest.raises(httpx.RemoteProtocolError):
            await response.aread()

    assert stop_s < 1.5
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url


# -- catalogue --------------------------------------------------------------------------------


async def test_models_voices_and_subscription_describe_the_fake_account(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    key = {"xi-api-key": elevenlabs.api_key}
    await _speak(http, elevenlabs, body=_body("Twenty characters!!!"))

    models = (await http.get(f"{elevenlabs.base_url}/v1/models", headers=key)).json()
    voices = (await http.get(f"{elevenlabs.base_url}/v1/voices", headers=key)).json()
    subscription = (
        await http.get(f"{elevenlabs.base_url}/v1/user/subscription", headers=key)
    ).json()

    limits = {m["model_id"]: m["maximum_text_length_per_request"] for m in models}
    assert limits == {
        "eleven_flash_v2_5": 40_000,
        "eleven_turbo_v2_5": 40_000,
        "eleven_multilingual_v2": 10_000,
    }
    flash = next(m for m in models if m["model_id"] == FLASH)
    assert {"en", "es", "zh"} <= {lang["language_id"] for lang in flash["languages"]}
    persona_voices = {
        v.voice_id for p in PROFILES.values() for v in (*p.voices.values(), p.fallback_voice)
    }
    assert {v["voice_id"] for v in voices["voices"]} == persona_voices
    assert {v["category"] for v in voices["voices"]} == {"premade"}
    assert subscription["character_count"] == math.ceil(20 / 2)
    assert subscription["character_limit"] > subscription["character_count"]
    assert {"tier", "status", "next_character_count_reset_unix"} <= subscription.keys()
