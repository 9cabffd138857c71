"""MPEG frame parsing on real LAME output (through soundfile): tags, info frames, cuts, resync."""

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from app.audio import mp3

Int16Array = npt.NDArray[np.int16]

# soundfile's settings for ElevenLabs' two MP3 formats (128 kbps at 44.1 kHz, 32 kbps at 22.05 kHz).
LAME_LEVELS = {44100: 0.65, 22050: 0.83}


def _tone(samples: int, rate: int, hz: float = 440.0) -> Int16Array:
    t = np.arange(samples) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def _lame_file(pcm: Int16Array, rate: int, title: str | None = None) -> bytes:
    """A whole MP3 file as libsndfile/LAME writes it."""
    buffer = io.BytesIO()
    with sf.SoundFile(
        buffer,
        "w",
        rate,
        1,
        format="MP3",
        bitrate_mode="CONSTANT",
        compression_level=LAME_LEVELS[rate],
    ) as out:
        if title is not None:
            out.title = title
        out.write(pcm)
    return buffer.getvalue()


def _decoded_samples(data: bytes) -> int:
    pcm, _ = sf.read(io.BytesIO(data), dtype="int16")
    return len(pcm)


def _lame_delay_and_padding(data: bytes) -> tuple[int, int]:
    """Encoder delay and padding from the LAME extension of the Info frame."""
    at = data.index(b"LAME") + 21  # version(9) revision(1) lowpass(1) peak(4) gains(4) flags(2)
    a, b, c = data[at : at + 3]
    return (a << 4) | (b >> 4), ((b & 0x0F) << 8) | c


def _id3v2_tag(body: bytes, *, footer: bool = False) -> bytes:
    size = len(body)
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    flags = 0x10 if footer else 0x00
    tag = b"ID3" + bytes([4, 0, flags]) + syncsafe + body
    return tag + (b"3DI" + bytes([4, 0, flags]) + syncsafe if footer else b"")


def _frame_lengths(data: bytes) -> list[int]:
    return [frame.length for frame in mp3.iter_frames(data)]


def test_the_info_frame_soundfile_writes_is_dropped_and_every_audio_frame_kept() -> None:
    samples = 30000
    data = _lame_file(_tone(samples, 44100), 44100)
    delay, padding = _lame_delay_and_padding(data)

    frames = mp3.audio_frames(data)

    dropped = len(data) - len(frames)
    assert b"Info" in data[:dropped]
    assert dropped == _frame_lengths(data)[0]  # exactly one frame's worth, at the start
    assert data.endswith(frames)
    # The LAME tag says how many samples the encoder added; all the frames together hold exactly
    # the source plus those.
    total = sum(frame.samples for frame in mp3.iter_frames(frames))
    assert total == samples + delay + padding
    assert _decoded_samples(frames) == total


@pytest.mark.parametrize("footer", [False, True], ids=["no-footer", "footer"])
def test_a_leading_id3v2_tag_is_skipped_by_its_declared_size(footer: bool) -> None:
    data = _lame_file(_tone(20000, 44100), 44100)
    # A tag body that looks like a frame (as an embedded picture may) must not be parsed as one.
    fake_frame = b"\xff\xfb\x90\xc4" + bytes(413)
    tag = _id3v2_tag(b"TIT2\x00\x00\x00\x0b\x00\x00\x03Open house" + fake_frame, footer=footer)

    tagged = tag + data

    assert mp3.audio_frames(tagged) == mp3.audio_frames(data)
    assert mp3.duration_ms(tagged) == mp3.duration_ms(data)


def test_a_trailing_id3v1_tag_is_not_audio() -> None:
    pcm = _tone(20000, 44100)
    titled = _lame_file(pcm, 44100, title="Open house")

    assert titled[-128:].startswith(b"TAGOpen house")
    assert mp3.audio_frames(titled) == mp3.audio_frames(_lame_file(pcm, 44100))


