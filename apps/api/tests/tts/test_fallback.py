"""The provider chain against the fake ElevenLabs over real HTTP, ending in the offline engine."""

import time
from collections.abc import AsyncGenerator, AsyncIterator

import httpx
import pytest

from app.audio import codecs
from app.audio.formats import OutputFormat, spec_of
from app.cache.keys import SegmentIdentity
from app.tts.errors import SynthesisUnavailableError, UpstreamTimeoutError
from app.tts.fallback import ProviderChain, RetryPolicy
from app.tts.models import Language, Persona, Provider
from app.tts.personas import profile_for
from app.tts.providers.base import ProviderRequest, ProviderUsage
from app.tts.providers.elevenlabs import ElevenLabsProvider
from app.tts.providers.espeak import EspeakProvider, shared_engine
from app.tts.segmenting import segment
from tests.fakes.elevenlabs_server import FakeElevenLabs

BUDGET_S = 0.5
PROFILE = profile_for(Persona.PROFESSIONAL)
WIRE = spec_of(OutputFormat.PCM_16000)
SEGMENT = segment("The open house starts at noon on Saturday.", min_chars=20, max_chars=400)[0]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as client:
        yield client


async def _chain(
    http: httpx.AsyncClient,
    fake: FakeElevenLabs,
    key: str | None = "valid",
    retry: RetryPolicy | None = None,
    budget_s: float = BUDGET_S,
) -> ProviderChain:
    engine = shared_engine()
    await engine.start()
    api_key = fake.api_key if key == "valid" else key
    return ProviderChain(
        upstream=ElevenLabsProvider(http, fake.base_url, api_key),
        offline=EspeakProvider(engine),
        budget_s=budget_s,
        retry=retry,
    )


