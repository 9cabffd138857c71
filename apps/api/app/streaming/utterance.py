"""An utterance: text arriving in pieces, turned into sentences ready to speak as they complete."""

import asyncio
import time
from dataclasses import dataclass, field

from app.tts.segmenting import complete_end, split_sentences, spoken_length


@dataclass
class SpokenSentence:
    chars: int
    audio_s: float = 0.0


@dataclass
class Utterance:
    id: str
    min_chars: int
    max_chars: int
    sentences: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    buffer: str = ""
    flushed: bool = False
    first_ready_at: float | None = None
    spoken: list[SpokenSentence] = field(default_factory=list)
    # Where this utterance starts in the pacer's current run of audio (set at its first frame).
    playback_offset_s: float = 0.0

    def add(self, text: str, flush: bool) -> None:
        """Add a piece of text; queue every sentence it completes (all of it on flush)."""
        if self.flushed:
            return
        self.buffer += text
        if flush:
            for sentence in self._split(self.buffer):
                self._queue(sentence)
            self.buffer = ""
            self.flushed = True
            self.sentences.put_nowait(None)
            return
        end = complete_end(self.buffer)
        if end == 0:
            return
        pieces = self._split(self.buffer[:end])
        if pieces and spoken_length(pieces[-1]) < self.min_chars:
            # A short last sentence ("Sure.") waits to be spoken with what follows it.
            held_from = self.buffer.rfind(pieces[-1], 0, end)
            pieces.pop()
        else:
            held_from = end
        for sentence in pieces:
            self._queue(sentence)
        # The rest is kept as written, spaces included: the next piece may start a new word.
        self.buffer = self.buffer[held_from:]

    def _split(self, text: str) -> list[str]:
        return split_sentences(text, min_chars=self.min_chars, max_chars=self.max_chars)

    def _queue(self, sentence: str) -> None:
        if self.first_ready_at is None:
            self.first_ready_at = time.monotonic()
        self.sentences.put_nowait(sentence)

    def spoken_chars(self, heard_s: float) -> int:
        """How many characters the listener heard, from how much audio they heard."""
        total = 0
        elapsed = 0.0
        for sentence in self.spoken:
            if sentence.audio_s <= 0:
                break
            if heard_s >= elapsed + sentence.audio_s:
                total += sentence.chars
                elapsed += sentence.audio_s
                continue
            total += int(sentence.chars * max(0.0, heard_s - elapsed) / sentence.audio_s)
            break
        return total
