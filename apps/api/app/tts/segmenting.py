"""Splitting text into sentence segments: the unit of caching and of synthesis."""

import re
from dataclasses import dataclass

# Latin terminators end a sentence only before whitespace or the end ("3.5" and "e.g.," stay);
# CJK terminators need no space after them.
_BOUNDARY = re.compile(
    r"""(?:[.!?…]+[\"'”’)\]]*(?=\s|$))|(?:[。！？；]+[”’」』）]*)""",
    re.VERBOSE,
)
# The word before a dot, dotted abbreviations whole ("p.m", "e.g").
_WORD_BEFORE_DOT = re.compile(r"((?:\w+\.)*\w+)\.$")
# Abbreviations a real-estate agent says all the time; a dot after them is not a full stop.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "st", "ave", "blvd", "rd", "ln", "ct", "apt", "ste", "no",
        "sq", "ft", "approx", "est", "jr", "sr", "sra", "srta", "dra", "av", "etc", "vs",
        "inc", "corp", "co", "ltd", "llc", "mt", "hwy", "p.m", "a.m", "e.g", "i.e",
    }
)  # fmt: skip
_SOFT_BREAK = re.compile(r"[,;:，、]\s*|\s+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Segment:
    index: int
    text: str
    previous_text: str | None
    next_text: str | None


def normalize_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def spoken_length(text: str) -> int:
    """Length in Latin-character equivalents: a CJK character is a syllable, about three."""
    return len(text) + 2 * len(_CJK.findall(text))


def unheard_rest(text: str, heard_s: float, chars_per_second: float) -> str:
    """The part of `text` not yet spoken after `heard_s` seconds of its speech.

    Speech runs at about `chars_per_second` Latin characters (a CJK character counts three).
    The word being spoken when the audio stopped is said again: a repeated word is better
    than a lost one.
    """
    budget = heard_s * chars_per_second
    said = 0
    index = 0
    while index < len(text):
        said += 3 if _CJK.match(text[index]) else 1
        if said > budget:
            break
        index += 1
    else:
        return ""
    if not _CJK.match(text[index]):
        start = text.rfind(" ", 0, index) + 1  # back to the start of the word
        index = start
    return text[index:].strip()


def _is_abbreviation(text: str, end: int) -> bool:
    if text[end - 1] != "." or text[end - 2 : end] == "..":
        return False
    match = _WORD_BEFORE_DOT.search(text[max(0, end - 12) : end])
    if match is None:
        return False
    word = match.group(1)
    # A single capital letter is an initial ("J. Smith"), not a sentence.
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def _sentences(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        if _is_abbreviation(text, end):
            continue
        piece = text[start:end].strip()
        if piece:
            pieces.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return pieces


def _fitting_prefix(text: str, max_chars: int) -> int:
    """How many characters of `text` fit in `max_chars` of spoken length."""
    total = 0
    for index, char in enumerate(text):
        total += 3 if _CJK.match(char) else 1
        if total > max_chars:
            return index
    return len(text)


def complete_end(text: str) -> int:
    """Where the last complete sentence of a growing text ends (0: none is complete yet).

    A Latin full stop counts only once something follows it ("3." may become "3.5"); CJK
    terminators count at once.
    """
    end = 0
    for match in _BOUNDARY.finditer(text):
        if _is_abbreviation(text, match.end()):
            continue
        if match.end() == len(text) and text[match.end() - 1] not in "。！？；”’」』）":
            continue
        end = match.end()
    return end


def _split_long(sentence: str, max_chars: int) -> list[str]:
    parts: list[str] = []
    rest = sentence
    while spoken_length(rest) > max_chars:
        limit = _fitting_prefix(rest, max_chars)
        cut = max(
            (m.end() for m in _SOFT_BREAK.finditer(rest, 0, limit) if m.end() > limit // 2),
            default=limit,
        )
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        parts.append(rest)
    return parts


def _join(left: str, right: str) -> str:
    # Chinese is written without spaces between sentences.
    separator = "" if _CJK.search(left[-1:]) or left[-1:] in "。！？；" else " "
    return left + separator + right


def _merge_short(sentences: list[str], min_chars: int) -> list[str]:
    merged: list[str] = []
    pending = ""
    for sentence in sentences:
        pending = _join(pending, sentence) if pending else sentence
        if spoken_length(pending) >= min_chars:
            merged.append(pending)
            pending = ""
    if pending:
        if merged:
            merged[-1] = _join(merged[-1], pending)
        else:
            merged.append(pending)
    return merged


def split_sentences(text: str, *, min_chars: int, max_chars: int) -> list[str]:
    """Sentences of `text`, short ones merged into the next, long ones split at soft breaks."""
    sentences = [part for sentence in _sentences(text) for part in _split_long(sentence, max_chars)]
    return _merge_short(sentences, min_chars)


def segment(text: str, *, min_chars: int, max_chars: int) -> list[Segment]:
    """The segments of `text`, each with its neighbours' text for prosody."""
    texts = split_sentences(text, min_chars=min_chars, max_chars=max_chars)
    return [
        Segment(
            index=i,
            text=t,
            previous_text=texts[i - 1] if i > 0 else None,
            next_text=texts[i + 1] if i + 1 < len(texts) else None,
        )
        for i, t in enumerate(texts)
    ]
