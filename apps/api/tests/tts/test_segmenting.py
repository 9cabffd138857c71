"""Sentence segmentation: boundaries, things that are not boundaries, merging, splitting, order."""

import random
import re

import pytest

from app.tts.segmenting import (
    normalize_whitespace,
    segment,
    split_sentences,
    spoken_length,
    unheard_rest,
)

NO_LIMITS = {"min_chars": 0, "max_chars": 5000}
_WHITESPACE = re.compile(r"\s+")


def _squeezed(text: str) -> str:
    return _WHITESPACE.sub("", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hello there. How are you? Great!",
            ["Hello there.", "How are you?", "Great!"],
        ),
        (
            "Is it sold?! Not yet... Maybe soon.",
            ["Is it sold?!", "Not yet...", "Maybe soon."],
        ),
        (
            'She said "it is lovely." Then she left.\nThe end.',
            ['She said "it is lovely."', "Then she left.", "The end."],
        ),
        (
            "¿Le gustaría agendar una visita? ¡Claro que sí! Perfecto.",
            ["¿Le gustaría agendar una visita?", "¡Claro que sí!", "Perfecto."],
        ),
    ],
)
def test_latin_sentences_end_at_full_stops_and_question_and_exclamation_marks(
    text: str, expected: list[str]
) -> None:
    assert split_sentences(text, **NO_LIMITS) == expected


def test_chinese_sentences_end_at_full_width_marks_without_spaces() -> None:
    text = "欢迎参观这套房子。厨房是新的！您想看看吗？可以；明天见。"

    assert split_sentences(text, **NO_LIMITS) == [
        "欢迎参观这套房子。",
        "厨房是新的！",
        "您想看看吗？",
        "可以；",
        "明天见。",
    ]


def test_a_chinese_closing_quote_stays_with_its_sentence() -> None:
    text = "他说：“房子很好。”我们明天去看。"

    assert split_sentences(text, **NO_LIMITS) == ["他说：“房子很好。”", "我们明天去看。"]


@pytest.mark.parametrize(
    "sentence",
    [
        "The price is $1.5 million for the whole lot.",
        "It has 4 beds and 3.5 baths on two floors.",
        "Dr. Lee will meet you at the door.",
        "The house is on Maple St. near the park.",
        "The showing starts at 5 p.m. on Friday.",
        "Bring documents, e.g. a pay stub, to the office.",
        "Ask J. Smith for the keys at the front desk.",
        "Mrs. Garcia lives at 12 Oak Ave. in apartment 4.",
        "That is, i.e. the one with the pool, our best listing.",
    ],
)
def test_decimals_abbreviations_and_initials_do_not_end_a_sentence(sentence: str) -> None:
    text = f"{sentence} Call us today."

    assert split_sentences(text, **NO_LIMITS) == [sentence, "Call us today."]


def test_fragments_under_min_chars_merge_into_the_next_sentence() -> None:
    text = "Hi. Yes. This sentence is certainly long enough."

    assert split_sentences(text, min_chars=20, max_chars=400) == [
        "Hi. Yes. This sentence is certainly long enough."
    ]


def test_a_short_last_fragment_merges_into_the_previous_sentence() -> None:
    text = "This first sentence is long enough. And so is the second one. Thanks!"

    assert split_sentences(text, min_chars=20, max_chars=400) == [
        "This first sentence is long enough.",
        "And so is the second one. Thanks!",
    ]


def test_short_chinese_fragments_merge_without_a_space() -> None:
    text = "好。这套房子有三个卧室和两个浴室。"

    assert split_sentences(text, min_chars=20, max_chars=400) == [text]


def test_a_text_shorter_than_min_chars_is_one_segment() -> None:
    assert split_sentences("Hi.", min_chars=20, max_chars=400) == ["Hi."]


def test_a_long_sentence_splits_at_a_comma_or_space_under_max_chars() -> None:
    text = (
        "The house has four bedrooms, three bathrooms, a large kitchen with granite counters, "
        "a two car garage, and a beautiful backyard with a pool and a garden."
    )

    parts = split_sentences(text, min_chars=0, max_chars=60)

    assert len(parts) >= 3
    assert all(len(part) <= 60 for part in parts)
    assert " ".join(parts) == text  # cut between words, never inside one


def test_a_comma_without_a_space_after_it_is_still_a_place_to_split() -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta,iota kappa lambda mu nu xi omicron."

    parts = split_sentences(text, min_chars=0, max_chars=50)

    assert parts[0] == "Alpha beta gamma delta epsilon zeta eta theta,"


