"""A fake ElevenLabs that speaks the documented REST API over real HTTP on 127.0.0.1.

It runs uvicorn in its own thread and event loop, so a pytest session, several API processes
and the bench scripts can share it like a remote server. `Behavior` says what the next
text-to-speech requests get (latency, chunking, faults); `stats()` says what the fake saw.
The audio is real and decodable: a deterministic speech-like signal, about 14 characters per
second, encoded with the service's own codecs. Only tests and benchmarks import this module.
"""

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import soundfile as sf
import uvicorn
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.audio import codecs, mp3
from app.audio.formats import FORMATS, OutputFormat
from app.tts.personas import PROFILES, Voice

__all__ = [
    "CHARS_PER_SECOND",
    "SYNTH_RATE",
    "Behavior",
    "FakeElevenLabs",
    "RecordedRequest",
    "Stats",
    "expected_duration_s",
    "render_audio",
    "speech_pcm",
]

Int16Array = npt.NDArray[np.int16]
Float64Array = npt.NDArray[np.float64]

CHARS_PER_SECOND = 14.0
SYNTH_RATE = 24000  # every clip is made at this rate, then resampled/encoded per format
_BLOCK = 1 << 15
_HARMONICS = 10
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_STOP_GRACE_S = 1  # seconds uvicorn waits for running responses when stopping

# --------------------
# Audio


def _is_ideograph(ch: str) -> bool:
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
    )  # the ranges app.tts.segmenting counts as three


def _char_shape(ch: str) -> tuple[float, float, int]:
    """(voiced loudness, hiss loudness, length in character slots) of one character."""
    if _is_ideograph(ch):
        return 1.0, 0.05, 3  # one syllable, said in about the time of three letters
    low = ch.lower()
    if low in "aeiouyáéíóúü":
        return 1.0, 0.02, 1
    if low in "sfhxzcjš":
        return 0.15, 0.5, 1
    if low in "ptkbdgq":
        return 0.3, 0.25, 1
    if ch.isalnum():
        return 0.7, 0.05, 1
    return 0.0, 0.0, 1  # spaces and punctuation are the pauses between words


def expected_duration_s(text: str) -> float:
    """How long the fake speaks `text`: 14 characters a second, a CJK ideograph counting 3."""
    return sum(_char_shape(ch)[2] for ch in text) / CHARS_PER_SECOND


def _harmonic_sums(phase: Float64Array) -> tuple[Float64Array, Float64Array]:
    """Σ sin(kφ)/k over harmonics 1–3 and 4–10, by the Chebyshev recurrence (one sin, one cos)."""
    twice_cos = 2 * np.cos(phase)
    previous, current = np.zeros_like(phase), np.sin(phase)
    low, high = current.copy(), np.zeros_like(phase)
    for k in range(2, _HARMONICS + 1):
        previous, current = current, twice_cos * current - previous
        if k <= 3:
            low += current / k
        else:
            high += current / k
    return low, high


def speech_pcm(text: str) -> Int16Array:
    """Mono int16 PCM at SYNTH_RATE: harmonics of a moving pitch under a syllable envelope."""
    shapes = [_char_shape(ch) for ch in text]
    slot = SYNTH_RATE / CHARS_PER_SECOND
    ends = np.cumsum([s[2] for s in shapes], dtype=np.float64) * slot
    total = round(float(ends[-1])) if shapes else 0
    if total == 0:
        return np.zeros(0, dtype=np.int16)
    starts = np.concatenate(([0.0], ends[:-1]))
    # Envelopes are interpolated between character centres, from silence at both ends.
    xp = np.concatenate(([0.0], (starts + ends) / 2, [float(total)]))
    voiced = np.array([0.0, *(s[0] for s in shapes), 0.0])
    hiss = np.array([0.0, *(s[1] for s in shapes), 0.0])
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    brightness = np.concatenate(([0.5], rng.uniform(0.3, 1.0, len(shapes)), [0.5]))
    base_hz = float(rng.uniform(100.0, 230.0))
    phi = rng.uniform(0.0, 2 * math.pi, 3)
    tone_peak = sum(1 / k for k in range(1, _HARMONICS + 1))
    out = np.empty(total, dtype=np.int16)
    phase0 = 0.0
    last_noise = 0.0
    for start in range(0, total, _BLOCK):
        idx = np.arange(start, min(total, start + _BLOCK), dtype=np.float64)
        t = idx / SYNTH_RATE
        f0 = base_hz * (
            1
            + 0.10 * np.sin(2 * np.pi * 0.35 * t + phi[0])
            + 0.05 * np.sin(2 * np.pi * 1.7 * t + phi[1])
        )
        phase = phase0 + 2 * np.pi * np.cumsum(f0) / SYNTH_RATE
        phase0 = float(phase[-1] % (2 * np.pi))
        bright = np.interp(idx, xp, brightness)
        low, high = _harmonic_sums(phase)
        tone = low + bright * high
        syllables = 0.55 + 0.45 * np.sin(np.pi * 4.5 * t + phi[2]) ** 2
        noise = rng.uniform(-1.0, 1.0, idx.size)
        high_passed = (noise - np.concatenate(([last_noise], noise[:-1]))) / 2
        last_noise = float(noise[-1])
        signal = 0.35 * tone / tone_peak * np.interp(
            idx, xp, voiced
        ) * syllables + 0.15 * high_passed * np.interp(idx, xp, hiss)
        out[start : start + idx.size] = np.clip(np.round(signal * 32767), -32768, 32767)
    return out


