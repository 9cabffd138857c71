"""PCM in, wire bytes out (and back): resampling, MP3, raw PCM, μ-law and A-law.

Everything here is CPU work on whole buffers; async callers run it through `asyncio.to_thread`.
"""

import io

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from app.audio import g711, mp3
from app.audio.formats import FormatSpec

Int16Array = npt.NDArray[np.int16]

# libsndfile maps compression_level onto LAME's constant bitrates; these levels land on the
# bitrates ElevenLabs uses (checked against the frame headers in tests/audio/test_codecs.py).
_MP3_COMPRESSION_LEVEL = {(44100, 128): 0.65, (22050, 32): 0.83}


class AudioDecodeError(ValueError):
    """The bytes are not audio of the format they claim to be."""


def resample(pcm: Int16Array, from_rate: int, to_rate: int) -> Int16Array:
    if from_rate == to_rate or pcm.size == 0:
        return pcm
    out = soxr.resample(pcm, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.int16)


def encode(pcm: Int16Array, sample_rate: int, spec: FormatSpec) -> bytes:
    """Mono int16 PCM at any rate → the wire encoding of `spec` (WAV formats: raw PCM)."""
    encoder = StreamEncoder(spec)
    return encoder.encode(resample(pcm, sample_rate, spec.sample_rate)) + encoder.finish()


class StreamEncoder:
    """Wire bytes for PCM blocks (at the spec's rate) as they come.

    MP3 comes out frame by frame as LAME completes each, so the first bytes of a long sentence
    are ready after its first block is encoded, not after the whole sentence. Not thread-safe:
    one owner at a time (it may hop between worker threads).
    """

    def __init__(self, spec: FormatSpec) -> None:
        self._spec = spec
        self._mp3: sf.SoundFile | None = None
        self._buffer = io.BytesIO()
        self._handed_out = 0  # bytes of the buffer already given to the frame cutter
        self._frames = mp3.FrameCutter()

    def encode(self, pcm: Int16Array) -> bytes:
        if self._spec.encoding == "pcm":
            return pcm.astype("<i2", copy=False).tobytes()
        if self._spec.encoding == "ulaw":
            return g711.ulaw_encode(pcm)
        if self._spec.encoding == "alaw":
            return g711.alaw_encode(pcm)
        if pcm.size == 0:
            return b""
        if self._mp3 is None:
            self._mp3 = sf.SoundFile(
                self._buffer,
                "w",
                self._spec.sample_rate,
                1,
                format="MP3",
                bitrate_mode="CONSTANT",
                compression_level=_MP3_COMPRESSION_LEVEL[
                    (self._spec.sample_rate, self._spec.bitrate_kbps or 0)
                ],
            )
        self._mp3.write(pcm)
        return self._complete_frames()

    def finish(self) -> bytes:
        """The last frames (MP3 flushes what LAME still holds); b"" for raw encodings."""
        if self._mp3 is None:
            return b""
        self._mp3.close()  # also rewrites the info frame at the start, which is never sent
        self._mp3 = None
        return self._complete_frames()

    def _complete_frames(self) -> bytes:
        # LAME appends to the buffer; only what was added since the last call is new.
        view = self._buffer.getbuffer()
        try:
            fresh = bytes(view[self._handed_out :])
        finally:
            view.release()
        self._handed_out += len(fresh)
        return self._frames.feed(fresh)


def decode(data: bytes, spec: FormatSpec) -> Int16Array:
    """Wire bytes of `spec` → mono int16 PCM at `spec.sample_rate`."""
    if spec.encoding == "pcm":
        usable = len(data) - len(data) % 2
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
    if spec.encoding == "ulaw":
        return g711.ulaw_decode(data)
    if spec.encoding == "alaw":
        return g711.alaw_decode(data)
    return decode_file(data)[0]


def decode_file(data: bytes) -> tuple[Int16Array, int]:
    """A self-describing file (MP3, WAV, …) → mono int16 PCM and its rate."""
    if not data:
        return np.zeros(0, dtype=np.int16), 0
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioDecodeError(f"not decodable audio: {exc}") from exc
    mono = samples.mean(axis=1).astype(np.int16) if samples.shape[1] > 1 else samples[:, 0]
    return np.ascontiguousarray(mono), int(rate)


def duration_ms(data: bytes, spec: FormatSpec) -> int:
    if spec.encoding == "mp3":
        return mp3.duration_ms(data)
    return round(len(data) / spec.bytes_per_sample / spec.sample_rate * 1000)