def test_chinese_characters_count_as_three_against_max_chars() -> None:
    text = "我们的房子有四个卧室，三个浴室，一个很大的厨房，一个车库，还有一个美丽的后院和游泳池。"
    assert len(text) < 60 < spoken_length(text)

    parts = split_sentences(text, min_chars=0, max_chars=60)

    assert len(parts) > 1
    assert all(spoken_length(part) <= 60 for part in parts)
    assert "".join(parts) == text
    assert all(part.endswith(("，", "。")) for part in parts)


def test_spoken_length_counts_cjk_as_three_and_everything_else_as_one() -> None:
    assert spoken_length("") == 0
    assert spoken_length("Casa, sí.") == 9
    assert spoken_length("房子") == 6
    assert spoken_length("a房。") == 1 + 3 + 1


def test_segments_know_their_neighbours() -> None:
    text = "One sentence here. Two sentence here. Three sentence here."

    segments = segment(text, min_chars=0, max_chars=400)

    assert [s.index for s in segments] == [0, 1, 2]
    assert [s.text for s in segments] == [
        "One sentence here.",
        "Two sentence here.",
        "Three sentence here.",
    ]
    assert [s.previous_text for s in segments] == [None, segments[0].text, segments[1].text]
    assert [s.next_text for s in segments] == [segments[1].text, segments[2].text, None]


def test_a_single_segment_has_no_neighbours() -> None:
    (only,) = segment("Just one.", min_chars=0, max_chars=400)

    assert only.previous_text is None
    assert only.next_text is None


def test_empty_or_blank_text_has_no_segments() -> None:
    assert split_sentences("", min_chars=20, max_chars=400) == []
    assert segment(" \n\t ", min_chars=20, max_chars=400) == []


def test_normalize_whitespace_collapses_runs_and_keeps_case() -> None:
    assert normalize_whitespace("  Open\tHOUSE \n\n at  42 Maple\u3000St.  ") == (
        "Open HOUSE at 42 Maple St."
    )


_WORDS = [
    "house", "Kitchen", "MAPLE", "open", "the", "a", "price", "garden", "offer", "St.", "Dr.",
    "p.m.", "e.g.", "i.e.", "J.", "Mrs.", "$1.5", "3.5", "42", "No.", "etc.", "U.S.", "...",
    "casa", "señora", "¿Qué", "años", "欢迎参观", "这套房子", "厨房", "非常", "漂亮", "“好”",
    "(see)", "'quoted'", "supercalifragilistic",
]  # fmt: skip
_ENDINGS = [".", "!", "?", "?!", "…", '."', "!)", "。", "！", "？", "；", "。」", ",", "，", "、"]
_SPACES = [" ", " ", " ", "  ", "\n", "\n\n", "\t", ""]


def _random_text(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randint(0, 150)):
        ending = rng.choice(_ENDINGS) if rng.random() < 0.3 else ""
        pieces.append(rng.choice(_WORDS) + ending + rng.choice(_SPACES))
    return "".join(pieces)


@pytest.mark.parametrize(("min_chars", "max_chars"), [(0, 50), (20, 50), (20, 400), (49, 50)])
def test_no_character_is_lost_or_reordered_on_generated_texts(
    min_chars: int, max_chars: int
) -> None:
    rng = random.Random(f"segmenting-{min_chars}-{max_chars}")
    for _ in range(300):
        text = _random_text(rng)

        parts = split_sentences(text, min_chars=min_chars, max_chars=max_chars)

        assert _squeezed("".join(parts)) == _squeezed(text), text
        assert all(part and part == part.strip() for part in parts), text
        if len(parts) > 1:
            assert all(spoken_length(part) >= min_chars for part in parts), text
        if min_chars == 0:
            assert all(spoken_length(part) <= max_chars for part in parts), text


def test_latin_text_joined_back_is_the_text_modulo_whitespace() -> None:
    rng = random.Random("latin")
    latin = [w for w in _WORDS if w.isascii()]
    for _ in range(300):
        text = " ".join(
            rng.choice(latin) + (rng.choice(".!?,") if rng.random() < 0.25 else "")
            for _ in range(rng.randint(1, 120))
        )

        parts = split_sentences(text, min_chars=20, max_chars=80)

        assert normalize_whitespace(" ".join(parts)) == normalize_whitespace(text), text


def test_the_unheard_rest_starts_again_at_the_word_that_was_cut() -> None:
    text = "The kitchen was remodeled last spring."
    # 14 characters a second: 1 s heard is "The kitchen wa", cut inside "was".
    assert unheard_rest(text, 1.0, 14.0) == "was remodeled last spring."
    assert unheard_rest(text, 0.0, 14.0) == text
    assert unheard_rest(text, 10.0, 14.0) == ""


def test_the_unheard_rest_of_mandarin_counts_three_per_character() -> None:
    text = "欢迎来到枫树街。"
    assert unheard_rest(text, 0.5, 14.0) == "来到枫树街。"  # 7 units heard: two characters
