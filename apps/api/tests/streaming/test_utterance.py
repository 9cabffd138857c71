"""Utterances from text pieces: sentences are released as they complete, spaces kept."""

from app.streaming.utterance import SpokenSentence, Utterance


def _released(utterance: Utterance) -> list[str | None]:
    out: list[str | None] = []
    while not utterance.sentences.empty():
        out.append(utterance.sentences.get_nowait())
    return out


def test_a_sentence_is_released_as_soon_as_it_is_complete() -> None:
    utterance = Utterance("u", min_chars=20, max_chars=400)

    utterance.add("Unit 4 on Maple Street has three rooms.", flush=False)
    held = _released(utterance)  # "rooms." could still become "rooms.5"
    utterance.add(" It is open on Saturday morning. And", flush=False)
    released = _released(utterance)
    utterance.add(" then?", flush=True)

    assert held == []
    assert released == [
        "Unit 4 on Maple Street has three rooms.",
        "It is open on Saturday morning.",
    ]
    assert _released(utterance) == ["And then?", None]


def test_a_short_sentence_waits_for_the_next_one() -> None:
    utterance = Utterance("u", min_chars=20, max_chars=400)

    utterance.add("Sure. ", flush=False)
    held = _released(utterance)
    utterance.add("The open house starts at noon. ", flush=False)

    assert held == []
    assert _released(utterance) == ["Sure. The open house starts at noon."]


def test_chinese_sentences_are_complete_at_their_full_stop() -> None:
    utterance = Utterance("u", min_chars=20, max_chars=400)

    utterance.add("欢迎参观这套房子。", flush=False)

    assert _released(utterance) == ["欢迎参观这套房子。"]


def test_a_piece_ending_in_a_space_does_not_glue_sentences_together() -> None:
    utterance = Utterance("u", min_chars=20, max_chars=400)

    utterance.add("Unit 0 on Maple has three rooms. ", flush=False)
    utterance.add("It is open on Saturday.", flush=True)

    assert _released(utterance) == [
        "Unit 0 on Maple has three rooms.",
        "It is open on Saturday.",
        None,
    ]


def test_words_split_across_pieces_are_joined_whole() -> None:
    utterance = Utterance("u", min_chars=20, max_chars=400)

    for piece in ("The back", "yard faces so", "uth and gets sun all day.", " Want to see it?"):
        utterance.add(piece, flush=False)
    utterance.add("", flush=True)

    assert _released(utterance) == [
        "The backyard faces south and gets sun all day.",
        "Want to see it?",
        None,
    ]


def test_spoken_chars_follow_the_audio_heard() -> None:
    utterance = Utterance("u", min_chars=20, max_chars=400)
    utterance.spoken = [SpokenSentence(chars=40, audio_s=2.0), SpokenSentence(30, 1.5)]

    assert utterance.spoken_chars(0.0) == 0
    assert utterance.spoken_chars(1.0) == 20
    assert utterance.spoken_chars(2.75) == 40 + 15
    assert utterance.spoken_chars(10.0) == 70
