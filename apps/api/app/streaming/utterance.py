"""An utterance: text arriving in pieces, turned into sentences ready to speak as they complete."""

import asyncio
import time
from dataclasses import dataclass, field

from app.tts.segmenting import split_sentences


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
        pieces = split_sentences(self.buffer, min_chars=self.min_chars, max_chars=self.max_chars)
        # The last piece may still be growing, unless the client said the utterance is done.
        ready = pieces if flush else pieces[:-1]
        for sentence in ready:
            self._queue(sentence)
        self.buffer = "" if flush else (pieces[-1] if pieces else self.buffer)
        if flush:
            self.flushed = True
            self.sentences.put_nowait(None)

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
