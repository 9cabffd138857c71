"""G.711 μ-law and A-law against CPython's `audioop`, the reference they must match bit for bit."""

import audioop
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from app.audio import g711

Int16Array = npt.NDArray[np.int16]
Encoder = Callable[[Int16Array], bytes]
Decoder = Callable[[bytes], Int16Array]

EVERY_SAMPLE: Int16Array = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = bytes(range(256))
CODECS = pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
    ids=["ulaw", "alaw"],
)


def _le16(pcm: Int16Array) -> bytes:
    return pcm.astype("<i2").tobytes()


def _from_le16(data: bytes) -> Int16Array:
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def test_ulaw_encoder_matches_audioop_on_every_int16_sample() -> None:
    ours = g711.ulaw_encode(EVERY_SAMPLE)

    reference = audioop.lin2ulaw(_le16(EVERY_SAMPLE), 2)

    assert len(ours) == 65536
    assert ours == reference


def test_alaw_encoder_matches_audioop_on_every_int16_sample() -> None:
    ours = g711.alaw_encode(EVERY_SAMPLE)

    reference = audioop.lin2alaw(_le16(EVERY_SAMPLE), 2)

    assert len(ours) == 65536
    assert ours == reference


def test_ulaw_decoder_matches_audioop_on_every_code() -> None:
    ours = g711.ulaw_decode(EVERY_CODE)

    reference = _from_le16(audioop.ulaw2lin(EVERY_CODE, 2))

    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours, reference)


def test_alaw_decoder_matches_audioop_on_every_code() -> None:
    ours = g711.alaw_decode(EVERY_CODE)

    reference = _from_le16(audioop.alaw2lin(EVERY_CODE, 2))

    assert ours.dtype == np.int16
    np.testing.assert_array_equal(ours, reference)


def test_encoders_match_audioop_on_a_non_contiguous_slice_of_speech_like_samples() -> None:
    rng = np.random.default_rng(711)
    pcm = (rng.standard_normal(4001) * 6000).clip(-32768, 32767).astype(np.int16)[::3]

    assert g711.ulaw_encode(pcm) == audioop.lin2ulaw(_le16(pcm), 2)
    assert g711.alaw_encode(pcm) == audioop.lin2alaw(_le16(pcm), 2)


def test_ulaw_silence_is_audioops_code_for_zero_and_decodes_to_zero() -> None:
    assert bytes([g711.ULAW_SILENCE]) == audioop.lin2ulaw(b"\x00\x00", 2)
    assert g711.ulaw_decode(bytes([g711.ULAW_SILENCE]) * 160).tolist() == [0] * 160


def test_alaw_silence_is_audioops_code_for_zero_and_decodes_to_almost_zero() -> None:
    # A-law has no code for exactly 0; its silence is the smallest positive step.
    assert bytes([g711.ALAW_SILENCE]) == audioop.lin2alaw(b"\x00\x00", 2)
    assert np.abs(g711.alaw_decode(bytes([g711.ALAW_SILENCE]) * 160)).max() <= 8


@CODECS
def test_round_trip_error_stays_within_half_a_logarithmic_step(
    encode: Encoder, decode: Decoder
) -> None:
    original = EVERY_SAMPLE.astype(np.int64)

    restored = decode(encode(EVERY_SAMPLE)).astype(np.int64)

    error = np.abs(restored - original)
    in_range = np.abs(original) <= 32000
    # 8-bit logarithmic codes: 16 steps per doubling, so half a step is about 1/32 of the
    # magnitude, plus the few low bits G.711 drops before quantizing.
    assert np.all(error[in_range] <= np.abs(original[in_range]) / 32 + 16)
    # Only the clipped extremes lose more, and never more than a few percent of full scale.
    assert error.max() <= 1024


@CODECS
def test_round_trip_preserves_the_order_of_samples(encode: Encoder, decode: Decoder) -> None:
    restored = decode(encode(EVERY_SAMPLE)).astype(np.int64)

    assert np.all(np.diff(restored) >= 0)
    assert restored[0] < 0 < restored[-1]


@CODECS
def test_empty_input_gives_empty_output(encode: Encoder, decode: Decoder) -> None:
    assert encode(np.zeros(0, dtype=np.int16)) == b""
    assert decode(b"").size == 0
