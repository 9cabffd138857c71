"""Holds a stream's first audio until it holds sound: silence from upstream is a fault.

Streams pass audio on as it arrives, so a provider that answers with silence would be heard
as silence before any score could catch it. The gate looks at what arrives first (PCM and
μ/A-law samples directly, MP3 once whole frames decode) and lets the stream start at its
first sound. ElevenLabs speech starts within a few hundred milliseconds, so the gate costs
next to nothing; `limit_s` of audio without sound and the stream is taken for silent.
"""

import numpy as np

from app.audio import codecs, mp3
from app.audio.formats import FormatSpec

# Peak sample (int16) that counts as sound: about -36 dBFS, above any dither or hiss floor.
SOUND_PEAK = 500


class SoundGate:
    def __init__(self, wire: FormatSpec, limit_s: float) -> None:
        self._wire = wire
        self._limit_s = limit_s
        self._frames = mp3.FrameCutter() if wire.encoding == "mp3" else None
        self._mp3 = bytearray()
        self.heard_s = 0.0

    @property
    def exhausted(self) -> bool:
        """`limit_s` of audio went by without sound."""
        return self.heard_s >= self._limit_s

    def sound_in(self, chunk: bytes) -> bool:
        """Whether `chunk`, after what came before it, holds sound."""
        if self._frames is None:
            pcm = codecs.decode(chunk, self._wire)
        else:
            # MP3 decodes in whole frames, and only from the start of the stream.
            self._mp3 += self._frames.feed(chunk)
            if not self._mp3:
                return False
            pcm = codecs.decode(bytes(self._mp3), self._wire)
            self.heard_s = 0.0  # all of it decoded again
        self.heard_s += pcm.size / self._wire.sample_rate
        return bool(pcm.size) and int(np.abs(pcm.astype(np.int32)).max()) > SOUND_PEAK
