"""The WebSocket session's messages (DESIGN §5): what a client may send, what it gets back."""

import base64
import json
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.audio.formats import OutputFormat, spec_of
from app.tts.models import AgentId, LanguageChoice, Persona


class FrameStyle(StrEnum):
    JSON = "json"
    TWILIO = "twilio"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Start(_Message):
    type: Literal["start"]
    persona: Persona = Persona.PROFESSIONAL
    voice_agent_id: AgentId | None = None
    language: LanguageChoice = LanguageChoice.AUTO
    output_format: OutputFormat = OutputFormat.ULAW_8000
    frame_ms: int = Field(default=20, ge=10, le=1000)
    frames: FrameStyle = FrameStyle.JSON
    stream_sid: str | None = Field(default=None, min_length=1, max_length=64)


class Text(_Message):
    type: Literal["text"]
    text: str = Field(max_length=5000)
    utterance_id: str = Field(min_length=1, max_length=64)
    flush: bool = False


class BargeIn(_Message):
    type: Literal["barge_in"]


class MarkPlayed(_Message):
    type: Literal["mark_played"]
    name: str = Field(min_length=1, max_length=64)


class Ping(_Message):
    type: Literal["ping"]


class End(_Message):
    type: Literal["end"]


ClientMessage = Annotated[
    Start | Text | BargeIn | MarkPlayed | Ping | End, Field(discriminator="type")
]


class Outbound:
    """Builds the server's messages in the session's frame style."""

    def __init__(self, session_id: str, start: Start) -> None:
        self.session_id = session_id
        self.style = start.frames
        self.stream_sid = start.stream_sid
        self.output_format = start.output_format
        self._sid_json = _json(start.stream_sid)

    def ready(self) -> dict[str, Any]:
        return {
            "type": "ready",
            "session_id": self.session_id,
            "output_format": self.output_format.value,
            "sample_rate": spec_of(self.output_format).sample_rate,
        }

    def audio(self, utterance_id: str, seq: int, audio: bytes) -> str:
        """An audio frame's message, as JSON text already.

        Fifty go out a second on every call: built from escaped pieces, not by json.dumps of
        a dict, it costs a fraction (base64 needs no escaping).
        """
        payload = base64.b64encode(audio).decode("ascii")
        if self.style == FrameStyle.TWILIO:
            sid = self._sid_json
            return f'{{"event":"media","streamSid":{sid},"media":{{"payload":"{payload}"}}}}'
        uid = _json(utterance_id)
        return f'{{"type":"audio","utterance_id":{uid},"seq":{seq},"audio":"{payload}"}}'

    def mark(self, name: str) -> dict[str, Any]:
        if self.style == FrameStyle.TWILIO:
            return {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        return {"type": "mark", "name": name}

    def clear(self) -> dict[str, Any] | None:
        """Twilio's own clear (the bridge forwards it untouched); JSON clients need none."""
        if self.style == FrameStyle.TWILIO:
            return {"event": "clear", "streamSid": self.stream_sid}
        return None


def cleared(utterance_id: str, spoken_chars: int) -> dict[str, Any]:
    return {"type": "cleared", "utterance_id": utterance_id, "spoken_chars": spoken_chars}


def metrics(utterance_id: str, ttfa_ms: float, cache: str, provider: str) -> dict[str, Any]:
    return {
        "type": "metrics",
        "utterance_id": utterance_id,
        "ttfa_ms": round(ttfa_ms, 1),
        "cache": cache,
        "provider": provider,
    }


def error(code: str, message: str, recoverable: bool = True) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "recoverable": recoverable}


PONG = {"type": "pong"}


def to_text(message: dict[str, Any]) -> str:
    """A message as the JSON text sent (the same separators as the prebuilt audio frames)."""
    return _json(message)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
