"""The no-reference quality score on real eSpeak NG speech and on defects made from it."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from app.audio import codecs, quality, quality_report
from app.audio.formats import OutputFormat, spec_of
from app.tts.models import Language, Persona
from app.tts.personas import PROFILES
from app.tts.providers.espeak import shared_engine
from app.tts.segmenting import spoken_length

Int16Array = npt.NDArray[np.int16]

# What the service calls a good segment; clean speech must clear it and no defect may.
GOOD = 0.8
TEXTS = {
    Language.EN: "Welcome to the open house at 42 Maple Street. The kitchen is new this spring.",
    Language.ES: "Bienvenidos a la casa abierta. La cocina se renovó la primavera pasada.",
    Language.ZH: "欢迎来到枫树街四十二号的开放日。厨房去年春天刚刚翻新。",
}


@dataclass(frozen=True, slots=True)
class Speech:
    pcm: Int16Array
    rate: int
    text: str

    def measure(self, pcm: Int16Array | None = None, text: str | None = None) -> float:
        return self.measures(pcm, text).score

    def measures(
        self, pcm: Int16Array | None = None, text: str | None = None
    ) -> quality.QualityMeasures:
        audio = self.pcm if pcm is None else pcm
        return quality.measure(audio, self.rate, spoken_length(self.text if text is None else text))


async def _speak(text: str, language: Language, persona: Persona) -> Speech:
    engine = shared_engine()
    await engine.start()
    pcm = await engine.synthesize(text, language, PROFILES[persona].offline)
    return Speech(pcm=pcm, rate=engine.sample_rate, text=text)


@pytest.fixture
async def speech() -> Speech:
    return await _speak(TEXTS[Language.EN], Language.EN, Persona.PROFESSIONAL)


def _silence(s: Speech) -> Int16Array:
    return np.zeros_like(s.pcm)


def _amplified(s: Speech, gain: int) -> Int16Array:
    return np.clip(s.pcm.astype(np.int32) * gain, -32768, 32767).astype(np.int16)


def _clipped(s: Speech) -> Int16Array:
    return _amplified(s, 20)


def _hot(s: Speech) -> Int16Array:
    # Peaks clipped at a level that is otherwise still acceptable: only clipping gives it away.
    return _amplified(s, 4)


def _truncated(s: Speech) -> Int16Array:
    return s.pcm[: s.pcm.size // 4]


def _frame_levels(s: Speech) -> npt.NDArray[np.float64]:
    frame = s.rate // 50
    whole = s.pcm[: s.pcm.size - s.pcm.size % frame].astype(np.float64)
    levels: npt.NDArray[np.float64] = np.mean(whole.reshape(-1, frame) ** 2, axis=1)
    return levels


def _cut_mid_word(s: Speech) -> Int16Array:
    # Stopped inside the loudest 20 ms between 70 % and 90 % of the way: mid-vowel, no fade,
    # as a stream the upstream dropped would end.
    levels = _frame_levels(s)
    start, stop = int(levels.size * 0.7), int(levels.size * 0.9)
    loudest = start + int(np.argmax(levels[start:stop]))
    return s.pcm[: (loudest + 1) * (s.rate // 50) - s.rate // 200]


def _white_noise(s: Speech) -> Int16Array:
    rms = float(np.sqrt(np.mean(s.pcm.astype(np.float64) ** 2)))
    noise = np.random.default_rng(20).standard_normal(s.pcm.size) * rms
    return noise.clip(-32768, 32767).astype(np.int16)


def _hiss_over_speech(s: Speech) -> Int16Array:
    # Noise at half the speech's RMS (6 dB SNR): the words are there, buried in hiss.
    return (s.pcm.astype(np.int32) + _white_noise(s) // 2).clip(-32768, 32767).astype(np.int16)


def _leading_silence(s: Speech) -> Int16Array:
    return np.concatenate([np.zeros(3 * s.rate, dtype=np.int16), s.pcm])


def _trailing_silence(s: Speech) -> Int16Array:
    return np.concatenate([s.pcm, np.zeros(3 * s.rate, dtype=np.int16)])


def _long_pause_inside(s: Speech) -> Int16Array:
    middle = s.pcm.size // 2
    pause = np.zeros(int(2.5 * s.rate), dtype=np.int16)
    return np.concatenate([s.pcm[:middle], pause, s.pcm[middle:]])


def _too_quiet(s: Speech) -> Int16Array:
    return np.round(s.pcm * 0.02).astype(np.int16)  # -34 dB


def _too_loud(s: Speech) -> Int16Array:
    # Driven into a soft limiter below full scale: very loud, yet no sample clips.
    limited = np.tanh(s.pcm / 32768 * 12) * 0.97 * 32767
    return np.round(limited).astype(np.int16)


DEFECTS: dict[str, Callable[[Speech], Int16Array]] = {
    "all-silence": _silence,
    "clipped-x20": _clipped,
    "clipped-x4": _hot,
    "truncated-to-a-quarter": _truncated,
    "cut-mid-word": _cut_mid_word,
    "white-noise": _white_noise,
    "hiss-over-speech": _hiss_over_speech,
    "3s-leading-silence": _leading_silence,
    "3s-trailing-silence": _trailing_silence,
    "2.5s-pause-inside": _long_pause_inside,
    "too-quiet": _too_quiet,
    "too-loud": _too_loud,
}
# How the recommendation each defect must trigger begins.
ADVICE = {
    "all-silence": "No speech found",
    "clipped-x20": "Clipping on",
    "clipped-x4": "Clipping on",
    "truncated-to-a-quarter": "Much shorter than expected",
    "cut-mid-word": "Audio is cut off at the end",
    "white-noise": "Noisy",
    "hiss-over-speech": "Noisy",
    "3s-leading-silence": "Long silence before speech (3.",
    "3s-trailing-silence": "Long silence after speech (3.",
    "2.5s-pause-inside": "Long pause inside speech (2.5 s",
    "too-quiet": "Too quiet",
    "too-loud": "Too loud",
}
# Speech that does not fit its text: what the text is, and how the advice begins.
WRONG_LENGTH = {
    "much-too-long-for-the-text": ("Hello", "Much longer than expected"),
    "much-too-short-for-the-text": (" ".join(3 * [TEXTS[Language.EN]]), "Much shorter"),
}
# Formats the service delivers, as a listener decodes them.
DELIVERED = [
    OutputFormat.MP3_44100_128,
    OutputFormat.MP3_22050_32,
    OutputFormat.PCM_16000,
    OutputFormat.ULAW_8000,
]


def _through(s: Speech, pcm: Int16Array, fmt: OutputFormat) -> tuple[Int16Array, int]:
    spec = spec_of(fmt)
    return codecs.decode(codecs.encode(pcm, s.rate, spec), spec), spec.sample_rate


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("persona", list(Persona))
async def test_clean_espeak_speech_scores_as_good(language: Language, persona: Persona) -> None:
    s = await _speak(TEXTS[language], language, persona)

    measures = s.measures()

    assert s.pcm.size > s.rate  # more than a second of speech
    assert measures.score >= GOOD, measures


@pytest.mark.parametrize("defect", list(DEFECTS))
async def test_each_defect_scores_below_the_same_clean_speech(speech: Speech, defect: str) -> None:
    clean = speech.measure()

    damaged = speech.measure(DEFECTS[defect](speech))

    assert damaged < clean
    assert damaged < GOOD


async def test_speech_far_too_long_for_its_text_scores_below_the_same_speech_for_its_text(
    speech: Speech,
) -> None:
    clean = speech.measure()

    mismatched = speech.measures(text="Hello")

    assert mismatched.duration_s == pytest.approx(speech.pcm.size / speech.rate)
    assert mismatched.expected_s is not None
    assert mismatched.duration_s > 10 * mismatched.expected_s
    assert mismatched.score < clean
    assert mismatched.score < GOOD


async def test_the_measures_name_what_is_wrong(speech: Speech) -> None:
    clean = speech.measures()

    clipped = speech.measures(_clipped(speech))
    noisy = speech.measures(_white_noise(speech))
    late = speech.measures(_leading_silence(speech))
    short = speech.measures(_truncated(speech))

    assert clipped.clipping_ratio > 20 * max(clean.clipping_ratio, 0.001)
    assert noisy.spectral_flatness > 5 * clean.spectral_flatness
    assert late.leading_silence_s == pytest.approx(clean.leading_silence_s + 3.0, abs=0.05)
    assert short.duration_s == pytest.approx(clean.duration_s / 4, abs=0.001)
    assert clipped.rms_dbfs > clean.rms_dbfs + 15


def test_empty_audio_scores_zero() -> None:
    measures = quality.measure(np.zeros(0, dtype=np.int16), 22050, 40)

    assert measures.score == 0.0
    assert measures.duration_s == 0.0


def test_a_score_is_always_between_zero_and_one() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        pcm = (rng.standard_normal(rng.integers(1, 40000)) * rng.uniform(0, 40000)).clip(
            -32768, 32767
        )
        score = quality.measure(pcm.astype(np.int16), 16000, int(rng.integers(0, 300))).score
        assert 0.0 <= score <= 1.0


@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("persona", list(Persona))
async def test_clean_espeak_speech_gets_no_recommendation(
    language: Language, persona: Persona
) -> None:
    s = await _speak(TEXTS[language], language, persona)

    report = quality_report.report(s.measures())

    assert report.verdict == "good"
    assert report.recommendations == ()
    assert all(m.verdict == "good" for m in report.measures), report.measures


@pytest.mark.parametrize("fmt", DELIVERED)
@pytest.mark.parametrize("language", list(Language))
async def test_clean_speech_stays_good_through_every_delivered_format(
    language: Language, fmt: OutputFormat
) -> None:
    s = await _speak(TEXTS[language], language, Persona.FRIENDLY)
    pcm, rate = _through(s, s.pcm, fmt)

    measures = quality.measure(pcm, rate, spoken_length(s.text))

    assert measures.score >= GOOD, measures
    assert quality_report.recommendations(measures) == ()


@pytest.mark.parametrize("defect", list(DEFECTS))
async def test_each_defect_triggers_its_own_recommendation(speech: Speech, defect: str) -> None:
    report = quality_report.report(speech.measures(DEFECTS[defect](speech)))

    assert report.verdict != "good"
    assert any(r.startswith(ADVICE[defect]) for r in report.recommendations), report.recommendations


@pytest.mark.parametrize("case", list(WRONG_LENGTH))
async def test_speech_of_the_wrong_length_for_its_text_scores_below_clean_and_says_so(
    speech: Speech, case: str
) -> None:
    text, advice = WRONG_LENGTH[case]

    measures = speech.measures(text=text)
    report = quality_report.report(measures)

    assert measures.score < min(GOOD, speech.measure())
    assert measures.subscores["duration"] < 0.5
    assert report.recommendations[0].startswith(advice)


@pytest.mark.parametrize("fmt", [OutputFormat.PCM_16000, OutputFormat.ULAW_8000])
async def test_a_cut_is_still_told_from_an_ending_after_a_raw_format(
    speech: Speech, fmt: OutputFormat
) -> None:
    clean = quality.measure(*_through(speech, speech.pcm, fmt), None)

    cut = quality.measure(*_through(speech, _cut_mid_word(speech), fmt), None)

    assert clean.subscores["truncation"] == 1.0
    assert cut.subscores["truncation"] == 0.0
    assert cut.score < GOOD


async def test_noise_alone_is_not_called_a_cut(speech: Speech) -> None:
    measures = speech.measures(_white_noise(speech))

    assert measures.subscores["noise"] == 0.0
    assert measures.subscores["truncation"] == 1.0  # nothing stands out of the noise to end


async def test_without_the_text_duration_is_not_measured_and_the_rest_still_scores(
    speech: Speech,
) -> None:
    measures = quality.measure(speech.pcm, speech.rate, None)
    report = quality_report.report(measures)

    duration = next(m for m in report.measures if m.name == "duration")
    assert "duration" not in measures.subscores
    assert duration.verdict == "not_measured"
    assert duration.value is None
    assert report.expected_duration_s is None
    assert measures.score >= GOOD


async def test_the_report_gives_every_measure_a_value_unit_subscore_and_verdict(
    speech: Speech,
) -> None:
    measures = speech.measures()

    report = quality_report.report(measures)

    units = {m.name: m.unit for m in report.measures}
    assert units == {
        "duration": "s",
        "leading_silence": "s",
        "trailing_silence": "s",
        "longest_pause": "s",
        "pause_share": "ratio",
        "clipping": "ratio",
        "loudness": "LUFS",
        "spectral_flatness": "ratio",
        "truncation": "dB",
    }
    for m in report.measures:
        assert m.value is not None
        assert m.score is not None
        assert 0.0 <= m.score <= 1.0
        assert m.verdict == quality_report.verdict_of(m.score)
        assert m.detail
    assert report.score == measures.score
    assert report.duration_s == pytest.approx(speech.pcm.size / speech.rate, abs=1e-3)
    loudness = next(m for m in report.measures if m.name == "loudness")
    assert -26.0 <= (loudness.value or 0.0) <= -14.0


async def test_the_weights_cover_every_subscore_and_add_up_to_one(speech: Speech) -> None:
    measures = speech.measures()

    assert set(measures.subscores) == set(quality.WEIGHTS)
    assert sum(quality.WEIGHTS.values()) == pytest.approx(1.0)


async def test_recommendations_come_worst_first(speech: Speech) -> None:
    # Far too quiet, and starting a second late: the loudness is the worse of the two.
    late_and_quiet = np.concatenate([np.zeros(speech.rate, dtype=np.int16), _too_quiet(speech)])

    advice = quality_report.report(speech.measures(late_and_quiet)).recommendations

    assert [a.split(" (")[0] for a in advice] == ["Too quiet", "Long silence before speech"]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100])
async def test_scoring_a_second_of_speech_takes_a_few_milliseconds(
    speech: Speech, rate: int
) -> None:
    pcm = codecs.resample(speech.pcm, speech.rate, rate)
    seconds = pcm.size / rate
    quality.measure(pcm, rate, spoken_length(speech.text))

    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        quality.measure(pcm, rate, spoken_length(speech.text))
        best = min(best, time.perf_counter() - started)

    # The aim is 5 ms per second of audio (bench/quality.py); this catches a regression by
    # a large factor without failing on a busy test machine.
    assert best / seconds < 0.015