class WireFormat(StrEnum):
    """Every `output_format` ElevenLabs documents for its TTS endpoints (OAS 2025, SDK 2.78)."""

    MP3_22050_32 = "mp3_22050_32"
    MP3_24000_48 = "mp3_24000_48"
    MP3_44100_32 = "mp3_44100_32"
    MP3_44100_64 = "mp3_44100_64"
    MP3_44100_96 = "mp3_44100_96"
    MP3_44100_128 = "mp3_44100_128"
    MP3_44100_192 = "mp3_44100_192"
    PCM_8000 = "pcm_8000"
    PCM_16000 = "pcm_16000"
    PCM_22050 = "pcm_22050"
    PCM_24000 = "pcm_24000"
    PCM_32000 = "pcm_32000"
    PCM_44100 = "pcm_44100"
    PCM_48000 = "pcm_48000"
    ULAW_8000 = "ulaw_8000"
    ALAW_8000 = "alaw_8000"
    OPUS_48000_32 = "opus_48000_32"
    OPUS_48000_64 = "opus_48000_64"
    OPUS_48000_96 = "opus_48000_96"
    OPUS_48000_128 = "opus_48000_128"
    OPUS_48000_192 = "opus_48000_192"


def _parts(fmt: WireFormat) -> tuple[str, int, int | None]:
    codec, rate, *rest = fmt.value.split("_")
    return codec, int(rate), int(rest[0]) if rest else None


def _mp3(pcm: Int16Array, rate: int, kbps: int) -> bytes:
    # libsndfile maps compression_level linearly onto LAME's CBR range for the MPEG version.
    low, high = (32, 320) if rate >= 32000 else (8, 160)
    level = min(0.999, max(0.0, 1 - (kbps - low) / (high - low)))
    buffer = io.BytesIO()
    sf.write(buffer, pcm, rate, format="MP3", bitrate_mode="CONSTANT", compression_level=level)
    return mp3.audio_frames(buffer.getvalue())


_SERVICE_FORMATS = frozenset(f.value for f in OutputFormat)


def render_audio(text: str, output_format: str, *, silent: bool = False) -> bytes:
    """The bytes the fake streams for `text` in `output_format` (deterministic)."""
    fmt = WireFormat(output_format)
    codec, rate, kbps = _parts(fmt)
    if codec not in ("mp3", "pcm", "ulaw", "alaw"):
        raise ValueError(f"the fake cannot encode {fmt.value}")
    pcm = codecs.resample(speech_pcm(text), SYNTH_RATE, rate)
    if silent:
        pcm = np.zeros_like(pcm)  # after resampling: soxr dithers, digital silence is all zero
    spec = FORMATS.get(OutputFormat(fmt.value)) if fmt.value in _SERVICE_FORMATS else None
    if spec is not None and spec.wire.value == fmt.value:
        return codecs.encode(pcm, rate, spec)  # the service's own encoder
    if codec == "pcm":
        return pcm.astype("<i2", copy=False).tobytes()
    assert kbps is not None  # every other documented format is an MP3 with a bitrate
    return _mp3(pcm, rate, kbps) if pcm.size else b""


