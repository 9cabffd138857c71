"""The documented API's rules: models, voices, body validation, error bodies."""

import json
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.tts.personas import PROFILES, Voice
from tests.fakes.synthetic_audio import WireFormat

__all__ = [
    "INVALID_KEY",
    "MODELS",
    "NEEDS_AUTH",
    "VOICES",
    "Model",
    "Reply",
    "SpeechBody",
    "error_detail",
    "error_reply",
    "fault_reply",
    "json_reply",
    "speech_error",
    "validate_speech",
    "voice_json",
]

# -- Catalogue: models, languages, voices ----------------------------------------------------------


_V2_LANGUAGES = {
    "en": "English", "ja": "Japanese", "zh": "Chinese", "de": "German", "hi": "Hindi",
    "fr": "French", "ko": "Korean", "pt": "Portuguese", "it": "Italian", "es": "Spanish",
    "id": "Indonesian", "nl": "Dutch", "tr": "Turkish", "fil": "Filipino", "pl": "Polish",
    "sv": "Swedish", "bg": "Bulgarian", "ro": "Romanian", "ar": "Arabic", "cs": "Czech",
    "el": "Greek", "fi": "Finnish", "hr": "Croatian", "ms": "Malay", "sk": "Slovak",
    "da": "Danish", "ta": "Tamil", "uk": "Ukrainian", "ru": "Russian",
}  # fmt: skip
_V2_5_LANGUAGES = {**_V2_LANGUAGES, "hu": "Hungarian", "no": "Norwegian", "vi": "Vietnamese"}


@dataclass(frozen=True, slots=True)
class Model:
    model_id: str
    name: str
    max_chars: int
    cost_per_char: float
    languages: dict[str, str]
    concurrency_group: str

    @property
    def takes_language_code(self) -> bool:
        return self.model_id.endswith("_v2_5")

    def as_json(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "name": self.name,
            "description": f"{self.name} (fake)",
            "can_do_text_to_speech": True,
            "can_do_voice_conversion": False,
            "can_be_finetuned": True,
            "can_use_style": True,
            "can_use_speaker_boost": True,
            "serves_pro_voices": False,
            "requires_alpha_access": False,
            "token_cost_factor": self.cost_per_char,
            "model_rates": {"character_cost_multiplier": self.cost_per_char},
            "maximum_text_length_per_request": self.max_chars,
            "max_characters_request_free_user": 2500,
            "max_characters_request_subscribed_user": self.max_chars,
            "languages": [{"language_id": k, "name": v} for k, v in self.languages.items()],
            "concurrency_group": self.concurrency_group,
        }


MODELS = {
    m.model_id: m
    for m in (
        Model("eleven_flash_v2_5", "Eleven Flash v2.5", 40_000, 0.5, _V2_5_LANGUAGES, "turbo"),
        Model("eleven_turbo_v2_5", "Eleven Turbo v2.5", 40_000, 0.5, _V2_5_LANGUAGES, "turbo"),
        Model(
            "eleven_multilingual_v2",
            "Eleven Multilingual v2",
            10_000,
            1.0,
            _V2_LANGUAGES,
            "standard",
        ),
    )
}
_DEFAULT_MODEL = "eleven_multilingual_v2"


def _premade_voices() -> dict[str, Voice]:
    voices: dict[str, Voice] = {}
    for profile in PROFILES.values():
        for voice in (*profile.voices.values(), profile.fallback_voice):
            voices.setdefault(voice.voice_id, voice)
    return voices


VOICES = _premade_voices()


def voice_json(voice: Voice) -> dict[str, Any]:
    return {
        "voice_id": voice.voice_id,
        "name": voice.name,
        "category": "premade",
        "labels": {},
        "description": None,
        "preview_url": None,
        "available_for_tiers": [],
        "high_quality_base_model_ids": list(MODELS),
        "settings": None,
        "is_legacy": False,
    }


# -- Request validation: FastAPI-style 422 arrays, as ElevenLabs (a FastAPI app) answers them ------


class _VoiceSettingsIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stability: float | None = Field(default=None, ge=0, le=1)
    similarity_boost: float | None = Field(default=None, ge=0, le=1)
    style: float | None = Field(default=None, ge=0, le=1)
    use_speaker_boost: bool | None = None
    speed: float | None = Field(default=None, ge=0.7, le=1.2)


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1)
    model_id: str = _DEFAULT_MODEL
    language_code: str | None = None
    voice_settings: _VoiceSettingsIn | None = None
    seed: int | None = Field(default=None, ge=0, le=4_294_967_295)
    previous_text: str | None = None
    next_text: str | None = None
    previous_request_ids: list[str] | None = Field(default=None, max_length=3)
    next_request_ids: list[str] | None = Field(default=None, max_length=3)
    pronunciation_dictionary_locators: list[dict[str, Any]] | None = Field(
        default=None, max_length=3
    )
    apply_text_normalization: Literal["auto", "on", "off"] = "auto"


