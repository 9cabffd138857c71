"""The quality measures as a report: each measure with its verdict, and what to do about it."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from app.audio.quality import GOOD_LUFS, NEAR_END_S, QualityMeasures

Verdict = Literal["good", "fair", "poor", "not_measured"]

GOOD = 0.8  # a sub-score or score at or above this needs nothing done
FAIR = 0.5
# AES TD1004.1.15-10 recommends -19 LUFS for mono speech streams (-16 LUFS for stereo).
TARGET_LUFS = -19.0


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    value: float | None
    unit: str
    score: float | None  # the 0–1 sub-score it feeds; None: not measured
    verdict: Verdict
    detail: str


@dataclass(frozen=True, slots=True)
class QualityReport:
    score: float
    verdict: Verdict
    duration_s: float
    expected_duration_s: float | None
    measures: tuple[Measure, ...]
    recommendations: tuple[str, ...]


def verdict_of(score: float | None) -> Verdict:
    if score is None:
        return "not_measured"
    if score >= GOOD:
        return "good"
    return "fair" if score >= FAIR else "poor"


def _duration(m: QualityMeasures) -> tuple[float | None, str]:
    if m.expected_s is None:
        return None, f"{m.speech_s:.2f} s of speech; no text given, so nothing to compare with"
    return m.speech_s, (
        f"{m.speech_s:.2f} s of speech; about {m.expected_s:.2f} s expected for the text "
        f"({m.speech_s / m.expected_s:.2f}×)"
    )


def _truncation(m: QualityMeasures) -> str:
    if not m.has_speech:
        return "no speech to judge"
    if m.end_judged:
        return f"the last 2 ms of sound are {m.end_drop_db:.1f} dB below the speech level"
    if m.ends_early_s > NEAR_END_S:
        return f"sound stops {m.ends_early_s:.2f} s before the end of the audio: not cut off"
    return "the noise floor is too close to the speech to tell a cut from an ending"


def _measures(m: QualityMeasures) -> tuple[Measure, ...]:
    scores = m.subscores
    duration_value, duration_detail = _duration(m)
    rows: list[tuple[str, float | None, str, str, str]] = [
        ("duration", duration_value, "s", "duration", duration_detail),
        (
            "leading_silence",
            m.leading_silence_s,
            "s",
            "leading_silence",
            f"{m.leading_silence_s:.2f} s before the first speech",
        ),
        (
            "trailing_silence",
            m.trailing_silence_s,
            "s",
            "trailing_silence",
            f"{m.trailing_silence_s:.2f} s after the last speech",
        ),
        (
            "longest_pause",
            m.longest_pause_s,
            "s",
            "internal_silence",
            f"the longest pause inside speech lasts {m.longest_pause_s:.2f} s",
        ),
        (
            "pause_share",
            m.pause_share,
            "ratio",
            "internal_silence",
            f"{m.pause_share:.0%} of the time from first to last speech is silent",
        ),
        (
            "clipping",
            m.clipping_ratio,
            "ratio",
            "clipping",
            f"{m.clipping_ratio:.2%} of samples at full scale",
        ),
        (
            "loudness",
            m.loudness_lufs,
            "LUFS",
            "loudness",
            f"integrated loudness (ITU-R BS.1770-4) {m.loudness_lufs:.1f} LUFS; speech is best "
            f"between {GOOD_LUFS[0]:.0f} and {GOOD_LUFS[1]:.0f}",
        ),
        (
            "spectral_flatness",
            m.spectral_flatness,
            "ratio",
            "noise",
            f"{m.spectral_flatness:.3f} (speech stays below 0.08; white noise is about 0.56)",
        ),
        ("truncation", m.end_drop_db, "dB", "truncation", _truncation(m)),
    ]
    return tuple(
        Measure(
            name=name,
            value=None if value is None else round(value, 4),
            unit=unit,
            score=None if key not in scores else round(scores[key], 3),
            verdict=verdict_of(scores.get(key)),
            detail=detail,
        )
        for name, value, unit, key, detail in rows
    )


def _duration_advice(m: QualityMeasures) -> str:
    assert m.expected_s is not None
    if m.speech_s < m.expected_s:
        return (
            f"Much shorter than expected for the text ({m.speech_s:.1f} s of speech for about "
            f"{m.expected_s:.1f} s): words may be missing; retry, and check that the whole "
            "text was sent."
        )
    return (
        f"Much longer than expected for the text ({m.speech_s:.1f} s of speech for about "
        f"{m.expected_s:.1f} s): the audio may belong to another text, or the voice stalls "
        "or repeats; check the text and the voice's speed."
    )


def _loudness_advice(m: QualityMeasures) -> str:
    if m.loudness_lufs < GOOD_LUFS[0]:
        return (
            f"Too quiet ({m.loudness_lufs:.1f} LUFS): raise the gain by about "
            f"{TARGET_LUFS - m.loudness_lufs:.0f} dB, or normalize to {TARGET_LUFS:.0f} LUFS."
        )
    return (
        f"Too loud ({m.loudness_lufs:.1f} LUFS): lower the gain by about "
        f"{m.loudness_lufs - TARGET_LUFS:.0f} dB, or normalize to {TARGET_LUFS:.0f} LUFS."
    )


_ADVICE: dict[str, Callable[[QualityMeasures], str]] = {
    "truncation": lambda m: (
        "Audio is cut off at the end (it stops at full speech level, with no fade): the "
        "upstream stream was probably truncated; retry, or use the fallback voice."
    ),
    "duration": _duration_advice,
    "clipping": lambda m: (
        f"Clipping on {m.clipping_ratio:.1%} of samples: the audio was made too hot; lower "
        "the gain before encoding and re-synthesize."
    ),
    "noise": lambda m: (
        f"Noisy: spectral flatness {m.spectral_flatness:.2f} (clean speech stays below "
        "0.08): the audio is largely noise or hiss; re-synthesize, or use the fallback voice."
    ),
    "loudness": _loudness_advice,
    "internal_silence": lambda m: (
        f"Long pause inside speech ({m.longest_pause_s:.1f} s; {m.pause_share:.0%} of the "
        "speech is silent): check the text for stray punctuation, ellipses or line breaks, "
        "or re-synthesize."
    ),
    "leading_silence": lambda m: (
        f"Long silence before speech ({m.leading_silence_s:.1f} s): trim leading silence; "
        "the caller hears nothing meanwhile."
    ),
    "trailing_silence": lambda m: (
        f"Long silence after speech ({m.trailing_silence_s:.1f} s): trim trailing silence."
    ),
}
NO_SPEECH = (
    "No speech found: the audio is silent or below -70 dBFS throughout. Re-synthesize; if it "
    "happens again, use the fallback voice."
)


def recommendations(m: QualityMeasures) -> tuple[str, ...]:
    """Plain-language advice for every measure short of good, worst first."""
    if not m.has_speech:
        return (NO_SPEECH,)
    below = sorted(
        (score, name) for name, score in m.subscores.items() if score < GOOD and name in _ADVICE
    )
    return tuple(_ADVICE[name](m) for _, name in below)


def report(m: QualityMeasures) -> QualityReport:
    """Each measure with its value, unit, sub-score and verdict; the score; recommendations."""
    return QualityReport(
        score=m.score,
        verdict=verdict_of(m.score),
        duration_s=round(m.duration_s, 4),
        expected_duration_s=None if m.expected_s is None else round(m.expected_s, 4),
        measures=_measures(m),
        recommendations=recommendations(m),
    )
