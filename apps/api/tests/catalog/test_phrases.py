"""The phrase catalog's data files: complete, well-formed, and in the language they claim."""

import itertools
import re

import pytest

from app.catalog.phrases import CATEGORIES, CatalogPhrase, catalog_phrases, parse_catalog
from app.tts.language import shared_detector
from app.tts.models import Language, Persona

MIN_PHRASES = 20
MIN_DETECTION_AGREEMENT = 0.95
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")

EVERY_FILE = pytest.mark.parametrize(
    ("persona", "language"), list(itertools.product(Persona, Language))
)


@EVERY_FILE
def test_every_file_loads_with_enough_phrases(persona: Persona, language: Language) -> None:
    phrases = catalog_phrases(persona, language)

    assert len(phrases) >= MIN_PHRASES
    assert all(isinstance(p, CatalogPhrase) and p.text.strip() == p.text for p in phrases)


@EVERY_FILE
def test_every_file_has_all_five_categories_in_order(persona: Persona, language: Language) -> None:
    phrases = catalog_phrases(persona, language)

    runs = [category for category, _ in itertools.groupby(p.category for p in phrases)]

    assert runs == list(CATEGORIES)


@EVERY_FILE
def test_no_phrase_repeats_within_a_file(persona: Persona, language: Language) -> None:
    texts = [p.text for p in catalog_phrases(persona, language)]

    repeated = sorted({text for text in texts if texts.count(text) > 1})

    assert not repeated, repeated


@pytest.mark.parametrize("persona", list(Persona))
def test_mandarin_phrases_are_written_in_chinese_characters(persona: Persona) -> None:
    phrases = catalog_phrases(persona, Language.ZH)

    without = [p.text for p in phrases if not _CJK.search(p.text)]

    assert not without, without


@pytest.mark.parametrize(
    ("persona", "language"), list(itertools.product(Persona, (Language.EN, Language.ES)))
)
def test_english_and_spanish_phrases_have_no_chinese_characters(
    persona: Persona, language: Language
) -> None:
    phrases = catalog_phrases(persona, language)

    with_cjk = [p.text for p in phrases if _CJK.search(p.text)]

    assert not with_cjk, with_cjk


@pytest.mark.parametrize("language", list(Language))
def test_the_services_detector_agrees_with_the_files_language(language: Language) -> None:
    detector = shared_detector()
    phrases = [(persona, p.text) for persona in Persona for p in catalog_phrases(persona, language)]

    misses = [
        f"{persona.value}.{language.value}: {text!r} -> {found.value}"
        for persona, text in phrases
        if (found := detector.detect(text)) != language
    ]

    agreement = 1 - len(misses) / len(phrases)
    assert agreement >= MIN_DETECTION_AGREEMENT, "\n".join(misses)


def test_a_catalog_is_parsed_into_categorised_phrases_skipping_blank_lines() -> None:
    text = "# greetings\nHello there.\n\n  Hi!  \n# follow-ups\nTalk soon.\n"

    phrases = parse_catalog(text, "sample.en.txt")

    assert phrases == (
        CatalogPhrase("greetings", "Hello there."),
        CatalogPhrase("greetings", "Hi!"),
        CatalogPhrase("follow-ups", "Talk soon."),
    )


def test_an_unknown_category_is_rejected_with_its_file_and_line() -> None:
    text = "# greetings\nHello there.\n# farewells\nGoodbye.\n"

    with pytest.raises(ValueError, match=r"sample\.en\.txt:3: unknown category 'farewells'"):
        parse_catalog(text, "sample.en.txt")


def test_a_phrase_before_any_category_is_rejected_with_its_file_and_line() -> None:
    text = "\nHello there.\n# greetings\nHi!\n"

    with pytest.raises(ValueError, match=r"sample\.en\.txt:2: a phrase before any '# category'"):
        parse_catalog(text, "sample.en.txt")