class _RenderCache:
    """Recently rendered clips, so repeated phrases (benchmarks, retries) skip the encoder."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._size = 0
        self._clips: OrderedDict[tuple[str, str, bool], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, text: str, output_format: str, silent: bool) -> bytes:
        key = (text, output_format, silent)
        with self._lock:
            if (clip := self._clips.get(key)) is not None:
                self._clips.move_to_end(key)
                return clip
        clip = render_audio(text, output_format, silent=silent)
        with self._lock:
            if key not in self._clips and len(clip) <= self._max_bytes:
                self._clips[key] = clip
                self._size += len(clip)
            while self._size > self._max_bytes:
                self._size -= len(self._clips.popitem(last=False)[1])
        return clip


_RENDERED = _RenderCache(max_bytes=64 << 20)


def _content_type(fmt: WireFormat) -> str:
    return "audio/mpeg" if fmt.value.startswith("mp3") else "audio/pcm"


# --------------------
# Catalogue: models, languages, voices


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
class _Model:
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


_MODELS = {
    m.model_id: m
    for m in (
        _Model("eleven_flash_v2_5", "Eleven Flash v2.5", 40_000, 0.5, _V2_5_LANGUAGES, "turbo"),
        _Model("eleven_turbo_v2_5", "Eleven Turbo v2.5", 40_000, 0.5, _V2_5_LANGUAGES, "turbo"),
        _Model(
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


_VOICES = _premade_voices()


def _voice_json(voice: Voice) -> dict[str, Any]:
    return {
        "voice_id": voice.voice_id,
        "name": voice.name,
        "category": "premade",
        "labels": {},
        "description": None,
        "preview_url": None,
        "available_for_tiers": [],
        "high_quality_base_model_ids": list(_MODELS),
        "settings": None,
        "is_legacy": False,
    }


# --------------------
# Request validation: FastAPI-style 422 arrays, as ElevenLabs (a FastAPI app) answers them


class _VoiceSettingsIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stability: float | None = Field(default=None, ge=0, le=1)
    similarity_boost: float | None = Field(default=None, ge=0, le=1)
    style: float | None = Field(default=None, ge=0, le=1)
    use_speaker_boost: bool | None = None
    speed: float | None = Field(default=None, ge=0.7, le=1.2)


class _SpeechBody(BaseModel):
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


def _validate(
    raw: bytes, output_format: str | None
) -> tuple[_SpeechBody | None, WireFormat, list[dict[str, Any]]]:
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
    body: _SpeechBody | None = None
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
        body = _SpeechBody.model_validate(parsed)
    except ValidationError as exc:
        errors.extend(
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False)
        )
    return body, fmt, errors


# --------------------
# Public state


@dataclass
class Behavior:
    """What the next text-to-speech requests get. Tests replace or mutate it."""

    ttfb_s: float = 0.0
    chunk_sizes: tuple[int, ...] = (1024,)
    chunk_delay_s: float = 0.0
    status: int = 200
    error_status_text: str | None = None
    retry_after_s: float | None = None
    stall_after_bytes: int | None = None
    stall_s: float = 30.0
    truncate_after_bytes: int | None = None
    non_audio_body: bool = False
    odd_length: bool = False
    silent_audio: bool = False
    fail_first_n: int = 0
    max_concurrent_requests: int = 10
    enforce_concurrency: bool = False


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # the parsed body; None when there was none or it was not JSON


@dataclass(frozen=True)
class Stats:
    """A snapshot. The counters cover text-to-speech requests; `requests` lists every request."""

    total_requests: int
    concurrent_now: int
    peak_concurrent: int
    characters_billed: int
    requests: list[RecordedRequest]


@dataclass
class _Epoch:
    """Counters since the last reset; a request still running from before counts in its own."""

    total: int = 0
    concurrent: int = 0
    peak: int = 0
    billed: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)


class _DroppedConnection(Exception):
    """Raised on purpose so uvicorn closes the socket mid-body (truncation, shutdown)."""


class _ClientGone(Exception):
    pass


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DroppedConnection)


def _new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    audio: bool = False
    billed: int = 0


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    data = json.dumps(payload).encode()
    return _Reply(status, data, {"content-type": "application/json", **(headers or {})})


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> _Reply:
    # Errors carry no request-id header; detail.request_id equals x-trace-id, as observed.
    trace_id = secrets.token_hex(16)
    if isinstance(detail, dict):
        detail = {**detail, "request_id": trace_id}
    return _json_reply(status, {"detail": detail}, {"x-trace-id": trace_id, **(headers or {})})


def _detail(kind: str, status: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {"type": kind, "code": code or status, "status": status, "message": message}


_NEEDS_AUTH = {
    "status": "needs_authorization",
    "message": "Neither authorization header nor xi-api-key received, please provide one.",
}
_INVALID_KEY = _detail("authentication_error", "invalid_api_key", "Invalid API key", "unauthorized")


def _fault(status: int, status_text: str | None, retry_after_s: float | None) -> _Reply:
    """The documented error body for an injected `Behavior.status`."""
    if status == 422:
        return _error(
            422, [{"loc": ["body"], "msg": status_text or "Invalid input", "type": "value_error"}]
        )
    if status == 401:
        if status_text == "quota_exceeded":
            message = "This request exceeds your quota of 10000. You have 0 credits remaining."
            return _error(401, _detail("billing_error", "quota_exceeded", message))
        if status_text in (None, "invalid_api_key"):
            return _error(401, _INVALID_KEY)
        return _error(401, _detail("authentication_error", status_text, status_text))
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
        return _error(429, _detail("rate_limit_error", text, message, code), headers)
    if status >= 500:
        text = status_text or "internal_error"
        return _error(status, _detail("internal_error", text, "An internal server error occurred."))
    text = status_text or {404: "voice_not_found"}.get(status, "invalid_parameters")
    return _error(status, _detail("invalid_request_error", text, text))


# --------------------
# The server


class _SpeechEndpoint:
    """POST /v1/text-to-speech/{voice_id}[/stream] as a plain ASGI app: it owns every byte."""

    def __init__(self, fake: "FakeElevenLabs") -> None:
        self._fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fake._speak(scope, receive, send)


class FakeElevenLabs:
    """ElevenLabs' TTS REST API on 127.0.0.1:<free port>, served from a background thread."""

    def __init__(self, api_key: str = "test-eleven-key") -> None:
        self.api_key = api_key
        self.behavior = Behavior()
        self._lock = threading.Lock()
        self._epoch = _Epoch()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._port: int | None = None
        self._failure: BaseException | None = None
        self._reset_unix = int(time.time()) + 30 * 86400
        self.app = Starlette(
            routes=[
                Route("/v1/text-to-speech/{voice_id}", _SpeechEndpoint(self), methods=["POST"]),
                Route(
                    "/v1/text-to-speech/{voice_id}/stream", _SpeechEndpoint(self), methods=["POST"]
                ),
                Route("/v1/user/subscription", self._subscription, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/voices", self._voices, methods=["GET"]),
            ]
        )

    # -- lifecycle ----

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeElevenLabs is not started")
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> "FakeElevenLabs":
        """Serve in a background thread; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("FakeElevenLabs is already started")
        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietDrops) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_QuietDrops())
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            log_config=None,  # leave the process's logging set-up alone
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=_STOP_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="fake-elevenlabs", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"FakeElevenLabs did not start: {self._failure!r}")
            time.sleep(0.005)
        self._port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        """Stop serving: stalled responses are cut off, the thread is joined."""
        server, thread, loop, stopping = self._server, self._thread, self._loop, self._stopping
        if server is None or thread is None:
            return
        server.should_exit = True
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=_STOP_GRACE_S + 5)
        self._server = self._thread = self._loop = self._stopping = None
        self._port = None

    def __enter__(self) -> "FakeElevenLabs":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(): a thread must not raise
            self._failure = exc

    async def _serve(self) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self._server.serve()

    # -- state ----

    def reset(self) -> None:
        """Default behaviour, zero counters, no recorded requests."""
        with self._lock:
            self.behavior = Behavior()
            self._epoch = _Epoch()

    def stats(self) -> Stats:
        with self._lock:
            epoch = self._epoch
            return Stats(
                total_requests=epoch.total,
                concurrent_now=epoch.concurrent,
                peak_concurrent=epoch.peak,
                characters_billed=epoch.billed,
                requests=list(epoch.requests),
            )

    def _record(self, request: Request, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers.items()),
            json=body,
        )
        with self._lock:
            self._epoch.requests.append(recorded)

    def _arrive(self) -> tuple[_Epoch, int]:
        with self._lock:
            epoch = self._epoch
            epoch.total += 1
            epoch.concurrent += 1
            epoch.peak = max(epoch.peak, epoch.concurrent)
            return epoch, epoch.total

    def _leave(self, epoch: _Epoch) -> None:
        with self._lock:
            epoch.concurrent -= 1

    def _bill(self, epoch: _Epoch, characters: int) -> None:
        with self._lock:
            epoch.billed += characters

    def _auth_error(self, request: Request) -> _Reply | None:
        key = request.headers.get("xi-api-key")
        if key is None:
            return _error(401, dict(_NEEDS_AUTH))
        if key != self.api_key:
            return _error(401, _INVALID_KEY)
        return None

    # -- text to speech ----

    async def _speak(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            raw = await request.body()
        except ClientDisconnect:
            return
        self._record(request, raw)
        behavior = dataclasses.replace(self.behavior)
        epoch, number = self._arrive()
        assert self._stopping is not None
        gone = asyncio.ensure_future(_wait_for_disconnect(receive))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            reply = await self._answer(request, raw, behavior, epoch, number)
            await _pause(behavior.ttfb_s, gone, stopping)
            if not reply.audio:
                await _send_whole(send, reply)
                return
            headers = {
                **reply.headers,
                "current-concurrent-requests": str(epoch.concurrent),
                "maximum-concurrent-requests": str(behavior.max_concurrent_requests),
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                }
            )
            self._bill(epoch, reply.billed)
            await _stream_body(send, reply.body, behavior, gone, stopping)
        except _ClientGone:
            return
        finally:
            gone.cancel()
            stopping.cancel()
            self._leave(epoch)

    async def _answer(
        self, request: Request, raw: bytes, behavior: Behavior, epoch: _Epoch, number: int
    ) -> _Reply:
        body, fmt, errors = _validate(raw, request.query_params.get("output_format"))
        # Schema errors come before auth, as in a FastAPI app.
        if errors or body is None:
            return _error(422, errors)
        if (auth := self._auth_error(request)) is not None:
            return auth
        voice_id = request.path_params["voice_id"]
        if voice_id not in _VOICES:
            message = f"A voice with voice_id {voice_id} was not found."
            return _error(404, _detail("not_found_error", "voice_not_found", message))
        model = _MODELS.get(body.model_id)
        if model is None:
            message = f"A model with model ID {body.model_id} does not exist."
            return _error(400, _detail("invalid_request_error", "model_not_found", message))
        if len(body.text) > model.max_chars:
            message = (
                f"This request's text has {len(body.text)} characters and exceeds the character "
                f"limit of {model.max_chars} characters for {model.model_id}."
            )
            return _error(
                400,
                _detail(
                    "validation_error", "max_character_limit_exceeded", message, "text_too_long"
                ),
            )
        if body.language_code is not None:
            if not model.takes_language_code:
                message = (
                    f"Model '{model.model_id}' does not support language_code. Language "
                    "enforcement is only supported by the v2.5 Flash and Turbo models."
                )
                return _error(400, _detail("validation_error", "unsupported_language", message))
            if body.language_code not in model.languages:
                message = (
                    f"Language code '{body.language_code}' is not supported by {model.model_id}."
                )
                return _error(400, _detail("validation_error", "unsupported_language", message))
        if fmt.value.startswith("opus"):
            message = f"The fake ElevenLabs cannot encode {fmt.value}; use mp3, pcm, ulaw or alaw."
            return _error(
                400, _detail("invalid_request_error", "unsupported_output_format", message)
            )
        if behavior.enforce_concurrency and epoch.concurrent > behavior.max_concurrent_requests:
            return _fault(429, "too_many_concurrent_requests", behavior.retry_after_s)
        if behavior.status != 200 and (
            behavior.fail_first_n <= 0 or number <= behavior.fail_first_n
        ):
            return _fault(behavior.status, behavior.error_status_text, behavior.retry_after_s)
        if behavior.non_audio_body:
            detail = {"status": "internal_error", "message": "Audio generation failed."}
            return _json_reply(200, {"detail": detail})
        started = time.perf_counter()
        audio = await asyncio.to_thread(
            _RENDERED.render, body.text, fmt.value, behavior.silent_audio
        )
        if behavior.odd_length and fmt.value.startswith("pcm"):
            audio += b"\x00"
        billed = math.ceil(len(body.text) * model.cost_per_char)
        latency_ms = round((time.perf_counter() - started) * 1000)
        headers = {
            "content-type": _content_type(fmt),
            "request-id": _new_id(),
            "history-item-id": _new_id(),
            "character-cost": str(billed),
            "x-character-count": str(billed),
            "tts-latency-ms": str(latency_ms),
            "access-control-expose-headers": (
                "request-id, history-item-id, character-cost, current-concurrent-requests, "
                "maximum-concurrent-requests"
            ),
        }
        return _Reply(200, audio, headers, audio=True, billed=billed)

    # -- other endpoints ----

    async def _guarded(self, request: Request) -> Response | None:
        self._record(request, await request.body())
        auth = self._auth_error(request)
        if auth is None:
            return None
        return Response(auth.body, status_code=auth.status, headers=auth.headers)

    async def _subscription(self, request: Request) -> Response:
        if (denied := await self._guarded(request)) is not None:
            return denied
        limit = 100_000
        behavior = self.behavior
        out_of_quota = behavior.status == 401 and behavior.error_status_text == "quota_exceeded"
        with self._lock:
            used = limit if out_of_quota else min(limit, self._epoch.billed)
        return JSONResponse(
            {
                "tier": "creator",
                "character_count": used,
                "character_limit": limit,
                "can_extend_character_limit": False,
                "allowed_to_extend_character_limit": False,
                "next_character_count_reset_unix": self._reset_unix,
                "voice_limit": 30,
                "status": "active",
                "currency": "usd",
                "billing_period": "monthly_period",
            }
        )

    async def _models(self, request: Request) -> Response:
        if (denied := await self._guarded(request)) is not None:
            return denied
        return JSONResponse([model.as_json() for model in _MODELS.values()])

    async def _voices(self, request: Request) -> Response:
        if (denied := await self._guarded(request)) is not None:
            return denied
        return JSONResponse({"voices": [_voice_json(voice) for voice in _VOICES.values()]})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pause(seconds: float, gone: asyncio.Future[None], stopping: asyncio.Future[Any]) -> None:
    """Sleep, but wake for a client that went away (_ClientGone) or a server stopping."""
    if seconds > 0 and not (gone.done() or stopping.done()):
        await asyncio.wait({gone, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    if stopping.done():
        raise _DroppedConnection("the fake is stopping")
    if gone.done():
        raise _ClientGone


async def _send_whole(send: Send, reply: _Reply) -> None:
    headers = {**reply.headers, "content-length": str(len(reply.body))}
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _stream_body(
    send: Send,
    body: bytes,
    behavior: Behavior,
    gone: asyncio.Future[None],
    stopping: asyncio.Future[Any],
) -> None:
    """The audio as chunks of the behaviour's sizes, with its delays, stall and truncation."""
    sizes = itertools.cycle([max(1, size) for size in behavior.chunk_sizes] or [1024])
    stall_at, cut_at = behavior.stall_after_bytes, behavior.truncate_after_bytes
    offset, stalled, first = 0, False, True
    while True:
        if cut_at is not None and offset >= cut_at:
            raise _DroppedConnection("truncated on purpose")
        if stall_at is not None and not stalled and offset >= stall_at:
            stalled = True
            await _pause(behavior.stall_s, gone, stopping)
        if offset >= len(body):
            break
        await _pause(0.0 if first else behavior.chunk_delay_s, gone, stopping)
        first = False
        end = min(offset + next(sizes), len(body))
        for boundary in (stall_at, cut_at):
            if boundary is not None and offset < boundary < end:
                end = boundary
        await send({"type": "http.response.body", "body": body[offset:end], "more_body": True})
        offset = end
    await send({"type": "http.response.body", "body": b"", "more_body": False})
