"""An agent's record: its persona, languages, display name, custom phrases and voice overrides."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.tts.models import AgentId, Language, Persona, validate_speakable
from app.tts.personas import Voice, VoiceProfile

MAX_CUSTOM_PHRASES = 200
MAX_PHRASE_CHARS = 500

CustomPhrase = Annotated[str, Field(min_length=1, max_length=MAX_PHRASE_CHARS)]


class VoiceOverride(BaseModel):
    """An ElevenLabs voice (one of the account's, cloned ones included) used instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    voice_id: str = Field(
        pattern=r"^[A-Za-z0-9]{8,40}$",
        description="The ElevenLabs voice id.",
        examples=["21m00Tcm4TlvDq8ikWAM"],
    )
    name: str = Field(default="custom", min_length=1, max_length=64)

    def as_voice(self) -> Voice:
        return Voice(voice_id=self.voice_id, name=self.name)


class AgentSpec(BaseModel):
    """What an operator sets for an agent (the body of PUT /agents/{voice_agent_id})."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "display_name": "Maple Realty front desk",
                    "persona": "friendly",
                    "languages": ["en", "es"],
                    "custom_phrases": ["Thanks for calling Maple Realty!"],
                    "voice_overrides": {},
                }
            ]
        },
    )

    display_name: str = Field(min_length=1, max_length=100)
    persona: Persona = Field(
        default=Persona.PROFESSIONAL,
        description="The agent's persona; a request naming a persona explicitly wins over it.",
    )
    languages: list[Language] = Field(
        default_factory=lambda: [Language.EN],
        min_length=1,
        max_length=len(Language),
        description="The languages the agent speaks; pre-generation covers these.",
    )
    custom_phrases: list[CustomPhrase] = Field(
        default_factory=list,
        max_length=MAX_CUSTOM_PHRASES,
        description="The agent's own common phrases, pre-generated with the persona's catalog.",
    )
    voice_overrides: dict[Language, VoiceOverride] = Field(
        default_factory=dict,
        description="Per language, a voice that replaces the persona's.",
    )
    fallback_voice: VoiceOverride | None = Field(
        default=None, description="Replaces the persona's fallback voice."
    )
    active: bool = Field(
        default=True, description="Active agents get their phrases refreshed by the warm-ups."
    )

    @field_validator("languages")
    @classmethod
    def _languages_are_distinct(cls, value: list[Language]) -> list[Language]:
        if len(set(value)) != len(value):
            raise ValueError("languages must not repeat")
        return value

    @field_validator("custom_phrases")
    @classmethod
    def _phrases_are_speakable(cls, value: list[str]) -> list[str]:
        for index, phrase in enumerate(value):
            try:
                validate_speakable(phrase)
            except ValueError as exc:
                raise ValueError(f"custom_phrases[{index}]: {exc}") from exc
        if len(set(value)) != len(value):
            raise ValueError("custom_phrases must not repeat")
        return value


class Agent(AgentSpec):
    voice_agent_id: AgentId
    created_at: float
    updated_at: float

    def voice_profile(self, base: VoiceProfile) -> VoiceProfile:
        """The persona's profile with this agent's voices in place of the persona's."""
        if not self.voice_overrides and self.fallback_voice is None:
            return base
        voices = dict(base.voices)
        voices.update({lang: o.as_voice() for lang, o in self.voice_overrides.items()})
        fallback = self.fallback_voice.as_voice() if self.fallback_voice else base.fallback_voice
        return base.model_copy(update={"voices": voices, "fallback_voice": fallback})
