"""The five voice profiles: ElevenLabs voices per language, model, settings, fallback, offline.

Voice ids are ElevenLabs premade voices (available to every account through the API). Premade
voices speak every language of the v2/v2.5 models; per language we pick the one that sounds
most natural there. The multilingual persona keeps one voice in every language so a caller who
switches language mid-call still hears the same person.
"""

from collections.abc import Mapping
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field

from app.tts.models import Language, Persona

FLASH_V2_5 = "eleven_flash_v2_5"
MULTILINGUAL_V2 = "eleven_multilingual_v2"

# `language_code` is accepted by the v2.5 models only; others reject or ignore it.
MODELS_WITH_LANGUAGE_CODE = frozenset({FLASH_V2_5, "eleven_turbo_v2_5"})


class Voice(BaseModel):
    model_config = ConfigDict(frozen=True)

    voice_id: str
    name: str


class VoiceSettings(BaseModel):
    """ElevenLabs `voice_settings`, sent with every request of the persona."""

    model_config = ConfigDict(frozen=True)

    stability: float = Field(ge=0, le=1)
    similarity_boost: float = Field(ge=0, le=1)
    style: float = Field(default=0.0, ge=0, le=1)
    use_speaker_boost: bool = True
    speed: float = Field(default=1.0, ge=0.7, le=1.2)


class OfflineVoice(BaseModel):
    """eSpeak NG parameters, so the offline engine still tells the personas apart."""

    model_config = ConfigDict(frozen=True)

    variant: str = Field(description="eSpeak NG voice variant, e.g. f3 or m3")
    rate_wpm: int = Field(ge=80, le=450)
    pitch: int = Field(ge=0, le=100)
    pitch_range: int = Field(ge=0, le=100)


# eSpeak NG voice names per language (all shipped by espeakng-loader).
OFFLINE_LANGUAGE_VOICES: Mapping[Language, str] = MappingProxyType(
    {Language.EN: "en-us", Language.ES: "es-419", Language.ZH: "cmn"}
)


class VoiceProfile(BaseModel):
    model_config = ConfigDict(frozen=True)

    persona: Persona
    description: str
    model_id: str
    voices: dict[Language, Voice]
    fallback_voice: Voice
    settings: VoiceSettings
    offline: OfflineVoice

    def voice_for(self, language: Language) -> Voice:
        return self.voices[language]

    @property
    def sends_language_code(self) -> bool:
        return self.model_id in MODELS_WITH_LANGUAGE_CODE


MATILDA = Voice(voice_id="XrExE9yKIg1WjnnlVkGX", name="Matilda")
SARAH = Voice(voice_id="EXAVITQu4vr4xnSDxMaL", name="Sarah")
ALICE = Voice(voice_id="Xb7hH8MSUJpSbSDYk0k2", name="Alice")
LILY = Voice(voice_id="pFZP5JQG7iQjIQuC4Bku", name="Lily")
JESSICA = Voice(voice_id="cgSgspJ2msm6clMCkdW9", name="Jessica")
LAURA = Voice(voice_id="FGY2WhTYpPnrIDTdsKH5", name="Laura")
BELLA = Voice(voice_id="hpp4J3VqNfWAUOO0d1Us", name="Bella")
BRIAN = Voice(voice_id="nPczCjzI2devNBz1zQrb", name="Brian")
GEORGE = Voice(voice_id="JBFqnCBsd6RMkjVDRZzb", name="George")
DANIEL = Voice(voice_id="onwK4e9ZLuTAKqWW03F9", name="Daniel")
ERIC = Voice(voice_id="cjVigY5qzO86Huf0OWal", name="Eric")
WILL = Voice(voice_id="bIHbv24MWmeRgasZH58o", name="Will")
CHRIS = Voice(voice_id="iP95p4xoKVk53GoZ742B", name="Chris")
LIAM = Voice(voice_id="TX3LPaxmHKxFdv7VOQHJ", name="Liam")
ROGER = Voice(voice_id="CwhRBWXzGAHq8TQ4Fs17", name="Roger")

PROFILES: Mapping[Persona, VoiceProfile] = MappingProxyType(
    {
        Persona.PROFESSIONAL: VoiceProfile(
            persona=Persona.PROFESSIONAL,
            description="Knowledgeable and composed; the default listing agent.",
            model_id=FLASH_V2_5,
            voices={Language.EN: MATILDA, Language.ES: SARAH, Language.ZH: ALICE},
            fallback_voice=LILY,
            settings=VoiceSettings(stability=0.6, similarity_boost=0.8),
            offline=OfflineVoice(variant="f3", rate_wpm=165, pitch=55, pitch_range=50),
        ),
        Persona.FRIENDLY: VoiceProfile(
            persona=Persona.FRIENDLY,
            description="Warm and upbeat; greetings, open houses, first calls.",
            model_id=FLASH_V2_5,
            voices={Language.EN: JESSICA, Language.ES: LAURA, Language.ZH: JESSICA},
            fallback_voice=BELLA,
            settings=VoiceSettings(stability=0.45, similarity_boost=0.75, speed=1.05),
            offline=OfflineVoice(variant="f5", rate_wpm=175, pitch=65, pitch_range=70),
        ),
        Persona.AUTHORITATIVE: VoiceProfile(
            persona=Persona.AUTHORITATIVE,
            description="Deep and steady; offers, contracts, closing details.",
            model_id=FLASH_V2_5,
            voices={Language.EN: BRIAN, Language.ES: GEORGE, Language.ZH: DANIEL},
            fallback_voice=ERIC,
            settings=VoiceSettings(stability=0.7, similarity_boost=0.8, speed=0.95),
            offline=OfflineVoice(variant="m3", rate_wpm=150, pitch=35, pitch_range=40),
        ),
        Persona.CASUAL: VoiceProfile(
            persona=Persona.CASUAL,
            description="Relaxed and conversational; follow-ups and small talk.",
            model_id=FLASH_V2_5,
            voices={Language.EN: WILL, Language.ES: CHRIS, Language.ZH: LIAM},
            fallback_voice=ROGER,
            settings=VoiceSettings(stability=0.35, similarity_boost=0.7, speed=1.08),
            offline=OfflineVoice(variant="m1", rate_wpm=180, pitch=50, pitch_range=60),
        ),
        Persona.MULTILINGUAL: VoiceProfile(
            persona=Persona.MULTILINGUAL,
            description="One voice in English, Spanish and Mandarin; bilingual conversations.",
            model_id=MULTILINGUAL_V2,
            voices={Language.EN: SARAH, Language.ES: SARAH, Language.ZH: SARAH},
            fallback_voice=ALICE,
            settings=VoiceSettings(stability=0.5, similarity_boost=0.75, style=0.1),
            offline=OfflineVoice(variant="f4", rate_wpm=160, pitch=50, pitch_range=50),
        ),
    }
)


def profile_for(persona: Persona) -> VoiceProfile:
    return PROFILES[persona]
