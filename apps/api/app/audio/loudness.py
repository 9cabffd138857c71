"""Integrated loudness of mono PCM in LUFS (ITU-R BS.1770-4), with numpy alone.

The K-weighting (a high shelf, then the RLB high-pass) is applied as its exact magnitude
response at the FFT bins of overlapping chunks: one real gain per bin, cached per rate and
chunk length, so filtering costs two FFTs per chunk instead of a sample-by-sample IIR loop in
Python. Dropping the biquads' phase moves energy by a few milliseconds at most, far inside
the 100 ms steps the gating works in.
"""

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]
Float32Array = npt.NDArray[np.float32]
FloatArray = npt.NDArray[np.floating[Any]]

# What `integrated_loudness` answers when no block passes the gates (digital silence).
LUFS_FLOOR = -120.0
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
BLOCK_S = 0.4
STEP_S = 0.1  # 75 % overlap
_OFFSET_DB = -0.691  # BS.1770: makes a 997 Hz sine at 0 dBFS read -3.01 LUFS
# Context kept on each side of a chunk: the RLB high-pass rings longest, below 1e-6 of its
# peak after about 60 ms at any rate.
_MARGIN_S = 0.1
_CHUNK = 1 << 15

# The two stages' analogue prototypes (BS.1770-4 Table 1 at 48 kHz, as derived by
# libebur128), so the filter is the standard's at any sample rate.
_SHELF_HZ = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_VB_EXPONENT = 0.4996667741545416
_HIGHPASS_HZ = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773

Biquad = tuple[tuple[float, float, float], tuple[float, float, float]]


def k_weighting(sample_rate: int) -> tuple[Biquad, Biquad]:
    """The two biquads ((b0, b1, b2), (1, a1, a2)) of the K-weighting at `sample_rate`."""
    k = float(np.tan(np.pi * _SHELF_HZ / sample_rate))
    vh = 10 ** (_SHELF_GAIN_DB / 20)
    vb = vh**_SHELF_VB_EXPONENT
    a0 = 1 + k / _SHELF_Q + k * k
    shelf: Biquad = (
        (
            (vh + vb * k / _SHELF_Q + k * k) / a0,
            2 * (k * k - vh) / a0,
            (vh - vb * k / _SHELF_Q + k * k) / a0,
        ),
        (1.0, 2 * (k * k - 1) / a0, (1 - k / _SHELF_Q + k * k) / a0),
    )
    k = float(np.tan(np.pi * _HIGHPASS_HZ / sample_rate))
    a0 = 1 + k / _HIGHPASS_Q + k * k
    highpass: Biquad = (
        (1.0, -2.0, 1.0),
        (1.0, 2 * (k * k - 1) / a0, (1 - k / _HIGHPASS_Q + k * k) / a0),
    )
    return shelf, highpass


def _power_response(coefficients: tuple[float, float, float], omega: Float64Array) -> Float64Array:
    """|c0 + c1·z⁻¹ + c2·z⁻²|² on the unit circle, in real arithmetic."""
    c0, c1, c2 = coefficients
    power: Float64Array = (
        c0 * c0 + c1 * c1 + c2 * c2 + 2 * (c0 * c1 + c1 * c2) * np.cos(omega)
    ) + 2 * c0 * c2 * np.cos(2 * omega)
    return power


@lru_cache(maxsize=64)
def _gain(sample_rate: int, length: int) -> Float32Array:
    """|H(e^jω)| of the whole K-weighting at the rfft bins of `length` samples."""
    omega = 2 * np.pi * np.arange(length // 2 + 1) / length
    power = np.ones_like(omega)
    for b, a in k_weighting(sample_rate):
        power *= _power_response(b, omega) / _power_response(a, omega)
    # Single precision: half the FFT work, and the loudness moves by under 1e-5 LU.
    gain: Float32Array = np.sqrt(power).astype(np.float32)
    gain.flags.writeable = False
    return gain


def _fast_length(n: int) -> int:
    """The smallest 2ᵃ·3ᵇ·5ᶜ ≥ n: lengths the FFT handles fastest."""
    best = 1 << max(0, n - 1).bit_length()
    five = 1
    while five < best:
        three = five
        while three < best:
            length = three
            while length < n:
                length *= 2
            best = min(best, length)
            three *= 3
        five *= 5
    return best


def _weighted_spans(samples: FloatArray, sample_rate: int, span: int) -> Iterator[FloatArray]:
    """`samples` through the K-weighting (zero phase), `span` samples at a time, in order."""
    margin = int(np.ceil(_MARGIN_S * sample_rate))
    length = _fast_length(span + 2 * margin)
    gain = _gain(sample_rate, length)
    padded = np.pad(samples.astype(np.float32, copy=False), (margin, margin + span))
    for start in range(0, samples.size, span):
        chunk = padded[start : start + length]
        # n=length: a chunk of very short audio can be shorter than the FFT; zeros fill it.
        filtered = np.fft.irfft(np.fft.rfft(chunk, length) * gain, length)
        yield filtered[margin : margin + min(span, samples.size - start)]


def k_weighted(samples: FloatArray, sample_rate: int) -> Float64Array:
    """`samples` through the K-weighting, as one array (tests and tools; scoring streams)."""
    span = min(samples.size, _CHUNK) or 1
    return np.concatenate([np.zeros(0), *_weighted_spans(samples, sample_rate, span)])


def block_powers(samples: FloatArray, sample_rate: int) -> Float64Array:
    """Mean square of the K-weighted signal in each 400 ms block, one starting every 100 ms.

    Filtering goes a chunk of whole steps at a time, so memory stays flat however long the
    audio is. Audio shorter than one block is one block of its own length (BS.1770 leaves
    it undefined; a short segment still gets a loudness).
    """
    hop = round(STEP_S * sample_rate)
    per_block = round(BLOCK_S / STEP_S)
    steps = samples.size // hop
    if steps < per_block:
        weighted = k_weighted(samples, sample_rate)
        return np.array([float(np.mean(weighted**2))]) if weighted.size else np.zeros(0)
    span = hop * min(steps, max(1, _CHUNK // hop))
    sums = np.concatenate(
        [
            np.einsum("ij,ij->i", part, part)
            for chunk in _weighted_spans(samples[: steps * hop], sample_rate, span)
            for part in [chunk.reshape(-1, hop)]
        ]
    )
    windows = np.lib.stride_tricks.sliding_window_view(sums, per_block)
    powers: Float64Array = windows.sum(axis=1) / (per_block * hop)
    return powers


def _lufs(power: Float64Array) -> Float64Array:
    result: Float64Array = _OFFSET_DB + 10 * np.log10(np.maximum(power, 1e-30))
    return result


def gated_loudness(powers: Float64Array) -> float:
    """Integrated loudness of blocks' mean squares: absolute, then relative gating."""
    loud = powers[_lufs(powers) > ABSOLUTE_GATE_LUFS]
    if loud.size == 0:
        return LUFS_FLOOR
    relative_gate = float(_lufs(np.mean(loud, keepdims=True))[0]) + RELATIVE_GATE_LU
    kept = loud[_lufs(loud) > relative_gate]
    return max(LUFS_FLOOR, float(_lufs(np.mean(kept, keepdims=True))[0]))


def integrated_loudness(samples: FloatArray, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness of mono `samples` (full scale ±1.0), in LUFS."""
    if samples.size == 0 or sample_rate <= 0:
        return LUFS_FLOOR
    return gated_loudness(block_powers(samples, sample_rate))
