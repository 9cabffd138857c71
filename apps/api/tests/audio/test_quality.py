"""The no-reference quality score on real eSpeak NG speech and on defects made from it."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from app.audio import quality
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


def _white_noise(s: Speech) -> Int16Array:
    rms = float(np.sqrt(np.mean(s.pcm.astype(np.float64) ** 2)))
    noise = np.random.default_rng(20).standard_normal(s.pcm.size) * rms
    return noise.clip(-32768, 32767).astype(np.int16)


def _leading_silence(s: Speech) -> Int16Array:
    return np.concatenate([np.zeros(3 * s.rate, dtype=np.int16), s.pcm])


DEFECTS: dict[str, Callable[[Speech], Int16Array]] = {
    "all-silence": _silence,
    "clipped-x20": _clipped,
    "clipped-x4": _hot,
    "truncated-to-a-quarter": _truncated,
    "white-noise": _white_noise,
    "3s-leading-silence": _leading_silence,
}


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
