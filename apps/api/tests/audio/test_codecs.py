"""Encoding PCM into every output format and back: rates, lengths, bitrates, media types."""

import io

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from app.audio import codecs, mp3
from app.audio.formats import FORMATS, FormatSpec, OutputFormat, spec_of

Int16Array = npt.NDArray[np.int16]

SOURCE_RATE = 22050  # what the offline engine produces
TONE_HZ = 440.0
TONE_AMPLITUDE = 10000
MP3_FORMATS = [f for f, s in FORMATS.items() if s.encoding == "mp3"]
RAW_FORMATS = [f for f, s in FORMATS.items() if s.encoding != "mp3"]


def _tone(seconds: float, rate: int = SOURCE_RATE) -> Int16Array:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * TONE_HZ * t) * TONE_AMPLITUDE).astype(np.int16)


def _peak_hz(pcm: Int16Array, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size)))
    return float(np.argmax(spectrum) * rate / pcm.size)


def _rms_dbfs(pcm: Int16Array) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) / 32768))


def _frame_s(spec: FormatSpec) -> float:
    # MPEG-1 Layer III frames carry 1152 samples; MPEG-2 (22.05 kHz and below) 576.
    return (1152 if spec.sample_rate >= 32000 else 576) / spec.sample_rate


def test_the_format_table_covers_every_output_format() -> None:
    assert set(FORMATS) == set(OutputFormat)
    assert all(spec_of(fmt).format is fmt for fmt in OutputFormat)


@pytest.mark.parametrize("fmt", list(OutputFormat))
def test_one_second_tone_decodes_back_to_one_second_of_the_same_tone(fmt: OutputFormat) -> None:
    spec = spec_of(fmt)
    tone = _tone(1.0)

    wire = codecs.encode(tone, SOURCE_RATE, spec)
    decoded = codecs.decode(wire, spec)

    assert decoded.dtype == np.int16
    seconds = decoded.size / spec.sample_rate
    if spec.encoding == "mp3":
        # MP3 rounds up to whole frames and adds the encoder's delay: a few frames at most.
        assert 1.0 <= seconds <= 1.0 + 4 * _frame_s(spec)
    else:
        assert decoded.size == spec.sample_rate
    assert abs(_peak_hz(decoded, spec.sample_rate) - TONE_HZ) <= 2.0
    assert abs(_rms_dbfs(decoded) - _rms_dbfs(tone)) <= 1.5


@pytest.mark.parametrize("fmt", RAW_FORMATS)
@pytest.mark.parametrize("seconds", [1.0, 0.25, 2.5])
def test_duration_of_raw_formats_is_their_length_in_samples(
    fmt: OutputFormat, seconds: float
) -> None:
    spec = spec_of(fmt)

    wire = codecs.encode(_tone(seconds), SOURCE_RATE, spec)

    assert codecs.duration_ms(wire, spec) == round(seconds * 1000)


@pytest.mark.parametrize("fmt", MP3_FORMATS)
@pytest.mark.parametrize("seconds", [1.0, 0.25, 2.5])
def test_duration_of_mp3_matches_what_soundfile_decodes(fmt: OutputFormat, seconds: float) -> None:
    spec = spec_of(fmt)

    wire = codecs.encode(_tone(seconds), SOURCE_RATE, spec)

    decoded, rate = sf.read(io.BytesIO(wire), dtype="int16")
    assert rate == spec.sample_rate
    assert codecs.duration_ms(wire, spec) == pytest.approx(len(decoded) / rate * 1000, abs=1)
    assert seconds * 1000 <= codecs.duration_ms(wire, spec) <= (seconds + 4 * _frame_s(spec)) * 1000


@pytest.mark.parametrize(
    ("fmt", "kbps", "rate"),
    [(OutputFormat.MP3_44100_128, 128, 44100), (OutputFormat.MP3_22050_32, 32, 22050)],
)
def test_every_mp3_frame_header_carries_the_formats_bitrate_and_rate(
    fmt: OutputFormat, kbps: int, rate: int
) -> None:
    spec = spec_of(fmt)

    wire = codecs.encode(_tone(1.0), SOURCE_RATE, spec)

    frames = list(mp3.iter_frames(wire))
    assert len(frames) >= 1.0 / _frame_s(spec)
    assert {(f.bitrate_kbps, f.sample_rate) for f in frames} == {(kbps, rate)}
    assert spec.bitrate_kbps == kbps
    # Constant bitrate: the stream's size is the bitrate times its duration.
    seconds = sum(f.samples for f in frames) / rate
    assert len(wire) == pytest.approx(kbps * 1000 / 8 * seconds, rel=0.01)


@pytest.mark.parametrize("fmt", MP3_FORMATS)
def test_mp3_decodes_with_soundfile_as_mono_at_the_formats_rate(fmt: OutputFormat) -> None:
    spec = spec_of(fmt)
    wire = codecs.encode(_tone(1.0), SOURCE_RATE, spec)

    info = sf.info(io.BytesIO(wire))
    pcm, rate = codecs.decode_file(wire)

    assert info.format == "MP3"
    assert info.channels == 1
    assert info.samplerate == spec.sample_rate
    assert rate == spec.sample_rate
    assert abs(_peak_hz(pcm, rate) - TONE_HZ) <= 2.0


