"""A no-reference quality score (0–1) for one synthesized segment, from its PCM alone.

Each measure maps to a 0–1 sub-score; the score is the mean of the weighted average and the
worst sub-score, so one real defect (silence, clipping, a cut-off) pulls the score down even
when everything else is fine.
"""

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

# Conversational speech runs at about 12–16 Latin characters a second; a CJK character is a
# syllable, counted as three (see tts.segmenting.spoken_length).
CHARS_PER_SECOND = 14.0
_FRAME_S = 0.02
_SILENCE_DBFS = -45.0
_WEIGHTS = {"duration": 0.3, "silence": 0.15, "clipping": 0.2, "level": 0.15, "noise": 0.2}
_FFT_SIZE = 512


@dataclass(frozen=True, slots=True)
class QualityMeasures:
    duration_s: float
    expected_s: float
    leading_silence_s: float
    trailing_silence_s: float
    clipping_ratio: float
    rms_dbfs: float
    spectral_flatness: float
    subscores: dict[str, float]
    score: float


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear between (works in either direction)."""
    if bad == good:
        return 1.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def _frame_dbfs(pcm: npt.NDArray[np.float64], sample_rate: int) -> npt.NDArray[np.float64]:
    frame = max(1, int(sample_rate * _FRAME_S))
    usable = pcm[: len(pcm) - len(pcm) % frame]
    if usable.size == 0:
        return np.full(1, -120.0)
    rms = np.sqrt(np.mean(usable.reshape(-1, frame) ** 2, axis=1))
    levels: npt.NDArray[np.float64] = 20 * np.log10(np.maximum(rms, 1e-6))
    return levels


def _spectral_flatness(samples: npt.NDArray[np.float64]) -> float:
    """Median over frames of geometric / arithmetic mean power: ~0 for speech, ~0.5 for noise."""
    frames = samples[: len(samples) - len(samples) % _FFT_SIZE].reshape(-1, _FFT_SIZE)
    if frames.size == 0:
        return 0.0
    loud = frames[np.sqrt(np.mean(frames**2, axis=1)) > 10 ** (_SILENCE_DBFS / 20)]
    if loud.size == 0:
        return 0.0
    power = np.abs(np.fft.rfft(loud * np.hanning(_FFT_SIZE), axis=1)) ** 2 + 1e-12
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return float(np.median(flatness))


def measure(pcm: Int16Array, sample_rate: int, spoken_chars: int) -> QualityMeasures:
    """Score `pcm` (mono int16) as speech of a text `spoken_chars` long."""
    expected_s = max(spoken_chars / CHARS_PER_SECOND, 0.2)
    if pcm.size == 0 or sample_rate <= 0:
        zero = dict.fromkeys(_WEIGHTS, 0.0)
        return QualityMeasures(0.0, expected_s, 0.0, 0.0, 0.0, -120.0, 0.0, zero, 0.0)
    samples = pcm.astype(np.float64) / 32768.0
    duration_s = pcm.size / sample_rate
    levels = _frame_dbfs(samples, sample_rate)
    voiced = np.flatnonzero(levels > _SILENCE_DBFS)
    if voiced.size:
        leading_s = voiced[0] * _FRAME_S
        trailing_s = max(0.0, duration_s - (voiced[-1] + 1) * _FRAME_S)
    else:
        leading_s, trailing_s = duration_s, 0.0
    speech_s = max(0.0, duration_s - leading_s - trailing_s)
    clipping = float(np.mean(np.abs(pcm.astype(np.int32)) >= 32767))
    rms_dbfs = float(20 * np.log10(max(float(np.sqrt(np.mean(samples**2))), 1e-6)))
    flatness = _spectral_flatness(samples)

    ratio = speech_s / expected_s
    subscores = {
        "duration": min(_ramp(ratio, 0.2, 0.6), _ramp(ratio, 3.0, 1.6)),
        "silence": _ramp(leading_s + trailing_s, 2.0, 0.6),
        "clipping": _ramp(clipping, 0.05, 0.001),
        "level": min(_ramp(rms_dbfs, -55.0, -35.0), _ramp(rms_dbfs, -3.0, -10.0)),
        "noise": _ramp(flatness, 0.4, 0.1),
    }
    weighted = sum(_WEIGHTS[name] * value for name, value in subscores.items())
    score = round((weighted + min(subscores.values())) / 2, 3)
    return QualityMeasures(
        duration_s=duration_s,
        expected_s=expected_s,
        leading_silence_s=leading_s,
        trailing_silence_s=trailing_s,
        clipping_ratio=clipping,
        rms_dbfs=rms_dbfs,
        spectral_flatness=flatness,
        subscores=subscores,
        score=score,
    )
