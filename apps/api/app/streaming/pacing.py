"""Real-time pacing with a bounded lead: the listener's buffer never holds more than the lead.

A telephony bridge (and Twilio behind it) plays whatever it is sent; sending faster than real
time only fills its buffer, and everything in that buffer is heard after a barge-in unless it
is cleared. Keeping the lead small keeps "stop talking" quick and `spoken_chars` accurate.
"""

import asyncio
import time


class Pacer:
    def __init__(self, max_lead_s: float, quantum_s: float) -> None:
        self._max_lead_s = max_lead_s
        # Frames go in bursts: when the lead is full, wait until it is down to this.
        self._resume_at_lead_s = max_lead_s - min(quantum_s, max_lead_s / 2)
        self._clock_start: float | None = None
        self._sent_s = 0.0

    async def wait_to_send(self, duration_s: float) -> None:
        """Sleep, if need be, so that a frame of `duration_s` can go within the lead."""
        now = time.monotonic()
        if self._clock_start is None or now - self._clock_start >= self._sent_s:
            # Nothing left to play: playback (re)starts with this frame.
            self._clock_start, self._sent_s = now, 0.0
        lead = self._sent_s - (now - self._clock_start)
        if lead + duration_s > self._max_lead_s:
            target = max(0.0, min(self._resume_at_lead_s, self._max_lead_s - duration_s))
            await asyncio.sleep(lead - target)
        self._sent_s += duration_s

    def played_s(self) -> float:
        """Seconds of the current run of audio the listener has heard by now."""
        if self._clock_start is None:
            return 0.0
        return min(time.monotonic() - self._clock_start, self._sent_s)

    @property
    def sent_s(self) -> float:
        return self._sent_s

    def reset(self) -> None:
        """The listener's buffer was cleared: nothing is playing any more."""
        self._clock_start, self._sent_s = None, 0.0
