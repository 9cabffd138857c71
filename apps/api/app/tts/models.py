"""The synthesis request and the vocabulary it is written in."""

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.audio.formats import OutputFormat

MAX_TEXT_CHARS = 5000

# C0/C1 control characters other than tab, newline and carriage return: they are never speech
# and some (NUL) break downstream C libraries.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class Persona(StrEnum):
    PROFESSIONAL = "professional"
    FRIENDLY = "friendly"
    AUTHORITATIVE = "authoritative"
    CASUAL = "casual"
    MULTILINGUAL = "multilingual"


class Language(StrEnum):
    EN = "en"
    ES = "es"
    ZH = "zh"


class LanguageChoice(StrEnum):
    AUTO = "auto"
    EN = "en"
    ES = "es"
    ZH = "zh"


class Provider(StrEnum):
    ELEVENLABS = "elevenlabs"
    ESPEAK = "espeak"


AgentId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="A voice agent's id: letters, digits and `_ . : -`, at most 64 characters.",
        examples=["agent_maple_realty_01"],
    ),
]


class SynthesizeRequest(BaseModel):
    """What to say, in which voice, and how to deliver it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "text": "Welcome to the open house at 42 Maple Street.",
                    "persona": "friendly",
                    "language": "auto",
                    "output_format": "mp3_44100_128",
                }
            ]
        },
    )

    text: str = Field(
        min_length=1,
        max_length=MAX_TEXT_CHARS,
        description="The text to speak: 1–5000 characters, not only whitespace, "
        "no control characters other than tab and newlines.",
        examples=["Welcome to the open house at 42 Maple Street."],
    )
    persona: Persona = Field(
        default=Persona.PROFESSIONAL,
        description="Which of the five voice profiles speaks (see GET /api/v1/voice/profiles).",
    )
    voice_agent_id: AgentId | None = Field(
        default=None, description="The voice agent speaking; recorded with the request."
    )
    language: LanguageChoice = Field(
        default=LanguageChoice.AUTO,
        description="`auto` detects English, Spanish or Mandarin from the text.",
    )
    output_format: OutputFormat = Field(
        default=OutputFormat.MP3_44100_128,
        description="ElevenLabs' format names; `ulaw_8000` is for phone calls.",
    )
    cache: bool = Field(default=True, description="Whether the audio cache may answer.")

    @field_validator("text")
    @classmethod
    def _text_is_speakable(cls, value: str) -> str:
        return validate_speakable(value)


def validate_speakable(value: str) -> str:
    """`value` unchanged if it is something to say; ValueError saying why it is not."""
    if not value.strip():
        raise ValueError("text must contain something to say, not only whitespace")
    if _CONTROL_CHARS.search(value):
        raise ValueError("text must not contain control characters")
    # Only punctuation, symbols or invisible characters: no provider can say it, and asking
    # one would count its silence against it.
    if not any(char.isalnum() for char in value):
        raise ValueError("text must contain a letter or a digit: there is nothing to say")
    return value