def validate_speech(
    raw: bytes, output_format: str | None
) -> tuple[SpeechBody | None, WireFormat, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    fmt = WireFormat.MP3_44100_128
    if output_format is not None:
        try:
            fmt = WireFormat(output_format)
        except ValueError:
            allowed = ", ".join(f"'{f.value}'" for f in WireFormat)
            errors.append(
                {
                    "loc": ["query", "output_format"],
                    "msg": f"Input should be {allowed}",
                    "type": "enum",
                }
            )
    body: SpeechBody | None = None
    if not raw:
        errors.append({"loc": ["body"], "msg": "Field required", "type": "missing"})
        return None, fmt, errors
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        pos = exc.pos if isinstance(exc, json.JSONDecodeError) else 0
        errors.append({"loc": ["body", pos], "msg": "JSON decode error", "type": "json_invalid"})
        return None, fmt, errors
    try:
        body = SpeechBody.model_validate(parsed)
    except ValidationError as exc:
        errors.extend(
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False)
        )
    return body, fmt, errors


# -- Replies and error bodies ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    audio: bool = False
    billed: int = 0


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    data = json.dumps(payload).encode()
    return Reply(status, data, {"content-type": "application/json", **(headers or {})})


def error_reply(status: int, detail: Any, headers: dict[str, str] | None = None) -> Reply:
    # Errors carry no request-id header; detail.request_id equals x-trace-id, as observed.
    trace_id = secrets.token_hex(16)
    if isinstance(detail, dict):
        detail = {**detail, "request_id": trace_id}
    return json_reply(status, {"detail": detail}, {"x-trace-id": trace_id, **(headers or {})})


def error_detail(kind: str, status: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {"type": kind, "code": code or status, "status": status, "message": message}


NEEDS_AUTH = {
    "status": "needs_authorization",
    "message": "Neither authorization header nor xi-api-key received, please provide one.",
}
INVALID_KEY = error_detail(
    "authentication_error", "invalid_api_key", "Invalid API key", "unauthorized"
)


def fault_reply(status: int, status_text: str | None, retry_after_s: float | None) -> Reply:
    """The documented error body for an injected `Behavior.status`."""
    if status == 422:
        return error_reply(
            422, [{"loc": ["body"], "msg": status_text or "Invalid input", "type": "value_error"}]
        )
    if status == 401:
        if status_text == "quota_exceeded":
            message = "This request exceeds your quota of 10000. You have 0 credits remaining."
            return error_reply(401, error_detail("billing_error", "quota_exceeded", message))
        if status_text in (None, "invalid_api_key"):
            return error_reply(401, INVALID_KEY)
        return error_reply(401, error_detail("authentication_error", status_text, status_text))
    if status == 429:
        text = status_text or "too_many_concurrent_requests"
        code, message = {
            "too_many_concurrent_requests": (
                "concurrent_limit_exceeded",
                "Too many concurrent requests for your subscription. Please wait for one of "
                "your requests to finish before sending another.",
            ),
            "system_busy": (
                "rate_limit_exceeded",
                "We're experiencing a high volume of requests. Please try again shortly.",
            ),
        }.get(text, (text, text))
        headers = {} if retry_after_s is None else {"retry-after": f"{retry_after_s:g}"}
        return error_reply(429, error_detail("rate_limit_error", text, message, code), headers)
    if status >= 500:
        text = status_text or "internal_error"
        return error_reply(
            status, error_detail("internal_error", text, "An internal server error occurred.")
        )
    text = status_text or {404: "voice_not_found"}.get(status, "invalid_parameters")
    return error_reply(status, error_detail("invalid_request_error", text, text))


# -- Refusals of well-formed, authorised requests --------------------------------------------------


def speech_error(voice_id: str, body: SpeechBody, fmt: WireFormat) -> Reply | None:
    """The error for a well-formed, authorised request the API still refuses, else None."""
    if voice_id not in VOICES:
        message = f"A voice with voice_id {voice_id} was not found."
        return error_reply(404, error_detail("not_found_error", "voice_not_found", message))
    model = MODELS.get(body.model_id)
    if model is None:
        message = f"A model with model ID {body.model_id} does not exist."
        return error_reply(400, error_detail("invalid_request_error", "model_not_found", message))
    if len(body.text) > model.max_chars:
        message = (
            f"This request's text has {len(body.text)} characters and exceeds the character "
            f"limit of {model.max_chars} characters for {model.model_id}."
        )
        return error_reply(
            400,
            error_detail(
                "validation_error", "max_character_limit_exceeded", message, "text_too_long"
            ),
        )
    if body.language_code is not None:
        if not model.takes_language_code:
            message = (
                f"Model '{model.model_id}' does not support language_code. Language "
                "enforcement is only supported by the v2.5 Flash and Turbo models."
            )
            return error_reply(
                400, error_detail("validation_error", "unsupported_language", message)
            )
        if body.language_code not in model.languages:
            message = f"Language code '{body.language_code}' is not supported by {model.model_id}."
            return error_reply(
                400, error_detail("validation_error", "unsupported_language", message)
            )
    if fmt.value.startswith("opus"):
        message = f"The fake ElevenLabs cannot encode {fmt.value}; use mp3, pcm, ulaw or alaw."
        return error_reply(
            400, error_detail("invalid_request_error", "unsupported_output_format", message)
        )
    return None
