"""Output formats (ElevenLabs' names) and what each one is on the wire."""

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Encoding = Literal["mp3", "pcm", "ulaw", "alaw"]


class OutputFormat(StrEnum):
    MP3_44100_128 = "mp3_44100_128"
    MP3_22050_32 = "mp3_22050_32"
    PCM_16000 = "pcm_16000"
    PCM_22050 = "pcm_22050"
    PCM_24000 = "pcm_24000"
    PCM_44100 = "pcm_44100"
    ULAW_8000 = "ulaw_8000"
    ALAW_8000 = "alaw_8000"
    WAV_16000 = "wav_16000"
    WAV_22050 = "wav_22050"
    WAV_44100 = "wav_44100"


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """How a format is produced and delivered.

    `wire` is what a provider is asked for: ElevenLabs' streaming endpoint has no WAV, so WAV
    formats travel as PCM of the same rate and get their one header when they are delivered.
    """

    format: OutputFormat
    encoding: Encoding
    sample_rate: int
    media_type: str
    wav: bool = False
    bitrate_kbps: int | None = None

    @property
    def wire(self) -> OutputFormat:
        return OutputFormat(f"pcm_{self.sample_rate}") if self.wav else self.format

    @property
    def bytes_per_sample(self) -> int:
        """Bytes per sample of the raw encodings; MP3 has no fixed size."""
        return 2 if self.encoding == "pcm" else 1


def _pcm(fmt: OutputFormat, rate: int) -> FormatSpec:
    return FormatSpec(fmt, "pcm", rate, f"audio/pcm;rate={rate};channels=1;encoding=s16le")


def _wav(fmt: OutputFormat, rate: int) -> FormatSpec:
    return FormatSpec(fmt, "pcm", rate, "audio/wav", wav=True)


FORMATS: dict[OutputFormat, FormatSpec] = {
    OutputFormat.MP3_44100_128: FormatSpec(
        OutputFormat.MP3_44100_128, "mp3", 44100, "audio/mpeg", bitrate_kbps=128
    ),
    OutputFormat.MP3_22050_32: FormatSpec(
        OutputFormat.MP3_22050_32, "mp3", 22050, "audio/mpeg", bitrate_kbps=32
    ),
    OutputFormat.PCM_16000: _pcm(OutputFormat.PCM_16000, 16000),
    OutputFormat.PCM_22050: _pcm(OutputFormat.PCM_22050, 22050),
    OutputFormat.PCM_24000: _pcm(OutputFormat.PCM_24000, 24000),
    OutputFormat.PCM_44100: _pcm(OutputFormat.PCM_44100, 44100),
    # audio/basic is by definition 8-bit G.711 μ-law, 8 kHz, mono (RFC 2046).
    OutputFormat.ULAW_8000: FormatSpec(OutputFormat.ULAW_8000, "ulaw", 8000, "audio/basic"),
    OutputFormat.ALAW_8000: FormatSpec(
        OutputFormat.ALAW_8000, "alaw", 8000, "audio/PCMA;rate=8000"
    ),
    OutputFormat.WAV_16000: _wav(OutputFormat.WAV_16000, 16000),
    OutputFormat.WAV_22050: _wav(OutputFormat.WAV_22050, 22050),
    OutputFormat.WAV_44100: _wav(OutputFormat.WAV_44100, 44100),
}


def spec_of(fmt: OutputFormat) -> FormatSpec:
    return FORMATS[fmt]
