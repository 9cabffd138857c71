"""POST /api/v1/voice/streaming/quality/analyze: uploads and synthesize bodies, and bad input."""

import io
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from app.audio import g711
from tests.api.test_bad_input import assert_error_body

URL = "/api/v1/voice/streaming/quality/analyze"
SYNTHESIZE = "/api/v1/voice/synthesize"
TEXT = "Welcome to the open house at 42 Maple Street. The kitchen is new this spring."
MEASURES = {
    "duration",
    "leading_silence",
    "trailing_silence",
    "longest_pause",
    "pause_share",
    "clipping",
    "loudness",
    "spectral_flatness",
    "truncation",
}
GOOD = 0.8


async def _spoken(client: httpx.AsyncClient, output_format: str, text: str = TEXT) -> bytes:
    """Real eSpeak NG speech, made by the service itself."""
    response = await client.post(SYNTHESIZE, json={"text": text, "output_format": output_format})
    assert response.status_code == 200, response.text
    return response.content


async def _upload(
    client: httpx.AsyncClient, data: bytes, filename: str = "clip", **fields: str
) -> httpx.Response:
    files = {"file": (filename, data, "application/octet-stream")}
    return await client.post(URL, files=files, data=fields)


def _assert_good_report(body: dict[str, Any]) -> None:
    assert body["score"] >= GOOD, body
    assert body["verdict"] == "good"
    assert body["recommendations"] == []
    assert {m["name"] for m in body["measures"]} == MEASURES
    for measure in body["measures"]:
        assert measure["verdict"] == "good", measure
        assert measure["value"] is not None
        assert measure["unit"]
        assert measure["detail"]


def _wav(samples: np.ndarray[Any, Any], rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("output_format", "container"), [("mp3_44100_128", "MP3"), ("wav_16000", "WAV")]
)
async def test_an_uploaded_clip_of_real_speech_gets_a_good_score_and_every_measure(
    client: httpx.AsyncClient, output_format: str, container: str
) -> None:
    audio = await _spoken(client, output_format)

    response = await _upload(client, audio, text=TEXT)

    assert response.status_code == 200, response.text
    body = response.json()
    _assert_good_report(body)
    assert body["source"] == "upload"
    assert body["format"] == container
    assert body["language"] == "en"
    assert body["expected_duration_s"] == pytest.approx(len(TEXT) / 14, abs=0.01)
    assert 3.0 < body["duration_s"] < 8.0
    assert body["segments"] == []
    assert body["request_id"] == response.headers["x-request-id"]


async def test_without_a_text_the_duration_is_not_measured(client: httpx.AsyncClient) -> None:
    audio = await _spoken(client, "wav_22050")

    response = await _upload(client, audio)

    assert response.status_code == 200, response.text
    body = response.json()
    duration = next(m for m in body["measures"] if m["name"] == "duration")
    assert duration["verdict"] == "not_measured"
    assert duration["score"] is None
    assert body["expected_duration_s"] is None
    assert body["language"] is None
    assert body["score"] >= GOOD


async def test_raw_mulaw_is_read_as_the_output_format_names_it(client: httpx.AsyncClient) -> None:
    audio = await _spoken(client, "ulaw_8000")

    response = await _upload(client, audio, text=TEXT, output_format="ulaw_8000")

    assert response.status_code == 200, response.text
    body = response.json()
    _assert_good_report(body)
    assert body["format"] == "ulaw_8000"
    assert body["sample_rate"] == 8000


async def test_a_clipped_upload_is_scored_low_and_told_what_to_do(
    client: httpx.AsyncClient,
) -> None:
    pcm = g711.ulaw_decode(await _spoken(client, "ulaw_8000")).astype(np.int32)
    clipped = np.clip(pcm * 20, -32768, 32767).astype(np.int16)

    response = await _upload(client, _wav(clipped, 8000), text=TEXT)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["score"] < GOOD
    assert any(r.startswith("Clipping on") for r in body["recommendations"])
    clipping = next(m for m in body["measures"] if m["name"] == "clipping")
    assert clipping["verdict"] == "poor"


async def test_a_synthesize_body_is_spoken_and_analysed_per_segment(
    client: httpx.AsyncClient,
) -> None:
    body = {"text": TEXT, "persona": "friendly", "output_format": "pcm_16000"}

    response = await client.post(URL, json=body)

    assert response.status_code == 200, response.text
    analysis = response.json()
    _assert_good_report(analysis)
    assert analysis["source"] == "synthesis"
    assert analysis["provider"] == "espeak"
    assert analysis["cache"] in ("miss", "hit")
    assert analysis["language"] == "en"
    assert analysis["format"] == "pcm_16000"
    assert analysis["sample_rate"] == 16000
    segments = analysis["segments"]
    assert [s["index"] for s in segments] == [0, 1]
    assert " ".join(s["text"] for s in segments) == TEXT
    for segment in segments:
        _assert_good_report(segment)
        assert segment["provider"] == "espeak"
    assert analysis["duration_s"] == pytest.approx(sum(s["duration_s"] for s in segments), abs=0.01)


