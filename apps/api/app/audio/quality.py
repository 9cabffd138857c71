"""A no-reference quality score (0–1) for synthesized speech, from its PCM alone.

Each measure maps to a 0–1 sub-score: 1 over the range clean speech falls in, 0 where a
listener clearly hears the defect, linear between (thresholds in `subscores_of`):

    sub-score         weight  measure (good → bad)
    duration           0.20   speech span ÷ expected for the text at 14 characters a second
                              (0.6–1.6× → 0.2× or 3× + 0.5 s)
    truncation         0.20   the last 2 ms of sound against the median speech level
                              (≥ 5 dB below → ≤ 1 dB: it stops at full level, cut off)
    clipping           0.15   samples at full scale (≤ 0.1 % → 2 %)
    noise              0.15   spectral flatness of speech frames, 100–3600 Hz (≤ 0.08 → 0.3)
    loudness           0.10   ITU-R BS.1770-4 integrated loudness, see loudness.py
                              (−26…−14 LUFS → −40 or −8)
    internal_silence   0.10   the longest pause inside speech (≤ 1 s → 2.5 s) and the silent
                              share of the span from first to last speech (≤ 35 % → 60 %)
    leading_silence    0.05   silence before the first speech (≤ 0.4 s → 1.5 s)
    trailing_silence   0.05   silence after the last speech (≤ 0.8 s → 2 s)

Why these weights: missing words (too short, cut off) are what a caller hears as the agent
saying something wrong, so duration and truncation weigh most; clipping and noise are audible
distortions nothing downstream undoes; loudness can be fixed with gain, and pauses and silence
at the ends cost pacing rather than meaning. The score is the mean of the weighted average and
the worst sub-score, so one real defect pulls it below 0.8 however good the rest is. Without
the text, duration is left out and the other weights count in proportion.

"Speech" is a 20 ms frame within 35 dB of the loudest frames (their 95th percentile) and above
−70 dBFS, so quiet speech is still found (and scored as too quiet) while dither and codec noise
are not. Truncation looks at only the last 2 ms because eSpeak NG ends utterances with a fade
of just 3–5 ms; it is judged only when sound stops within 60 ms of the end (codec padding) and
speech stands 15 dB over the noise floor. A lossy codec smears a cut over its frame (MP3 at
low bitrates: over ~25 ms), and then the cut is left to the duration measure.
"""

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from app.audio import loudness

Int16Array = npt.NDArray[np.int16]
Float32Array = npt.NDArray[np.float32]

# Conversational speech runs at about 12–16 Latin characters a second; a CJK character is a
# syllable, counted as three (see tts.segmenting.spoken_length).
CHARS_PER_SECOND = 14.0
WEIGHTS = {
    "duration": 0.20,
    "truncation": 0.20,
    "clipping": 0.15,
    "noise": 0.15,
    "loudness": 0.10,
    "internal_silence": 0.10,
    "leading_silence": 0.05,
    "trailing_silence": 0.05,
}
GOOD_LUFS = (-26.0, -14.0)
_FRAME_S = 0.02
_VOICE_RANGE_DB = 35.0
_VOICE_FLOOR_DBFS = -70.0
_LEVEL_FLOOR_DB = -120.0
_END_S = 0.002
# Where sound ends: this far below the speech level (or the speech threshold, if lower).
_END_RANGE_DB = 30.0
# Over a noise floor closer than this to the speech, no end can be told from a cut.
_END_CONTRAST_DB = 15.0
_FLOOR_PERCENTILE = 10
# Sound stopping further than this before the end of the audio ended; it was not cut off.
NEAR_END_S = 0.06
_CLIP_LEVEL = 32440  # -0.09 dBFS: decoders and resamplers round a clipped peak just below
_FLATNESS_BAND_HZ = (100.0, 3600.0)  # the telephone band: present at every rate we serve
_FLATNESS_FRAME_S = 0.032
_FLATNESS_MAX_FRAMES = 256  # evenly spread: the median settles long before


