"""MPEG audio frame parsing: where frames start and end, and what is not a frame.

Segments are joined at frame boundaries, so each segment's ID3 tags and Xing/Info header frame
(which describe that segment alone and would tell a player the wrong length) are dropped and
only audio frames are concatenated.
"""

from collections.abc import Iterator
from dataclasses import dataclass

_BITRATES_KBPS = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {
    1: (44100, 48000, 32000),
    2: (22050, 24000, 16000),
    25: (11025, 12000, 8000),
}
_ID3V2_HEADER = 10


@dataclass(frozen=True, slots=True)
class Frame:
    offset: int
    length: int
    sample_rate: int
    bitrate_kbps: int
    samples: int


def _parse_header(data: bytes | memoryview, offset: int) -> Frame | None:
    if offset + 4 > len(data):
        return None
    b1, b2 = data[offset + 1], data[offset + 2]
    if data[offset] != 0xFF or (b1 & 0xE0) != 0xE0:
        return None
    version_bits = (b1 >> 3) & 0x3
    layer_bits = (b1 >> 1) & 0x3
    if version_bits == 0b01 or layer_bits != 0b01:  # reserved version, or not Layer III
        return None
    version = {0b11: 1, 0b10: 2, 0b00: 25}[version_bits]
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 0x3
    if bitrate_index in (0, 15) or rate_index == 3:
        return None
    bitrate = _BITRATES_KBPS[1 if version == 1 else 2][bitrate_index]
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (b2 >> 1) & 0x1
    coefficient = 144 if version == 1 else 72
    length = coefficient * bitrate * 1000 // sample_rate + padding
    samples = 1152 if version == 1 else 576
    return Frame(offset, length, sample_rate, bitrate, samples)


def _skip_id3v2(data: bytes | memoryview, offset: int) -> int:
    if bytes(data[offset : offset + 3]) != b"ID3" or offset + _ID3V2_HEADER > len(data):
        return offset
    size_bytes = data[offset + 6 : offset + 10]
    size = 0
    for byte in size_bytes:
        size = (size << 7) | (byte & 0x7F)  # syncsafe integer
    footer = _ID3V2_HEADER if data[offset + 5] & 0x10 else 0
    return offset + _ID3V2_HEADER + size + footer


def _is_info_frame(data: bytes | memoryview, frame: Frame) -> bool:
    body = bytes(data[frame.offset : frame.offset + min(frame.length, 64)])
    return b"Xing" in body or b"Info" in body or b"VBRI" in body


def iter_frames(
    data: bytes | memoryview, start: int = 0, *, stream_start: bool | None = None
) -> Iterator[Frame]:
    """Complete audio frames in order, skipping tags, info frames and garbage between frames.

    Parsing at `start` > 0 (or with `stream_start=False`) continues a stream at a frame
    boundary, where no tag or info frame can be.
    """
    first = start == 0 if stream_start is None else stream_start
    offset = _skip_id3v2(data, start) if first else start
    while offset + 4 <= len(data):
        frame = _parse_header(data, offset)
        if frame is None or offset + frame.length > len(data):
            if frame is not None:
                return  # a frame cut short at the end
            offset += 1  # resync byte by byte, as decoders do
            continue
        if not (first and _is_info_frame(data, frame)):
            yield frame
        first = False
        offset += frame.length


def audio_frames(data: bytes) -> bytes:
    """Only the complete audio frames of an MP3 stream, concatenated."""
    view = memoryview(data)
    return b"".join(view[f.offset : f.offset + f.length] for f in iter_frames(view))


def duration_ms(data: bytes) -> int:
    total = 0.0
    for frame in iter_frames(memoryview(data)):
        total += frame.samples / frame.sample_rate
    return round(total * 1000)


class FrameCutter:
    """Cuts an MP3 byte stream that arrives in arbitrary pieces into whole audio frames.

    A frame split across two pieces waits for the rest; the stream's leading tag and info
    frame are dropped, as in `audio_frames`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._started = False

    def feed(self, data: bytes) -> bytes:
        """The whole frames completed by `data` (possibly none yet)."""
        self._buffer += data
        view = memoryview(self._buffer)
        try:
            frames = list(iter_frames(view, stream_start=not self._started))
        finally:
            view.release()
        return self._take(frames)

    def _take(self, frames: list[Frame]) -> bytes:
        if not frames:
            return b""
        start, end = frames[0].offset, frames[-1].offset + frames[-1].length
        chunk = bytes(self._buffer[start:end])
        del self._buffer[:end]
        self._started = True
        return chunk