async def test_a_second_analysis_of_the_same_body_is_answered_from_the_cache(
    client: httpx.AsyncClient,
) -> None:
    body = {"text": "¿Le gustaría agendar una visita?", "output_format": "mp3_22050_32"}
    await client.post(URL, json=body)

    response = await client.post(URL, json=body)

    assert response.status_code == 200, response.text
    analysis = response.json()
    assert analysis["cache"] == "hit"
    assert analysis["language"] == "es"
    assert analysis["score"] >= GOOD


async def test_an_invalid_synthesize_body_gets_422_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(URL, json={"text": "Hello", "persona": "pirate"})

    error = assert_error_body(response, 422, "validation_error")
    assert any(detail["loc"] == ["body", "persona"] for detail in error["details"])


async def test_bytes_that_are_not_audio_get_422_unreadable_audio(
    client: httpx.AsyncClient,
) -> None:
    response = await _upload(client, b"This is a text file, not a recording.\n" * 50)

    error = assert_error_body(response, 422, "unreadable_audio")
    assert "BytesIO" not in error["message"] + str(error["details"])


@pytest.mark.parametrize("output_format", ["mp3_44100_128", "wav_16000"])
async def test_a_file_cut_in_the_middle_of_its_header_gets_422_unreadable_audio(
    client: httpx.AsyncClient, output_format: str
) -> None:
    audio = await _spoken(client, output_format)

    # An MP3 frame header is 4 bytes, a WAV header 44.
    response = await _upload(client, audio[: 2 if output_format.startswith("mp3") else 22])

    assert_error_body(response, 422, "unreadable_audio")


async def test_a_wav_header_with_no_frames_gets_422_empty_audio(
    client: httpx.AsyncClient,
) -> None:
    header_only = _wav(np.zeros(0, dtype=np.int16), 16000)

    response = await _upload(client, header_only, text=TEXT)

    assert len(header_only) == 44
    assert_error_body(response, 422, "empty_audio")


async def test_an_empty_upload_gets_422_empty_audio(client: httpx.AsyncClient) -> None:
    response = await _upload(client, b"", text=TEXT)

    assert_error_body(response, 422, "empty_audio")


async def test_an_11_mb_upload_gets_413(client: httpx.AsyncClient) -> None:
    response = await _upload(client, bytes(11_000_000), output_format="pcm_16000")

    error = assert_error_body(response, 413, "payload_too_large")
    assert error["details"]["max_bytes"] == 10 * 1_048_576


async def test_an_upload_just_under_10_mb_is_accepted(client: httpx.AsyncClient) -> None:
    # Ten decimal megabytes of raw 16 kHz samples: about five minutes of (silent) audio.
    response = await _upload(client, bytes(10_000_000), output_format="pcm_16000")

    assert response.status_code == 200, response.text
    assert response.json()["recommendations"][0].startswith("No speech found")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "audio/wav", ""]
)
async def test_a_body_that_is_neither_multipart_nor_json_gets_415(
    client: httpx.AsyncClient, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post(URL, content=b"RIFF....WAVE", headers=headers)

    assert_error_body(response, 415, "unsupported_media_type")


async def test_an_unknown_output_format_gets_422_naming_it(client: httpx.AsyncClient) -> None:
    audio = await _spoken(client, "ulaw_8000")

    response = await _upload(client, audio, output_format="ulaw_16000")

    error = assert_error_body(response, 422, "validation_error")
    assert any(detail["loc"] == ["body", "output_format"] for detail in error["details"])


async def test_an_unknown_language_gets_422_naming_it(client: httpx.AsyncClient) -> None:
    audio = await _spoken(client, "wav_16000")

    response = await _upload(client, audio, text=TEXT, language="fr")

    error = assert_error_body(response, 422, "validation_error")
    assert any(detail["loc"] == ["body", "language"] for detail in error["details"])


async def test_a_form_without_a_file_gets_422(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, files={"text": (None, TEXT)})

    error = assert_error_body(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "file"]


async def test_an_unknown_form_field_gets_422_naming_it(client: httpx.AsyncClient) -> None:
    audio = await _spoken(client, "wav_16000")

    response = await _upload(client, audio, text=TEXT, voice="Sarah")

    error = assert_error_body(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "voice"]


async def test_a_second_file_gets_400_before_it_is_stored(client: httpx.AsyncClient) -> None:
    audio = await _spoken(client, "wav_16000")

    response = await client.post(
        URL, files=[("file", ("a.wav", audio)), ("text", ("t.txt", b"Hello"))]
    )

    error = assert_error_body(response, 400, "malformed_form")
    assert "files" in error["message"].lower()


async def test_a_multipart_body_without_a_boundary_gets_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b"--x\r\n", headers={"content-type": "multipart/form-data"}
    )

    assert_error_body(response, 400, "malformed_form")


async def test_the_openapi_describes_both_ways_in_and_the_errors(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()

    operation = spec["paths"][URL]["post"]
    assert operation["summary"]
    assert operation["tags"] == ["quality"]
    content = operation["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["required"] == ["file"]
    assert content["application/json"]["schema"]["$ref"].endswith("/SynthesizeRequest")
    for status in ("200", "413", "415", "422"):
        assert status in operation["responses"]
    assert "QualityAnalysis" in spec["components"]["schemas"]
