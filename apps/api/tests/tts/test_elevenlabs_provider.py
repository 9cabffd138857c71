"""ElevenLabsProvider against the fake ElevenLabs, over real HTTP with a real httpx client."""

import io
import math
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import soundfile as sf

from app.audio.formats import OutputFormat, spec_of
from app.tts.errors import (
    ProviderError,
    ProviderNotConfiguredError,
    UpstreamAuthError,
    UpstreamProtocolError,
    UpstreamQuotaExceededError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from app.tts.models import Language, Persona
from app.tts.personas import profile_for
from app.tts.providers.base import ProviderRequest, ProviderUsage
from app.tts.providers.elevenlabs import ElevenLabsProvider
from tests.fakes.elevenlabs_server import Behavior, FakeElevenLabs
from tests.fakes.synthetic_audio import render_audio

TEXT = "The kitchen was renovated last spring."


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        yield client


@pytest.fixture
def provider(http: httpx.AsyncClient, elevenlabs: FakeElevenLabs) -> ElevenLabsProvider:
    return ElevenLabsProvider(http, elevenlabs.base_url, elevenlabs.api_key)


def _request(
    persona: Persona = Persona.PROFESSIONAL,
    language: Language = Language.EN,
    output_format: OutputFormat = OutputFormat.PCM_16000,
    text: str = TEXT,
    previous_text: str | None = None,
    next_text: str | None = None,
) -> ProviderRequest:
    profile = profile_for(persona)
    return ProviderRequest(
        text=text,
        language=language,
        profile=profile,
        voice=profile.voice_for(language),
        wire=spec_of(output_format),
        previous_text=previous_text,
        next_text=next_text,
    )


async def _collect(
    provider: ElevenLabsProvider, request: ProviderRequest, usage: ProviderUsage | None = None
) -> list[bytes]:
    return [chunk async for chunk in provider.stream(request, usage or ProviderUsage())]


async def _chunks_until_error(
    provider: ElevenLabsProvider, request: ProviderRequest, received: list[bytes]
) -> None:
    async for chunk in provider.stream(request, ProviderUsage()):
        received.append(chunk)


# -- the request ------------------------------------------------------------------------------


async def test_a_request_goes_to_the_stream_endpoint_with_key_format_and_persona_body(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    request = _request(
        Persona.FRIENDLY,
        Language.ES,
        OutputFormat.ULAW_8000,
        text="La cocina es nueva.",
        previous_text="Bienvenidos.",
        next_text="Pasen, por favor.",
    )

    await _collect(provider, request)

    (recorded,) = elevenlabs.stats().requests
    profile = profile_for(Persona.FRIENDLY)
    assert recorded.method == "POST"
    assert recorded.path == f"/v1/text-to-speech/{profile.voices[Language.ES].voice_id}/stream"
    assert recorded.headers["xi-api-key"] == elevenlabs.api_key
    assert recorded.query == {"output_format": "ulaw_8000"}
    assert recorded.json == {
        "text": "La cocina es nueva.",
        "model_id": "eleven_flash_v2_5",
        "voice_settings": profile.settings.model_dump(),
        "language_code": "es",
        "previous_text": "Bienvenidos.",
        "next_text": "Pasen, por favor.",
    }


async def test_the_multilingual_persona_sends_no_language_code(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    chunks = await _collect(
        provider, _request(Persona.MULTILINGUAL, Language.ZH, text="欢迎光临。")
    )

    (recorded,) = elevenlabs.stats().requests
    assert recorded.json["model_id"] == "eleven_multilingual_v2"
    assert "language_code" not in recorded.json
    assert "previous_text" not in recorded.json
    assert "next_text" not in recorded.json
    assert chunks  # the fake answers 400 to language_code on this model


@pytest.mark.parametrize("persona", list(Persona))
@pytest.mark.parametrize("language", list(Language))
async def test_every_persona_voice_in_every_language_is_accepted_upstream(
    provider: ElevenLabsProvider, persona: Persona, language: Language
) -> None:
    chunks = await _collect(provider, _request(persona, language, text="Hola, hello, 你好。"))

    assert b"".join(chunks)


# -- the response -----------------------------------------------------------------------------


async def test_usage_is_read_from_the_response_headers(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.max_concurrent_requests = 7
    usage = ProviderUsage()

    await _collect(provider, _request(text=TEXT), usage)

    assert usage.characters_billed == math.ceil(len(TEXT) / 2)  # Flash bills half a credit
    assert usage.characters_billed == elevenlabs.stats().characters_billed
    assert usage.concurrent_requests == 1
    assert usage.max_concurrent_requests == 7
    assert usage.request_id is not None
    assert len(usage.request_id) == 20


async def test_the_multilingual_model_bills_every_character(
    provider: ElevenLabsProvider,
) -> None:
    usage = ProviderUsage()

    await _collect(provider, _request(Persona.MULTILINGUAL, text=TEXT), usage)

    assert usage.characters_billed == len(TEXT)


@pytest.mark.parametrize(
    "chunk_sizes", [(7,), (7, 333, 1), (3, 5, 1001)], ids=lambda s: "-".join(map(str, s))
)
async def test_pcm_chunks_cut_at_odd_offsets_come_out_sample_aligned_and_byte_identical(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs, chunk_sizes: tuple[int, ...]
) -> None:
    elevenlabs.behavior.chunk_sizes = chunk_sizes
    text = "Yes, right."

    chunks = await _collect(provider, _request(output_format=OutputFormat.PCM_22050, text=text))

    assert all(len(chunk) % 2 == 0 and chunk for chunk in chunks)
    assert b"".join(chunks) == render_audio(text, "pcm_22050")


async def test_an_odd_length_pcm_body_loses_only_the_stray_byte(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(odd_length=True, chunk_sizes=(333,))

    chunks = await _collect(provider, _request(output_format=OutputFormat.PCM_16000))

    assert b"".join(chunks) == render_audio(TEXT, "pcm_16000")


async def test_mp3_cut_at_odd_offsets_arrives_whole_and_decodes(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.chunk_sizes = (7, 333)

    chunks = await _collect(provider, _request(output_format=OutputFormat.MP3_22050_32))

    audio = b"".join(chunks)
    assert audio == render_audio(TEXT, "mp3_22050_32")
    assert sf.info(io.BytesIO(audio)).samplerate == 22050


async def test_the_first_chunk_arrives_before_the_body_ends(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(chunk_sizes=(1000,), stall_after_bytes=2000, stall_s=30)
    stream = provider.stream(_request(), ProviderUsage())

    first = await anext(stream)
    await stream.aclose()

    assert len(first) == 1000


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "error_type", "account_wide"),
    [
        (Behavior(status=401), UpstreamAuthError, True),
        (
            Behavior(status=401, error_status_text="quota_exceeded"),
            UpstreamQuotaExceededError,
            True,
        ),
        (Behavior(status=422), UpstreamRejectedError, False),
        (
            Behavior(status=400, error_status_text="invalid_parameters"),
            UpstreamRejectedError,
            False,
        ),
        (Behavior(status=404), UpstreamRejectedError, False),
        (Behavior(status=429), UpstreamRateLimitedError, True),
        (Behavior(status=500), UpstreamServerError, False),
        (Behavior(status=503), UpstreamServerError, False),
    ],
    ids=["401-invalid", "401-quota", "422", "400", "404", "429", "500", "503"],
)
async def test_each_upstream_error_status_maps_to_our_error_type_and_yields_no_audio(
    provider: ElevenLabsProvider,
    elevenlabs: FakeElevenLabs,
    behavior: Behavior,
    error_type: type[ProviderError],
    account_wide: bool,
) -> None:
    elevenlabs.behavior = behavior
    received: list[bytes] = []

    with pytest.raises(error_type) as caught:
        await _chunks_until_error(provider, _request(), received)

    assert type(caught.value) is error_type
    assert caught.value.account_wide is account_wide
    assert caught.value.upstream_status == behavior.status
    assert received == []


@pytest.mark.parametrize(
    ("status_text", "retry_after_s"),
    [("too_many_concurrent_requests", 2.5), ("system_busy", None)],
)
async def test_a_429_keeps_the_retry_after_it_came_with(
    provider: ElevenLabsProvider,
    elevenlabs: FakeElevenLabs,
    status_text: str,
    retry_after_s: float | None,
) -> None:
    elevenlabs.behavior = Behavior(
        status=429, error_status_text=status_text, retry_after_s=retry_after_s
    )

    with pytest.raises(UpstreamRateLimitedError) as caught:
        await _collect(provider, _request())

    assert caught.value.retry_after_s == retry_after_s
    assert status_text in caught.value.message


async def test_a_wrong_key_is_an_account_wide_auth_error(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    provider = ElevenLabsProvider(http, elevenlabs.base_url, "not-the-key")

    with pytest.raises(UpstreamAuthError) as caught:
        await _collect(provider, _request())

    assert caught.value.account_wide
    assert "invalid_api_key" in caught.value.message


async def test_a_closed_port_is_unreachable(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed: connecting is refused.
    provider = ElevenLabsProvider(http, f"http://127.0.0.1:{port}", "test-eleven-key")

    with pytest.raises(UpstreamUnreachableError) as caught:
        await _collect(provider, _request())

    assert caught.value.account_wide


async def test_a_truncated_stream_is_a_protocol_error_after_the_audio_that_did_arrive(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior = Behavior(chunk_sizes=(500,), truncate_after_bytes=3001)
    received: list[bytes] = []

    with pytest.raises(UpstreamProtocolError):
        await _chunks_until_error(provider, _request(), received)

    assert b"".join(received) == render_audio(TEXT, "pcm_16000")[:3000]


async def test_a_json_body_on_200_is_a_protocol_error_and_never_audio(
    provider: ElevenLabsProvider, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.non_audio_body = True
    received: list[bytes] = []

    with pytest.raises(UpstreamProtocolError) as caught:
        await _chunks_until_error(provider, _request(), received)

    assert caught.value.upstream_status == 200
    assert received == []


@pytest.mark.parametrize(
    "behavior",
    [Behavior(stall_after_bytes=640, stall_s=30), Behavior(ttfb_s=2.0)],
    ids=["stall-mid-body", "slow-first-byte"],
)
async def test_waiting_longer_than_the_read_timeout_is_a_timeout(
    elevenlabs: FakeElevenLabs, behavior: Behavior
) -> None:
    elevenlabs.behavior = behavior

    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=0.3)) as impatient:
        provider = ElevenLabsProvider(impatient, elevenlabs.base_url, elevenlabs.api_key)
        with pytest.raises(UpstreamTimeoutError):
            await _collect(provider, _request())


async def test_without_a_key_the_provider_is_not_configured_and_calls_nobody(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    provider = ElevenLabsProvider(http, elevenlabs.base_url, None)

    with pytest.raises(ProviderNotConfiguredError) as caught:
        await _collect(provider, _request())

    assert not provider.configured
    assert caught.value.account_wide
    assert elevenlabs.stats().requests == []


# -- headers the fake never sends --------------------------------------------------------------


async def test_non_finite_numbers_in_usage_and_retry_after_headers_are_ignored() -> None:
    # The fake only sends well-formed headers; this stand-in upstream sends "inf" and "nan",
    # which once escaped the provider as an OverflowError instead of being ignored.
    def upstream(request: httpx.Request) -> httpx.Response:
        if request.url.params["output_format"] == "pcm_16000":
            headers = {
                "content-type": "audio/pcm",
                "character-cost": "inf",
                "x-character-count": "12",
                "current-concurrent-requests": "nan",
            }
            return httpx.Response(200, headers=headers, content=b"\x01\x00" * 8)
        return httpx.Response(429, headers={"retry-after": "inf"}, json={"detail": {}})

    usage = ProviderUsage()
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as stand_in:
        provider = ElevenLabsProvider(stand_in, "http://upstream.test", "key")
        chunks = await _collect(provider, _request(output_format=OutputFormat.PCM_16000), usage)
        with pytest.raises(UpstreamRateLimitedError) as caught:
            await _collect(provider, _request(output_format=OutputFormat.ULAW_8000))

    assert b"".join(chunks) == b"\x01\x00" * 8
    assert (usage.characters_billed, usage.concurrent_requests) == (12, None)
    assert caught.value.retry_after_s is None