@dataclass(frozen=True, slots=True)
class QualityMeasures:
    duration_s: float
    expected_s: float | None  # None: the text is unknown
    speech_s: float  # first to last speech frame
    leading_silence_s: float
    trailing_silence_s: float
    longest_pause_s: float
    pause_share: float  # silent frames between the first and last speech frame
    clipping_ratio: float
    loudness_lufs: float
    rms_dbfs: float
    spectral_flatness: float
    end_drop_db: float | None  # speech level minus the last 2 ms of sound; None: no speech
    ends_early_s: float  # sound stops this long before the end of the audio
    speech_over_floor_db: float  # median speech frame over the quietest tenth of frames
    subscores: dict[str, float]
    score: float

    @property
    def has_speech(self) -> bool:
        return self.end_drop_db is not None

    @property
    def end_judged(self) -> bool:
        """Whether the end can tell a cut: sound ends near the end, and stands out of noise."""
        return (
            self.has_speech
            and self.ends_early_s <= NEAR_END_S
            and self.speech_over_floor_db >= _END_CONTRAST_DB
        )


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear between (works in either direction)."""
    if bad == good:
        return 1.0
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def _db(power: float) -> float:
    return float(10 * np.log10(power)) if power > 0 else _LEVEL_FLOOR_DB


def _frame_powers(samples: Float32Array, frame: int) -> npt.NDArray[np.float64]:
    """Mean square of each `frame`-sample frame; a last partial frame counts on its own."""
    whole = samples.size // frame
    parts = samples[: whole * frame].reshape(whole, frame)
    powers: npt.NDArray[np.float64] = np.einsum("ij,ij->i", parts, parts, dtype=np.float64)
    powers /= frame
    rest = samples[whole * frame :]
    if rest.size:
        powers = np.append(powers, float(np.mean(rest.astype(np.float64) ** 2)))
    return powers


def _longest_run(mask: npt.NDArray[np.bool_]) -> int:
    if not mask.any():
        return 0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.view(np.int8), [0]))))
    return int((edges[1::2] - edges[::2]).max())


@lru_cache(maxsize=16)
def _window(size: int) -> Float32Array:
    window = np.hanning(size).astype(np.float32)
    window.flags.writeable = False
    return window


def _spectral_flatness(samples: Float32Array, sample_rate: int, threshold_db: float) -> float:
    """Median over speech frames of geometric ÷ arithmetic mean power: ~0 speech, ~0.56 noise."""
    size = 1 << max(4, round(np.log2(_FLATNESS_FRAME_S * sample_rate)))
    frames = samples[: samples.size - samples.size % size].reshape(-1, size)
    if frames.size == 0:
        return 0.0
    powers = np.einsum("ij,ij->i", frames, frames) / size
    loud = np.flatnonzero(powers > 10 ** (threshold_db / 10))
    if loud.size == 0:
        return 0.0
    if loud.size > _FLATNESS_MAX_FRAMES:
        loud = loud[np.linspace(0, loud.size - 1, _FLATNESS_MAX_FRAMES).astype(np.intp)]
    low = max(1, int(np.ceil(_FLATNESS_BAND_HZ[0] * size / sample_rate)))
    high = min(size // 2, int(_FLATNESS_BAND_HZ[1] * size / sample_rate))
    spectrum = np.fft.rfft(frames[loud] * _window(size), axis=1)[:, low : high + 1]
    power = spectrum.real**2 + spectrum.imag**2 + 1e-12
    flatness = np.exp(np.mean(np.log(power), axis=1)) / np.mean(power, axis=1)
    return float(np.median(flatness))


def _clipping(pcm: Int16Array) -> float:
    if int(pcm.max()) < _CLIP_LEVEL and int(pcm.min()) > -_CLIP_LEVEL:
        return 0.0
    return float(np.count_nonzero((pcm >= _CLIP_LEVEL) | (pcm <= -_CLIP_LEVEL)) / pcm.size)


def _empty(duration_s: float, expected_s: float | None, rms_dbfs: float) -> QualityMeasures:
    names = [n for n in WEIGHTS if expected_s is not None or n != "duration"]
    return QualityMeasures(
        duration_s=duration_s,
        expected_s=expected_s,
        speech_s=0.0,
        leading_silence_s=duration_s,
        trailing_silence_s=0.0,
        longest_pause_s=0.0,
        pause_share=0.0,
        clipping_ratio=0.0,
        loudness_lufs=loudness.LUFS_FLOOR,
        rms_dbfs=rms_dbfs,
        spectral_flatness=0.0,
        end_drop_db=None,
        ends_early_s=duration_s,
        speech_over_floor_db=0.0,
        subscores=dict.fromkeys(names, 0.0),
        score=0.0,
    )


def _end_of_sound(samples: Float32Array, frame: int, last: int, level_db: float) -> int:
    """Index after the last sample above `level_db`, in the last speech frame or the next."""
    tail = samples[last * frame : (last + 2) * frame]
    above = np.flatnonzero(np.abs(tail) > 10 ** (level_db / 20))
    return last * frame + (int(above[-1]) + 1 if above.size else min(frame, tail.size))


def measure(pcm: Int16Array, sample_rate: int, spoken_chars: int | None) -> QualityMeasures:
    """Score `pcm` (mono int16) as speech of a text `spoken_chars` long (None: unknown)."""
    expected_s = None if spoken_chars is None else max(spoken_chars / CHARS_PER_SECOND, 0.2)
    if pcm.size == 0 or sample_rate <= 0:
        return _empty(0.0, expected_s, _LEVEL_FLOOR_DB)
    samples = pcm.astype(np.float32) / np.float32(32768)
    duration_s = pcm.size / sample_rate
    frame = max(1, round(sample_rate * _FRAME_S))
    powers = _frame_powers(samples, frame)
    rms_dbfs = _db(float(np.dot(samples, samples)) / pcm.size)
    levels = 10 * np.log10(np.maximum(powers, 1e-12))
    threshold = max(_VOICE_FLOOR_DBFS, float(np.percentile(levels, 95)) - _VOICE_RANGE_DB)
    voiced = np.flatnonzero(levels > threshold)
    if voiced.size == 0:
        return _empty(duration_s, expected_s, rms_dbfs)
    first, last = int(voiced[0]), int(voiced[-1])
    leading_s = first * frame / sample_rate
    trailing_s = max(0.0, duration_s - (last + 1) * frame / sample_rate)
    silent = levels[first : last + 1] <= threshold
    speech_level = float(np.median(levels[voiced]))
    end = _end_of_sound(samples, frame, last, min(threshold, speech_level - _END_RANGE_DB))
    ending = samples[max(0, end - max(1, round(_END_S * sample_rate))) : end]
    end_drop = speech_level - _db(float(np.mean(ending.astype(np.float64) ** 2)))

    measured = QualityMeasures(
        duration_s=duration_s,
        expected_s=expected_s,
        speech_s=max(0.0, duration_s - leading_s - trailing_s),
        leading_silence_s=leading_s,
        trailing_silence_s=trailing_s,
        longest_pause_s=_longest_run(silent) * frame / sample_rate,
        pause_share=float(np.mean(silent)),
        clipping_ratio=_clipping(pcm),
        loudness_lufs=loudness.integrated_loudness(samples, sample_rate),
        rms_dbfs=rms_dbfs,
        spectral_flatness=_spectral_flatness(samples, sample_rate, threshold),
        end_drop_db=end_drop,
        ends_early_s=(pcm.size - end) / sample_rate,
        speech_over_floor_db=speech_level - float(np.percentile(levels, _FLOOR_PERCENTILE)),
        subscores={},
        score=0.0,
    )
    subscores = subscores_of(measured)
    return replace(measured, subscores=subscores, score=combine(subscores))


def subscores_of(m: QualityMeasures) -> dict[str, float]:
    """Each measure as a 0–1 sub-score (duration only when the text is known)."""
    if not m.has_speech:
        return _empty(m.duration_s, m.expected_s, m.rms_dbfs).subscores
    quiet, loud = GOOD_LUFS
    end_drop = m.end_drop_db if m.end_judged and m.end_drop_db is not None else None
    scores = {
        "truncation": 1.0 if end_drop is None else _ramp(end_drop, 1.0, 5.0),
        "clipping": _ramp(m.clipping_ratio, 0.02, 0.001),
        "noise": _ramp(m.spectral_flatness, 0.3, 0.08),
        "loudness": min(_ramp(m.loudness_lufs, -40.0, quiet), _ramp(m.loudness_lufs, -8.0, loud)),
        "internal_silence": min(
            _ramp(m.longest_pause_s, 2.5, 1.0), _ramp(m.pause_share, 0.6, 0.35)
        ),
        "leading_silence": _ramp(m.leading_silence_s, 1.5, 0.4),
        "trailing_silence": _ramp(m.trailing_silence_s, 2.0, 0.8),
    }
    if m.expected_s is not None:
        # A word or two takes its time whatever its letters: the long side has some slack.
        short = _ramp(m.speech_s / m.expected_s, 0.2, 0.6)
        long = _ramp(m.speech_s, 3.0 * m.expected_s + 0.5, 1.6 * m.expected_s + 0.4)
        scores["duration"] = min(short, long)
    return scores


def combine(subscores: dict[str, float]) -> float:
    """The mean of the weighted average (over the sub-scores given) and the worst one."""
    if not subscores:
        return 0.0
    total = sum(WEIGHTS[name] for name in subscores)
    weighted = sum(WEIGHTS[name] * value for name, value in subscores.items()) / total
    return round((weighted + min(subscores.values())) / 2, 3)
