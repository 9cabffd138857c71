"""Language detection on the labelled real-estate phrases (tests/data/language_phrases.tsv)."""

import csv
from pathlib import Path

import pytest

from app.tts.language import shared_detector
from app.tts.models import Language


def _phrases(data_dir: Path) -> list[tuple[Language, str]]:
    with (data_dir / "language_phrases.tsv").open(encoding="utf-8") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(Language(row["language"]), row["text"]) for row in rows]


def test_the_data_set_is_large_and_balanced(data_dir: Path) -> None:
    phrases = _phrases(data_dir)

    assert len(phrases) >= 300
    assert len({text for _, text in phrases}) == len(phrases)
    for language in Language:
        assert sum(1 for lang, _ in phrases if lang == language) >= 100


def test_detection_is_at_least_98_percent_accurate(data_dir: Path) -> None:
    detector = shared_detector()
    phrases = _phrases(data_dir)

    wrong = [(lang, text) for lang, text in phrases if detector.detect(text) != lang]

    assert 1 - len(wrong) / len(phrases) >= 0.98, wrong


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Welcome to the open house at 42 Maple Street.", Language.EN),
        ("¿Le gustaría agendar una visita?", Language.ES),
        ("欢迎参观这套房子。", Language.ZH),
        ("Hola, le habla Sarah de Maple Realty.", Language.ES),
        ("le gustaria agendar una visita el sabado", Language.ES),
        ("我是Maple Realty的Sarah，房子在1234 Oak Ave。", Language.ZH),
        ("The house on Calle Ocho has three bedrooms.", Language.EN),
        ("Vale.", Language.ES),
        ("$450,000", Language.EN),
    ],
)
def test_phrases_from_the_contract_are_detected(text: str, language: Language) -> None:
    assert shared_detector().detect(text) == language
