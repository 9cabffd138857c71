"""Integrated loudness against ITU-R BS.1770-4's own reference values and its filter."""

import numpy as np
import numpy.typing as npt
import pytest

from app.audio import loudness, quality

Float64Array = npt.NDArray[np.float64]

RATES = [48000, 44100, 22050, 16000, 8000]

# BS.1770-4 Table 1 and Table 2: the K-weighting's two stages at 48 kHz.
SHELF_48K = ((1.53512485958697, -2.69169618940638, 1.19839281085285),
             (1.0, -1.69065929318241, 0.73248077421585))  # fmt: skip
HIGHPASS_48K = ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))


def _sine(rate: int, dbfs: float, seconds: float = 5.0, hz: float = 997.0) -> Float64Array:
    t = np.arange(round(rate * seconds)) / rate
    return 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)


def _biquad(b: tuple[float, ...], a: tuple[float, ...], x: Float64Array) -> Float64Array:
    """The difference equation, sample by sample: the textbook filter the FFT one replaces."""
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, value in enumerate(x.tolist()):
        out = b[0] * value + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, value, y1, out
        y[i] = out
    return y


def test_the_k_weighting_at_48_khz_is_the_standards_filter() -> None:
    shelf, highpass = loudness.k_weighting(48000)

    for ours, standard in ((shelf, SHELF_48K), (highpass, HIGHPASS_48K)):
        for coefficients, expected in zip(ours, standard, strict=True):
            assert coefficients == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(("dbfs", "lufs"), [(0.0, -3.01), (-20.0, -23.01)])
def test_a_997_hz_sine_reads_as_the_standard_says(rate: int, dbfs: float, lufs: float) -> None:
    # BS.1770-4: a 0 dB FS 997 Hz sine (peak at full scale) reads -3.01 LUFS.
    assert loudness.integrated_loudness(_sine(rate, dbfs), rate) == pytest.approx(lufs, abs=0.2)


@pytest.mark.parametrize("rate", [48000, 16000])
def test_int16_speech_pcm_of_a_minus_20_dbfs_sine_measures_the_same(rate: int) -> None:
    pcm = np.round(_sine(rate, -20.0) * 32767).astype(np.int16)

    assert quality.measure(pcm, rate, None).loudness_lufs == pytest.approx(-23.01, abs=0.2)


def test_filtering_in_the_frequency_domain_matches_the_difference_equation() -> None:
    rate = 16000
    rng = np.random.default_rng(7)
    # Noise whose level changes every 100 ms, so gating and block edges both matter.
    x = rng.standard_normal(3 * rate) * np.repeat(rng.uniform(0.01, 0.5, 30), rate // 10)
    y = x
    for b, a in loudness.k_weighting(rate):
        y = _biquad(b, a, y)
    hop = rate // 10
    steps = (y[: y.size // hop * hop] ** 2).reshape(-1, hop).sum(axis=1)
    powers = np.lib.stride_tricks.sliding_window_view(steps, 4).sum(axis=1) / (4 * hop)

    reference = loudness.gated_loudness(powers)

    assert loudness.integrated_loudness(x, rate) == pytest.approx(reference, abs=0.01)


def test_digital_silence_is_below_the_absolute_gate() -> None:
    assert loudness.integrated_loudness(np.zeros(48000), 48000) == loudness.LUFS_FLOOR


def test_silence_around_a_tone_does_not_lower_its_loudness() -> None:
    rate = 48000
    tone = _sine(rate, -20.0, seconds=10.0)
    padded = np.concatenate([np.zeros(2 * rate), tone, np.zeros(4 * rate)])

    alone = loudness.integrated_loudness(tone, rate)

    # Only the six blocks that straddle the tone's edges count a little silence.
    assert loudness.integrated_loudness(padded, rate) == pytest.approx(alone, abs=0.2)


def test_the_relative_gate_leaves_out_passages_20_lu_quieter() -> None:
    rate = 16000
    loud = _sine(rate, -20.0, seconds=8.0)
    quiet = _sine(rate, -40.0, seconds=8.0)

    both = loudness.integrated_loudness(np.concatenate([loud, quiet]), rate)

    # Without the relative gate the mean power would read 3 LU lower.
    assert both == pytest.approx(loudness.integrated_loudness(loud, rate), abs=0.2)


def test_audio_shorter_than_one_block_still_gets_its_loudness() -> None:
    rate = 22050
    short = _sine(rate, -20.0, seconds=0.25)

    assert loudness.integrated_loudness(short, rate) == pytest.approx(-23.01, abs=0.3)


def test_long_audio_is_filtered_in_chunks_without_seams() -> None:
    rate = 44100
    tone = _sine(rate, -20.0, seconds=30.0)  # many chunks of the FFT filter

    assert loudness.integrated_loudness(tone, rate) == pytest.approx(-23.01, abs=0.2)
    assert loudness.k_weighted(tone[:100_000], rate).shape == (100_000,)
