"""The offline engine: real eSpeak NG speech in three languages, one owning thread."""

import asyncio

import numpy as np

from app.audio import codecs, quality
from app.audio.formats import OutputFormat, spec_of
from app.tts.models import Language, Persona
from app.tts.personas import PROFILES, profile_for
from app.tts.providers.base import ProviderRequest, ProviderUsage
from app.tts.providers.espeak import EspeakProvider, shared_engine
from app.tts.segmenting import spoken_length

PHRASES = {
    Language.EN: "Welcome to the open house at 42 Maple Street.",
    Language.ES: "¿Le gustaría agendar una visita?",
    Language.ZH: "欢迎参观这套房子。",
}


async def test_the_engine_speaks_each_language_as_clean_speech() -> None:
    engine = shared_engine()
    await engine.start()

    for language, text in PHRASES.items():
        pcm = await engine.synthesize(text, language, profile_for(Persona.FRIENDLY).offline)
        measures = quality.measure(pcm, engine.sample_rate, spoken_length(text))
        assert engine.sample_rate == 22050
        assert measures.duration_s > 1.0, language
        assert measures.score >= 0.8, (language, measures)


async def test_languages_are_really_different_voices() -> None:
    engine = shared_engine()
    await engine.start()
    offline = profile_for(Persona.PROFESSIONAL).offline
    text = "Casa"

    outputs = {lang: (await engine.synthesize(text, lang, offline)).tobytes() for lang in Language}

    assert len(set(outputs.values())) == 3


async def test_each_persona_has_its_own_offline_voice() -> None:
    engine = shared_engine()
    await engine.start()
    text = PHRASES[Language.EN]

    outputs = [
        (await engine.synthesize(text, Language.EN, profile.offline)).tobytes()
        for profile in PROFILES.values()
    ]

    assert len(set(outputs)) == len(PROFILES)


async def test_concurrent_callers_each_get_their_own_utterance() -> None:
    engine = shared_engine()
    await engine.start()
    offline = profile_for(Persona.CASUAL).offline
    jobs = list(PHRASES.items()) * 6
    sequential = [len(await engine.synthesize(t, lang, offline)) for lang, t in jobs]

    concurrent = await asyncio.gather(*(engine.synthesize(t, lang, offline) for lang, t in jobs))

    # eSpeak NG carries filter state from one call to the next, so samples differ slightly
    # between runs; an utterance mixed up with another would differ by whole syllables.
    for pcm, expected, (_, text) in zip(concurrent, sequential, jobs, strict=True):
        assert abs(len(pcm) - expected) < expected * 0.02, text
        assert quality.measure(pcm, engine.sample_rate, spoken_length(text)).score >= 0.8


async def test_the_provider_delivers_the_requested_wire_format() -> None:
    engine = shared_engine()
    await engine.start()
    provider = EspeakProvider(engine)
    wire = spec_of(OutputFormat.ULAW_8000)
    profile = profile_for(Persona.AUTHORITATIVE)
    request = ProviderRequest(
        text=PHRASES[Language.ES],
        language=Language.ES,
        profile=profile,
        voice=profile.voice_for(Language.ES),
        wire=wire,
    )

    chunks = [chunk async for chunk in provider.stream(request, ProviderUsage())]

    audio = b"".join(chunks)
    pcm = codecs.decode(audio, wire)
    assert len(audio) / 8000 > 1.0
    assert np.abs(pcm.astype(np.int32)).max() > 1000


async def test_a_long_sentence_comes_out_in_several_chunks_the_first_one_short() -> None:
    engine = shared_engine()
    await engine.start()
    provider = EspeakProvider(engine)
    wire = spec_of(OutputFormat.PCM_16000)
    profile = profile_for(Persona.PROFESSIONAL)
    text = "The property includes a renovated kitchen, three bedrooms and a two car garage."
    request = ProviderRequest(
        text=text, language=Language.EN, profile=profile, voice=profile.voice_for(Language.EN),
        wire=wire,
    )  # fmt: skip

    chunks = [chunk async for chunk in provider.stream(request, ProviderUsage())]

    assert len(chunks) >= 3
    assert len(chunks[0]) == 16000 * 2 // 4  # the first 250 ms
