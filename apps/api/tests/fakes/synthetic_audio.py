"""The fake's audio: a deterministic speech-like signal from text, rendered in every wire format."""

import hashlib
import io
import math
import threading
from collections import OrderedDict
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import soundfile as sf

from app.audio import codecs, mp3
from app.audio.formats import FORMATS, OutputFormat

__all__ = [
    "CHARS_PER_SECOND",
    "RENDERED",
    "SYNTH_RATE",
    "RenderCache",
    "WireFormat",
    "content_type",
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


def _is_ideograph(ch: str) -> bool:
    # The ranges app.tts.segmenting.spoken_length counts as three characters.
    cp = ord(ch)
    return 0x3400 <= cp <= 0x4DBF or 0x4E00 <= cp <= 0x9FFF or 0xF900 <= cp <= 0xFAFF


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


class RenderCache:
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


RENDERED = RenderCache(max_bytes=64 << 20)


def content_type(fmt: WireFormat) -> str:
    return "audio/mpeg" if fmt.value.startswith("mp3") else "audio/pcm"
