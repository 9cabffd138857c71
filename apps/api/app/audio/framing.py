"""Cutting a segment's wire bytes into playback frames of a fixed duration (20 ms for phones)."""

from dataclasses import dataclass

from app.audio import g711, mp3
from app.audio.formats import FormatSpec


@dataclass(frozen=True, slots=True)
class Frame:
    audio: bytes
    duration_s: float


class Framer:
    """Frames of exactly `frame_ms` for raw formats (μ-law 20 ms = 160 bytes); whole MP3 frames.

    Raw bytes are held until a frame is full; `finish` pads the last one with silence, so every
    frame a telephony bridge receives has the same size.
    """

    def __init__(self, spec: FormatSpec, frame_ms: int) -> None:
        self._spec = spec
        self._mp3 = mp3.FrameCutter() if spec.encoding == "mp3" else None
        self._frame_bytes = spec.sample_rate * frame_ms // 1000 * spec.bytes_per_sample
        self._frame_s = frame_ms / 1000
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        if self._mp3 is not None:
            complete = self._mp3.feed(data)
            return [
                Frame(complete[f.offset : f.offset + f.length], f.samples / f.sample_rate)
                for f in mp3.iter_frames(complete, stream_start=False)
            ]
        self._pending += data
        whole = len(self._pending) - len(self._pending) % self._frame_bytes
        frames = [
            Frame(bytes(self._pending[i : i + self._frame_bytes]), self._frame_s)
            for i in range(0, whole, self._frame_bytes)
        ]
        del self._pending[:whole]
        return frames

    def finish(self) -> list[Frame]:
        """The last, partial frame padded with silence (raw formats); nothing for MP3."""
        if self._mp3 is not None or not self._pending:
            return []
        padding = self._frame_bytes - len(self._pending)
        silence = _silence(self._spec) * (padding // self._spec.bytes_per_sample)
        frame = bytes(self._pending) + silence
        self._pending.clear()
        return [Frame(frame, self._frame_s)]


def _silence(spec: FormatSpec) -> bytes:
    if spec.encoding == "ulaw":
        return bytes([g711.ULAW_SILENCE])
    if spec.encoding == "alaw":
        return bytes([g711.ALAW_SILENCE])
    return b"\x00\x00"