async def test_the_persona_voice_speaks_when_elevenlabs_answers(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    chain = await _chain(http, elevenlabs)

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ELEVENLABS
    assert spoken.voice_id == PROFILE.voice_for(Language.EN).voice_id
    assert spoken.failed_attempts == ()
    assert spoken.usage.characters_billed > 0
    assert len(codecs.decode(spoken.audio, WIRE)) > 16000


async def test_a_passing_server_error_is_retried_on_the_same_voice(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 500
    elevenlabs.behavior.fail_first_n = 1
    chain = await _chain(http, elevenlabs)

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ELEVENLABS
    assert spoken.voice_id == PROFILE.voice_for(Language.EN).voice_id
    assert spoken.failed_attempts == ("upstream_server_error",)
    primary = f"/v1/text-to-speech/{PROFILE.voice_for(Language.EN).voice_id}/stream"
    assert [r.path for r in elevenlabs.stats().requests] == [primary, primary]


async def test_a_lasting_server_error_exhausts_the_retries_then_the_fallback_voice(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 500
    chain = await _chain(http, elevenlabs, retry=RetryPolicy(retries=1, base_s=0.01))

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ESPEAK
    assert spoken.failed_attempts == ("upstream_server_error",) * 4
    primary = f"/v1/text-to-speech/{PROFILE.voice_for(Language.EN).voice_id}/stream"
    fallback = f"/v1/text-to-speech/{PROFILE.fallback_voice.voice_id}/stream"
    assert [r.path for r in elevenlabs.stats().requests] == [primary, primary, fallback, fallback]


async def test_without_retries_a_server_error_goes_to_the_fallback_voice(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 500
    elevenlabs.behavior.fail_first_n = 1
    chain = await _chain(http, elevenlabs, retry=RetryPolicy(retries=0))

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.voice_id == PROFILE.fallback_voice.voice_id
    assert spoken.failed_attempts == ("upstream_server_error",)


async def test_retry_after_is_honoured_and_a_wait_past_the_budget_is_not_taken(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 429
    elevenlabs.behavior.retry_after_s = 0.4
    elevenlabs.behavior.fail_first_n = 1
    chain = await _chain(http, elevenlabs, budget_s=2.0)
    started = time.monotonic()
    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)
    waited = time.monotonic() - started

    elevenlabs.reset()
    elevenlabs.behavior.status = 429
    elevenlabs.behavior.retry_after_s = 30
    too_long = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ELEVENLABS
    assert waited >= 0.4
    assert too_long.provider == Provider.ESPEAK
    assert elevenlabs.stats().total_requests == 1  # a 429 is account-wide: no other voice


async def test_a_stream_that_stalls_after_its_first_audio_is_cut_and_replaced(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.stall_after_bytes = 2048
    elevenlabs.behavior.stall_s = 5.0
    chain = await _chain(http, elevenlabs, retry=RetryPolicy(stall_s=0.3))
    started = time.monotonic()

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert time.monotonic() - started < 2  # not the 5 s stall, nor httpx's 10 s read timeout
    assert spoken.provider == Provider.ESPEAK
    assert spoken.failed_attempts == ("upstream_timeout", "upstream_timeout")


@pytest.mark.parametrize(
    ("status", "status_text", "code"),
    [
        (401, "invalid_api_key", "upstream_auth_failed"),
        (401, "quota_exceeded", "upstream_quota_exceeded"),
    ],
)
async def test_an_account_wide_failure_goes_straight_to_the_offline_engine(
    http: httpx.AsyncClient,
    elevenlabs: FakeElevenLabs,
    status: int,
    status_text: str,
    code: str,
) -> None:
    elevenlabs.behavior.status = status
    elevenlabs.behavior.error_status_text = status_text
    chain = await _chain(http, elevenlabs)

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ESPEAK
    assert spoken.failed_attempts == (code,)
    assert elevenlabs.stats().total_requests == 1  # the fallback voice would fail the same way


async def test_a_slow_upstream_costs_the_budget_not_silence(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.ttfb_s = 3.0
    chain = await _chain(http, elevenlabs)
    started = time.monotonic()

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    elapsed = time.monotonic() - started
    assert spoken.provider == Provider.ESPEAK
    assert UpstreamTimeoutError.code in spoken.failed_attempts
    assert elapsed < BUDGET_S + 0.4


async def test_a_truncated_stream_is_replaced_whole_by_the_next_provider(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.truncate_after_bytes = 3000
    chain = await _chain(http, elevenlabs)

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ESPEAK
    # Each voice tried (and retried while the budget allowed): never a cut-off take.
    assert set(spoken.failed_attempts) == {"upstream_bad_response"}
    voices = {r.path.split("/")[3] for r in elevenlabs.stats().requests}
    assert voices == {PROFILE.voice_for(Language.EN).voice_id, PROFILE.fallback_voice.voice_id}


async def test_an_error_body_sent_as_200_is_never_delivered_as_audio(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.non_audio_body = True
    chain = await _chain(http, elevenlabs)

    spoken = await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert spoken.provider == Provider.ESPEAK
    assert b"detail" not in spoken.audio


async def test_without_a_key_elevenlabs_is_never_called(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    chain = await _chain(http, elevenlabs, key=None)

    spoken = await chain.speak(SEGMENT, PROFILE, Language.ZH, WIRE)

    assert spoken.provider == Provider.ESPEAK
    assert spoken.failed_attempts == ()
    assert elevenlabs.stats().total_requests == 0


class _BrokenProvider:
    name = Provider.ESPEAK

    @property
    def configured(self) -> bool:
        return True

    def identity(self, request: ProviderRequest) -> SegmentIdentity:
        return SegmentIdentity(request.text, "broken", "none", "none", (), "en", "pcm_16000")

    async def stream(
        self, request: ProviderRequest, usage: ProviderUsage
    ) -> AsyncGenerator[bytes, None]:
        if request.text:
            raise UpstreamTimeoutError(self.name, "an offline engine that never works")
        yield b""


async def test_when_every_provider_fails_the_caller_gets_a_503_with_retry_after(
    http: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    elevenlabs.behavior.status = 503
    chain = ProviderChain(
        upstream=ElevenLabsProvider(http, elevenlabs.base_url, elevenlabs.api_key),
        offline=_BrokenProvider(),
        budget_s=BUDGET_S,
    )

    with pytest.raises(SynthesisUnavailableError) as caught:
        await chain.speak(SEGMENT, PROFILE, Language.EN, WIRE)

    assert caught.value.status_code == 503
    assert caught.value.headers["Retry-After"] == "1"
    failures = caught.value.details["failed_attempts"]
    assert set(failures[:-1]) == {"upstream_server_error"}  # both voices, with retries
    assert len(failures) >= 3
    assert failures[-1] == "upstream_timeout"