@pytest.mark.parametrize("to_rate", [8000, 44100])
def test_resampling_keeps_a_440_hz_tone_at_440_hz(to_rate: int) -> None:
    tone = _tone(1.0)

    resampled = codecs.resample(tone, SOURCE_RATE, to_rate)

    assert resampled.dtype == np.int16
    assert resampled.size == to_rate
    assert abs(_peak_hz(resampled, to_rate) - TONE_HZ) <= 1.0
    assert abs(_rms_dbfs(resampled) - _rms_dbfs(tone)) <= 0.5


def test_downsampling_to_8_khz_filters_out_what_8_khz_cannot_carry() -> None:
    # A 6 kHz tone is above 8 kHz's Nyquist limit; without filtering it folds back to 2 kHz.
    t = np.arange(SOURCE_RATE) / SOURCE_RATE
    tone = (np.sin(2 * np.pi * 6000 * t) * TONE_AMPLITUDE).astype(np.int16)

    resampled = codecs.resample(tone, SOURCE_RATE, 8000)

    assert _rms_dbfs(resampled) < _rms_dbfs(tone) - 40


def test_resampling_to_the_same_rate_or_an_empty_buffer_changes_nothing() -> None:
    tone = _tone(0.1)
    empty = np.zeros(0, dtype=np.int16)

    assert np.array_equal(codecs.resample(tone, SOURCE_RATE, SOURCE_RATE), tone)
    assert codecs.resample(empty, SOURCE_RATE, 8000).size == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"this is plainly not audio " * 40,
        np.random.default_rng(7).integers(1, 255, 5000, dtype=np.uint8).tobytes(),
        b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 8,
    ],
    ids=["text", "random-bytes", "truncated-wav"],
)
def test_decode_file_raises_audio_decode_error_on_garbage(garbage: bytes) -> None:
    with pytest.raises(codecs.AudioDecodeError):
        codecs.decode_file(garbage)


def test_decode_file_reads_a_wav_file_with_its_rate() -> None:
    tone = _tone(0.5, 16000)
    buffer = io.BytesIO()
    sf.write(buffer, tone, 16000, format="WAV", subtype="PCM_16")

    pcm, rate = codecs.decode_file(buffer.getvalue())

    assert rate == 16000
    np.testing.assert_array_equal(pcm, tone)


@pytest.mark.parametrize("fmt", [f for f, s in FORMATS.items() if s.wav])
def test_wav_formats_travel_as_pcm_of_the_same_rate(fmt: OutputFormat) -> None:
    spec = spec_of(fmt)
    wire = spec_of(spec.wire)
    tone = _tone(0.3)

    assert wire.encoding == "pcm"
    assert not wire.wav
    assert wire.sample_rate == spec.sample_rate
    assert codecs.encode(tone, SOURCE_RATE, spec) == codecs.encode(tone, SOURCE_RATE, wire)


def test_formats_without_a_wav_header_travel_as_themselves() -> None:
    for fmt, spec in FORMATS.items():
        if not spec.wav:
            assert spec.wire is fmt


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        (OutputFormat.MP3_44100_128, "audio/mpeg"),
        (OutputFormat.MP3_22050_32, "audio/mpeg"),
        (OutputFormat.WAV_16000, "audio/wav"),
        (OutputFormat.WAV_22050, "audio/wav"),
        (OutputFormat.WAV_44100, "audio/wav"),
        (OutputFormat.ULAW_8000, "audio/basic"),
    ],
)
def test_media_types_are_the_registered_ones(fmt: OutputFormat, media_type: str) -> None:
    assert spec_of(fmt).media_type == media_type


@pytest.mark.parametrize(
    "fmt", [f for f, s in FORMATS.items() if s.encoding == "pcm" and not s.wav]
)
def test_raw_pcm_media_types_state_their_rate(fmt: OutputFormat) -> None:
    spec = spec_of(fmt)

    assert spec.media_type.startswith("audio/pcm")
    assert f"rate={spec.sample_rate}" in spec.media_type


def test_empty_pcm_encodes_to_empty_bytes_in_every_format() -> None:
    empty = np.zeros(0, dtype=np.int16)

    for spec in FORMATS.values():
        assert codecs.encode(empty, SOURCE_RATE, spec) == b""
        assert codecs.duration_ms(b"", spec) == 0


def test_the_stream_encoder_hands_out_mp3_frames_before_the_end() -> None:
    spec = FORMATS[OutputFormat.MP3_44100_128]
    tone = (np.sin(np.arange(44100 * 2) * 2 * np.pi * 220 / 44100) * 8000).astype(np.int16)
    encoder = codecs.StreamEncoder(spec)

    first = encoder.encode(tone[:11025])
    rest = encoder.encode(tone[11025:])
    tail = encoder.finish()

    assert first, "frames of the first quarter second are out before the rest is encoded"
    whole = first + rest + tail
    assert whole == mp3.audio_frames(whole)  # frames only, none cut, none repeated
    assert whole == codecs.encode(tone, 44100, spec)
