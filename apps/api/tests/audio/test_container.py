"""Joining segments into one body: one WAV header, byte-exact raw formats, MP3 frames only."""

import io
import struct

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from app.audio import codecs, container, mp3
from app.audio.formats import FORMATS, OutputFormat, spec_of

Int16Array = npt.NDArray[np.int16]


def _speechlike(samples: int, seed: int) -> Int16Array:
    rng = np.random.default_rng(seed)
    envelope = np.abs(np.sin(np.linspace(0, 9, samples)))
    return (rng.standard_normal(samples) * 4000 * envelope).clip(-32768, 32767).astype(np.int16)


def _parts(rate: int) -> list[Int16Array]:
    # Uneven lengths, so a header or a sample at a boundary cannot hide.
    return [_speechlike(n, seed) for seed, n in enumerate((rate // 3, 1, rate // 2 + 7))]


def _le16(pcm: Int16Array) -> bytes:
    return pcm.astype("<i2").tobytes()


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100])
def test_wav_header_describes_mono_16_bit_pcm_that_soundfile_reads(rate: int) -> None:
    pcm = _speechlike(rate // 4, seed=1)
    data = _le16(pcm)

    header = container.wav_header(rate, len(data))

    assert len(header) == 44
    info = sf.info(io.BytesIO(header + data))
    assert (info.format, info.subtype) == ("WAV", "PCM_16")
    assert info.samplerate == rate
    assert info.channels == 1
    assert info.frames == pcm.size
    decoded, _ = sf.read(io.BytesIO(header + data), dtype="int16")
    np.testing.assert_array_equal(decoded, pcm)


def test_wav_header_of_unknown_length_uses_the_largest_sizes() -> None:
    header = container.wav_header(16000, None)

    riff_size = struct.unpack_from("<I", header, 4)[0]
    data_size = struct.unpack_from("<I", header, 40)[0]
    assert header[36:40] == b"data"
    assert riff_size == data_size == 0xFFFFFFFF == container.UNKNOWN_LENGTH


def test_a_streamed_wav_of_unknown_length_is_still_read_to_its_end() -> None:
    pcm = _speechlike(8000, seed=2)

    decoded, rate = sf.read(
        io.BytesIO(container.wav_header(16000, None) + _le16(pcm)), dtype="int16"
    )

    assert rate == 16000
    np.testing.assert_array_equal(decoded, pcm)


@pytest.mark.parametrize("fmt", [f for f, s in FORMATS.items() if s.wav])
def test_wav_deliverable_of_several_parts_has_one_header_and_every_sample(
    fmt: OutputFormat,
) -> None:
    spec = spec_of(fmt)
    pcm_parts = _parts(spec.sample_rate)
    wire_parts = [codecs.encode(p, spec.sample_rate, spec_of(spec.wire)) for p in pcm_parts]

    body = container.deliverable(wire_parts, spec)

    assert body.count(b"RIFF") == 1
    assert body.count(b"WAVE") == 1
    assert body.startswith(b"RIFF")
    assert len(body) == 44 + sum(len(p) for p in wire_parts)
    decoded, rate = sf.read(io.BytesIO(body), dtype="int16")
    assert rate == spec.sample_rate
    np.testing.assert_array_equal(decoded, np.concatenate(pcm_parts))


@pytest.mark.parametrize(
    "fmt", [f for f, s in FORMATS.items() if s.encoding != "mp3" and not s.wav]
)
def test_raw_formats_concatenate_byte_exactly(fmt: OutputFormat) -> None:
    spec = spec_of(fmt)
    wire_parts = [codecs.encode(p, spec.sample_rate, spec) for p in _parts(spec.sample_rate)]

    body = container.deliverable(wire_parts, spec)

    assert body == b"".join(wire_parts)
    assert container.join_wire(wire_parts) == body


@pytest.mark.parametrize("fmt", [f for f, s in FORMATS.items() if s.encoding == "mp3"])
def test_mp3_deliverable_is_the_audio_frames_of_every_part_and_nothing_else(
    fmt: OutputFormat,
) -> None:
    spec = spec_of(fmt)
    rate = spec.sample_rate
    # Whole files as an encoder writes them: an ID3 tag, LAME's Info frame, an ID3v1 tag.
    # Constant bitrate, as ElevenLabs sends: without an Info frame, libsndfile estimates a
    # stream's length from its first frame's bitrate, so it would cut a joined VBR stream short.
    files: list[bytes] = []
    for pcm in _parts(rate):
        buffer = io.BytesIO()
        level = {44100: 0.65, 22050: 0.83}[rate]
        with sf.SoundFile(
            buffer, "w", rate, 1, format="MP3", bitrate_mode="CONSTANT", compression_level=level
        ) as out:
            out.title = "segment"
            out.write(pcm)
        files.append(b"ID3\x04\x00\x00\x00\x00\x00\x00" + buffer.getvalue())
    one_by_one = [sf.read(io.BytesIO(mp3.audio_frames(f)), dtype="int16")[0].size for f in files]

    body = container.deliverable([container.segment_audio(f, spec) for f in files], spec)

    assert not body.startswith(b"ID3")
    assert b"TAGsegment" not in body
    frames = list(mp3.iter_frames(body))
    assert sum(f.length for f in frames) == len(body)
    assert b"Info" not in body[: frames[0].length]
    assert b"Xing" not in body[: frames[0].length]
    decoded, decoded_rate = sf.read(io.BytesIO(body), dtype="int16")
    assert decoded_rate == rate
    assert decoded.size == sum(one_by_one)


def test_no_parts_make_an_empty_body_or_a_bare_wav_header() -> None:
    assert container.deliverable([], spec_of(OutputFormat.MP3_44100_128)) == b""
    assert container.deliverable([], spec_of(OutputFormat.ULAW_8000)) == b""
    assert container.deliverable([], spec_of(OutputFormat.WAV_16000)) == container.wav_header(
        16000, 0
    )