@pytest.mark.parametrize(
    "kept",
    [lambda n: n - 1, lambda n: n // 2, lambda n: 4, lambda n: 2],
    ids=["all-but-one-byte", "half", "only-the-header", "half-the-header"],
)
def test_a_frame_cut_off_at_the_end_is_excluded(kept: Callable[[int], int]) -> None:
    frames = mp3.audio_frames(_lame_file(_tone(20000, 44100), 44100))
    lengths = _frame_lengths(frames)
    last = lengths[-1]

    truncated = mp3.audio_frames(frames[: len(frames) - last + kept(last)])

    assert truncated == frames[:-last]
    assert len(_frame_lengths(truncated)) == len(lengths) - 1
    assert _decoded_samples(truncated) == (len(lengths) - 1) * 1152


def test_garbage_between_frames_is_skipped_and_every_frame_found_again() -> None:
    frames = mp3.audio_frames(_lame_file(_tone(30000, 44100), 44100))
    lengths = _frame_lengths(frames)
    # Near misses: a lone 0xFF, a valid MPEG-1 Layer II header, a Layer III header with a bad
    # bitrate and one with a reserved version.
    garbage = b"\x00" * 7 + b"junk\xff\x00\xff\xfd\x90\xc4\xff\xfb\xf0\x00\xff\xeb\x90\x00zz"
    pieces: list[bytes] = []
    offset = 0
    for index, length in enumerate(lengths):
        pieces.append(frames[offset : offset + length])
        if index % 5 == 2:
            pieces.append(garbage)
        offset += length
    dirty = b"".join(pieces)

    cleaned = mp3.audio_frames(dirty)

    assert len(dirty) > len(frames)
    assert cleaned == frames


def test_leading_garbage_before_the_first_frame_is_skipped() -> None:
    frames = mp3.audio_frames(_lame_file(_tone(10000, 22050), 22050))

    assert mp3.audio_frames(b"\x00\x01garbage" + frames) == frames


@pytest.mark.parametrize("rate", [44100, 22050])
def test_segments_joined_with_audio_frames_decode_as_one_stream_of_their_summed_length(
    rate: int,
) -> None:
    files = [
        _lame_file(_tone(n, rate, hz), rate)
        for n, hz in ((rate // 3, 440.0), (rate, 330.0), (rate // 7, 550.0))
    ]
    one_by_one = [_decoded_samples(mp3.audio_frames(f)) for f in files]

    joined = b"".join(mp3.audio_frames(f) for f in files)

    assert _decoded_samples(joined) == sum(one_by_one)
    assert mp3.duration_ms(joined) == pytest.approx(sum(one_by_one) / rate * 1000, abs=1)
    frames = list(mp3.iter_frames(joined))
    assert sum(f.length for f in frames) == len(joined)  # nothing but whole frames


@pytest.mark.parametrize("rate", [44100, 22050])
@pytest.mark.parametrize("samples", [1000, 11025, 50000])
def test_duration_ms_matches_soundfiles_decoded_length_within_a_frame(
    rate: int, samples: int
) -> None:
    frames = mp3.audio_frames(_lame_file(_tone(samples, rate), rate))
    frame_ms = (1152 if rate == 44100 else 576) / rate * 1000

    decoded_ms = _decoded_samples(frames) / rate * 1000

    assert abs(mp3.duration_ms(frames) - decoded_ms) <= frame_ms


def test_duration_ms_does_not_count_tags_or_the_info_frame() -> None:
    data = _lame_file(_tone(30000, 44100), 44100)

    tagged = _id3v2_tag(b"TIT2\x00\x00\x00\x02\x00\x00\x03x") + data

    assert mp3.duration_ms(tagged) == mp3.duration_ms(mp3.audio_frames(data))


def test_bytes_without_any_frame_have_no_audio() -> None:
    assert mp3.audio_frames(b"") == b""
    assert mp3.audio_frames(b"not an mp3 at all" * 20) == b""
    assert mp3.duration_ms(b"\xff\xfb") == 0
