"""One telephony/browser WebSocket session: utterances in, paced audio frames out, barge-in.

The receive loop handles messages; one speaker task speaks the queued utterances in order.
Each sentence of an utterance starts synthesizing as soon as it is complete, so the next
sentence is ready while the current one plays. Barge-in cancels the speaker: cancelling it
closes the synthesis streams, which closes the upstream requests and frees their limiter
slots. Every recoverable problem is an `error` message; the session goes on.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.audio.formats import spec_of
from app.audio.framing import Frame, Framer
from app.config import StreamingSettings
from app.errors import AppError
from app.limits.json_body import DEFAULT_MAX_DEPTH, deeper_than
from app.observability import metrics
from app.streaming import protocol
from app.streaming.pacing import Pacer
from app.streaming.stalls import StreamProgress, StreamWatch
from app.streaming.utterance import SpokenSentence, Utterance
from app.tts.models import SynthesizeRequest
from app.tts.service import (
    AudioChunk,
    SegmentCut,
    SegmentStarted,
    StreamEvent,
    SynthesisService,
)

logger = logging.getLogger(__name__)

SendText = Callable[[str], Awaitable[None]]
# Charges a text message's characters to the caller's budget: None, or seconds to wait first.
Throttle = Callable[[int], Awaitable[float | None]]
_MESSAGES: TypeAdapter[protocol.ClientMessage] = TypeAdapter(protocol.ClientMessage)
_DONE = object()


@dataclass
class _FirstAudio:
    at: float
    cache: str
    provider: str


class Session:
    def __init__(
        self,
        session_id: str,
        synthesizer: SynthesisService,
        send_text: SendText,
        settings: StreamingSettings,
        min_segment_chars: int,
        max_segment_chars: int,
        streams: StreamWatch,
        throttle: Throttle | None = None,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self._max_json_depth = max_json_depth
        self.session_id = session_id
        self._streams = streams
        self._throttle = throttle
        self._synthesizer = synthesizer
        self._send_text = send_text
        self._settings = settings
        self._segment_bounds = (min_segment_chars, max_segment_chars)
        self._send_lock = asyncio.Lock()
        self._start: protocol.Start | None = None
        self._out: protocol.Outbound | None = None
        self._utterances: asyncio.Queue[Utterance | object] = asyncio.Queue()
        self._open: dict[str, Utterance] = {}
        self._speaking: Utterance | None = None
        self._speaker: asyncio.Task[None] | None = None
        self._pacer = Pacer(settings.max_lead_ms / 1000, settings.send_quantum_ms / 1000)
        self._ending = False
        self.finished = asyncio.Event()

    @property
    def busy(self) -> bool:
        return self._speaking is not None or not self._utterances.empty()

    async def send(self, message: dict[str, Any] | str) -> None:
        """Send a message (a dict, or JSON text already built), one at a time."""
        text = message if isinstance(message, str) else protocol.to_text(message)
        async with self._send_lock:
            await self._send_text(text)

    # Messages in.

    async def handle_text(self, raw: str) -> None:
        encoded = raw.encode()
        if len(encoded) > self._settings.max_message_bytes:
            await self.send(
                protocol.error(
                    "message_too_large",
                    f"Messages are limited to {self._settings.max_message_bytes} bytes.",
                )
            )
            return
        if deeper_than(encoded, self._max_json_depth):
            await self.send(
                protocol.error(
                    "invalid_message", f"JSON nested deeper than {self._max_json_depth} levels."
                )
            )
            return
        try:
            message = _MESSAGES.validate_json(raw)
        except ValidationError as exc:
            await self.send(protocol.error("invalid_message", _first_error(exc)))
            return
        await self._dispatch(message)

    async def handle_binary(self) -> None:
        await self.send(
            protocol.error("binary_not_supported", "Send JSON text frames, not binary frames.")
        )

    async def _dispatch(self, message: protocol.ClientMessage) -> None:
        if isinstance(message, protocol.Ping):
            await self.send(protocol.PONG)
        elif isinstance(message, protocol.Start):
            await self._on_start(message)
        elif self._start is None:
            await self.send(protocol.error("not_started", "Send a start message first."))
        elif isinstance(message, protocol.Text):
            await self._on_text(message)
        elif isinstance(message, protocol.BargeIn):
            await self._on_barge_in()
        elif isinstance(message, protocol.MarkPlayed):
            logger.debug("session %s: %s played", self.session_id, message.name)
        elif isinstance(message, protocol.End):
            self._ending = True
            self._utterances.put_nowait(_DONE)

    async def _on_start(self, start: protocol.Start) -> None:
        if self._start is not None:
            await self.send(protocol.error("already_started", "This session has started."))
            return
        if start.frames == protocol.FrameStyle.TWILIO and not start.stream_sid:
            await self.send(
                protocol.error("stream_sid_required", "Twilio frames need the call's stream_sid.")
            )
            return
        self._start = start
        self._out = protocol.Outbound(self.session_id, start)
        self._speaker = asyncio.create_task(self._speak_all(), name=f"speaker-{self.session_id}")
        await self.send(self._out.ready())

    async def _on_text(self, message: protocol.Text) -> None:
        if self._ending:
            await self.send(protocol.error("session_ending", "The session is ending."))
            return
        # Over budget, the session slows down rather than ends: the text is kept and taken
        # once the budget allows it (the receive loop waits here, so the client is throttled).
        while self._throttle is not None and (wait := await self._throttle(len(message.text))):
            await self.send(
                protocol.error(
                    "rate_limited",
                    f"Characters per minute exceeded: this text is taken in {wait:g} s.",
                )
            )
            await asyncio.sleep(wait)
        utterance = self._open.get(message.utterance_id)
        if utterance is None:
            utterance = Utterance(message.utterance_id, *self._segment_bounds)
            self._open[message.utterance_id] = utterance
            self._utterances.put_nowait(utterance)
        utterance.add(message.text, message.flush)
        if message.flush:
            del self._open[message.utterance_id]

    async def _on_barge_in(self) -> None:
        """Stop speaking now: drop everything queued, tell the listener how much it heard."""
        speaking = self._speaking
        heard_s = self._pacer.played_s() - (speaking.playback_offset_s if speaking else 0.0)
        if self._speaker is not None:
            self._speaker.cancel()
            await asyncio.gather(self._speaker, return_exceptions=True)
        while not self._utterances.empty():
            self._utterances.get_nowait()
        self._open.clear()
        self._speaking = None
        self._pacer.reset()
        assert self._out is not None
        if (clear := self._out.clear()) is not None:
            await self.send(clear)
        if speaking is not None:
            await self.send(protocol.cleared(speaking.id, speaking.spoken_chars(heard_s)))
        self._speaker = asyncio.create_task(self._speak_all(), name=f"speaker-{self.session_id}")

    async def close(self) -> None:
        """The client went away: cancel everything under way."""
        if self._speaker is not None:
            self._speaker.cancel()
            await asyncio.gather(self._speaker, return_exceptions=True)

    # Audio out.

    async def _speak_all(self) -> None:
        while True:
            item = await self._utterances.get()
            if item is _DONE:
                self.finished.set()
                return
            assert isinstance(item, Utterance)
            self._speaking = item
            try:
                await self._speak(item)
            finally:
                self._speaking = None

    async def _speak(self, utterance: Utterance) -> None:
        assert self._start is not None
        pipeline = _Pipeline(utterance, self._pump)
        try:
            with self._streams.track("websocket", f"{self.session_id}/{utterance.id}") as progress:
                await self._speak_sentences(utterance, pipeline, progress)
        finally:
            await pipeline.stop()

    async def _speak_sentences(
        self, utterance: Utterance, pipeline: "_Pipeline", progress: StreamProgress
    ) -> None:
        assert self._start is not None
        assert self._out is not None
        out = self._out
        framer = Framer(spec_of(self._start.output_format), self._start.frame_ms)
        first: _FirstAudio | None = None
        seq = 0

        async def deliver(frame: Frame) -> None:
            nonlocal seq
            await self._pacer.wait_to_send(frame.duration_s)
            if seq == 0:
                utterance.playback_offset_s = self._pacer.sent_s - frame.duration_s
            await self.send(out.audio(utterance.id, seq, frame.audio))
            progress.moved(len(frame.audio))
            seq += 1

        index = 0
        while True:
            with progress.waiting_for_caller():
                queue = await pipeline.sentence(index)
            if queue is None:
                break
            sentence = SpokenSentence(chars=0)
            utterance.spoken.append(sentence)
            while (event := await queue.get()) is not None:
                if isinstance(event, Exception):
                    await self._report(event)
                    break
                if isinstance(event, SegmentStarted):
                    # A second start is the offline engine taking over the rest of the sentence
                    # after a cut: the sentence's length stays the whole sentence's.
                    sentence.chars = sentence.chars or len(event.text)
                    if first is None:
                        first = _FirstAudio(time.monotonic(), event.cache, event.provider)
                elif isinstance(event, AudioChunk):
                    for frame in framer.feed(event.audio):
                        await deliver(frame)
                        sentence.audio_s += frame.duration_s
                elif isinstance(event, SegmentCut):
                    await self.send(protocol.error("upstream_interrupted", event.error.message))
            index += 1
        for frame in framer.finish():
            await deliver(frame)
        await self.send(out.mark(utterance.id))
        if first is not None and utterance.first_ready_at is not None:
            ttfa_ms = (first.at - utterance.first_ready_at) * 1000
            metrics.WEBSOCKET_FIRST_AUDIO.labels(first.cache, first.provider).observe(
                ttfa_ms / 1000
            )
            await self.send(protocol.metrics(utterance.id, ttfa_ms, first.cache, first.provider))

    async def _pump(self, text: str, queue: "EventQueue") -> None:
        assert self._start is not None
        try:
            request = SynthesizeRequest(
                text=text,
                voice_agent_id=self._start.voice_agent_id,
                language=self._start.language,
                output_format=self._start.output_format,
            )
            if "persona" in self._start.model_fields_set:
                # Only a persona the start message names wins over the voice agent's.
                request = request.model_copy(update={"persona": self._start.persona})
            plan = await self._synthesizer.prepare(request)
            stream = self._synthesizer.stream(plan, metrics.Surface.WS)
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    queue.put_nowait(event)
        except (AppError, ValidationError) as exc:
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(None)

    async def _report(self, exc: Exception) -> None:
        if isinstance(exc, AppError):
            await self.send(protocol.error(exc.code, exc.message))
        else:
            await self.send(protocol.error("invalid_text", _first_error(exc)))


EventQueue = asyncio.Queue[StreamEvent | Exception | None]


class _Pipeline:
    """Starts synthesizing each sentence of an utterance the moment it is complete."""

    def __init__(
        self,
        utterance: Utterance,
        pump: Callable[[str, EventQueue], Coroutine[Any, Any, None]],
    ) -> None:
        self._utterance = utterance
        self._pump = pump
        self._queues: list[EventQueue] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._feeder = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        try:
            while (text := await self._utterance.sentences.get()) is not None:
                queue: EventQueue = asyncio.Queue()
                self._queues.append(queue)
                self._pumps.append(asyncio.create_task(self._pump(text, queue)))
                self._changed.set()
        finally:
            self._changed.set()

    async def sentence(self, index: int) -> EventQueue | None:
        """The events of sentence `index` once it exists; None when the utterance has ended."""
        while len(self._queues) <= index:
            if self._feeder.done():
                return None
            self._changed.clear()
            await self._changed.wait()
        return self._queues[index]

    async def stop(self) -> None:
        self._feeder.cancel()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(self._feeder, *self._pumps, return_exceptions=True)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        if errors:
            where = ".".join(str(part) for part in errors[0].get("loc", ()))
            return f"{where}: {errors[0].get('msg', 'invalid')}" if where else errors[0]["msg"]
    return str(exc) or type(exc).__name__
