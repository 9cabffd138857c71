"""Joining segments into one deliverable body: raw concatenation, MP3 frames, one WAV header."""

import struct
from collections.abc import Sequence

from app.audio import mp3
from app.audio.formats import FormatSpec

# A streamed WAV whose length is unknown says so with the largest sizes (what browsers and
# ffmpeg accept for live WAV).
UNKNOWN_LENGTH = 0xFFFFFFFF


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte RIFF/WAVE header for mono 16-bit PCM."""
    data_size = UNKNOWN_LENGTH if data_bytes is None else data_bytes
    riff_size = UNKNOWN_LENGTH if data_bytes is None else 36 + data_bytes
    byte_rate = sample_rate * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        riff_size,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        byte_rate,
        2,  # block align
        16,  # bits per sample
        b"data",
        data_size,
    )


def segment_audio(data: bytes, spec: FormatSpec) -> bytes:
    """A new segment's audio as it is kept and joined: for MP3, its whole audio frames only.

    Done once, when a segment is made (and so before it is cached), so that joining segments
    is plain concatenation on every request that uses them.
    """
    return mp3.audio_frames(data) if spec.encoding == "mp3" else data


def join_wire(parts: Sequence[bytes]) -> bytes:
    """Concatenate segments, each already clean wire audio (see segment_audio)."""
    return b"".join(parts)


def deliverable(parts: Sequence[bytes], spec: FormatSpec) -> bytes:
    """The whole response body: joined segments, with the WAV header when the format has one."""
    body = join_wire(parts)
    if spec.wav:
        return wav_header(spec.sample_rate, len(body)) + body
    return body
