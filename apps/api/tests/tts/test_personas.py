"""The five voice profiles: voices, models, settings and offline voices that really exist."""

import re
from pathlib import Path

import espeakng_loader
import pytest
from pydantic import ValidationError

from app.tts.models import Language, Persona
from app.tts.personas import (
    OFFLINE_LANGUAGE_VOICES,
    PROFILES,
    VoiceProfile,
    VoiceSettings,
    profile_for,
)

ELEVENLABS_VOICE_ID = re.compile(r"^[A-Za-z0-9]{20}$")
LATENCY_PERSONAS = [Persona.PROFESSIONAL, Persona.FRIENDLY, Persona.AUTHORITATIVE, Persona.CASUAL]
EACH_PROFILE = pytest.mark.parametrize("profile", list(PROFILES.values()), ids=lambda p: p.persona)


def _espeak_data() -> Path:
    return Path(espeakng_loader.get_data_path())


def test_there_are_exactly_the_five_personas() -> None:
    assert set(PROFILES) == set(Persona)
    assert len(PROFILES) == 5
    assert all(PROFILES[p].persona is p and profile_for(p) is PROFILES[p] for p in Persona)


@EACH_PROFILE
def test_each_persona_has_an_elevenlabs_voice_for_every_language(profile: VoiceProfile) -> None:
    assert set(profile.voices) == {Language.EN, Language.ES, Language.ZH}
    for language in Language:
        voice = profile.voice_for(language)
        assert ELEVENLABS_VOICE_ID.match(voice.voice_id), voice
        assert voice.name


def test_the_four_latency_personas_use_flash_v2_5_and_multilingual_uses_multilingual_v2() -> None:
    assert {p: PROFILES[p].model_id for p in LATENCY_PERSONAS} == dict.fromkeys(
        LATENCY_PERSONAS, "eleven_flash_v2_5"
    )
    assert PROFILES[Persona.MULTILINGUAL].model_id == "eleven_multilingual_v2"


@EACH_PROFILE
def test_only_v2_5_models_send_a_language_code(profile: VoiceProfile) -> None:
    assert profile.sends_language_code == profile.model_id.endswith("_v2_5")


def test_the_multilingual_persona_keeps_one_voice_in_every_language() -> None:
    voices = PROFILES[Persona.MULTILINGUAL].voices

    assert len({v.voice_id for v in voices.values()}) == 1


@EACH_PROFILE
def test_the_fallback_voice_is_none_of_the_personas_primary_voices(profile: VoiceProfile) -> None:
    primary = {v.voice_id for v in profile.voices.values()}

    assert ELEVENLABS_VOICE_ID.match(profile.fallback_voice.voice_id)
    assert profile.fallback_voice.voice_id not in primary


def test_one_voice_id_always_has_the_same_name() -> None:
    names: dict[str, set[str]] = {}
    for profile in PROFILES.values():
        for voice in [*profile.voices.values(), profile.fallback_voice]:
            names.setdefault(voice.voice_id, set()).add(voice.name)

    assert all(len(n) == 1 for n in names.values()), names


@EACH_PROFILE
def test_voice_settings_are_inside_elevenlabs_ranges(profile: VoiceProfile) -> None:
    settings = profile.settings

    assert 0.0 <= settings.stability <= 1.0
    assert 0.0 <= settings.similarity_boost <= 1.0
    assert 0.0 <= settings.style <= 1.0
    assert 0.7 <= settings.speed <= 1.2


@pytest.mark.parametrize(
    "outside",
    [
        {"stability": 1.1},
        {"similarity_boost": -0.1},
        {"style": 2.0},
        {"speed": 1.5},
        {"speed": 0.5},
    ],
)
def test_voice_settings_outside_elevenlabs_ranges_are_rejected(outside: dict[str, float]) -> None:
    values = {"stability": 0.5, "similarity_boost": 0.75} | outside

    with pytest.raises(ValidationError):
        VoiceSettings.model_validate(values)


def test_the_personas_offline_voices_all_differ() -> None:
    offline = [(p.offline.variant, p.offline.rate_wpm, p.offline.pitch) for p in PROFILES.values()]

    assert len(set(offline)) == len(PROFILES)
    assert len({variant for variant, _, _ in offline}) == len(PROFILES)


@EACH_PROFILE
def test_each_offline_variant_ships_with_espeak_ng(profile: VoiceProfile) -> None:
    assert (_espeak_data() / "voices" / "!v" / profile.offline.variant).is_file()


def test_offline_language_voices_are_us_english_latin_american_spanish_and_mandarin() -> None:
    assert dict(OFFLINE_LANGUAGE_VOICES) == {
        Language.EN: "en-us",
        Language.ES: "es-419",
        Language.ZH: "cmn",
    }


@pytest.mark.parametrize("language", list(Language))
def test_each_offline_language_voice_ships_with_espeak_ng(language: Language) -> None:
    name = OFFLINE_LANGUAGE_VOICES[language]

    shipped = {path.name.lower() for path in (_espeak_data() / "lang").rglob("*") if path.is_file()}

    assert name in shipped
