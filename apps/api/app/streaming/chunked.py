"""The body of a chunked HTTP response, built from the synthesis stream as it comes."""

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractContextManager, aclosing

from app.audio import container, mp3
from app.audio.formats import FormatSpec
from app.streaming.stalls import StreamProgress
from app.tts.service import AudioChunk, SegmentCut, SegmentStarted, StreamEvent

logger = logging.getLogger(__name__)


async def chunked_body(
    first: StreamEvent,
    events: AsyncGenerator[StreamEvent, None],
    spec: FormatSpec,
    tracked: AbstractContextManager[StreamProgress],
) -> AsyncIterator[bytes]:
    """Bytes to send: one WAV header (length unknown) up front, MP3 only in whole frames.

    Every chunk is passed on the moment it arrives. MP3 segments are cut into frames so that a
    frame split by the network, or cut off by a failing provider, never reaches the player half
    written, and each segment's own tags and info frame are dropped at the join.
    """
    async with aclosing(_frames(first, events, spec)) as frames:
        with tracked as progress:
            async for data in frames:
                yield data
                progress.moved(len(data))  # the caller took it: the send went through


async def _frames(
    first: StreamEvent, events: AsyncGenerator[StreamEvent, None], spec: FormatSpec
) -> AsyncGenerator[bytes, None]:
    async with aclosing(events):
        if spec.wav:
            yield container.wav_header(spec.sample_rate, None)
        frames: mp3.FrameCutter | None = None
        async for event in _with_first(first, events):
            if isinstance(event, SegmentStarted):
                frames = mp3.FrameCutter() if spec.encoding == "mp3" else None
            elif isinstance(event, AudioChunk):
                data = frames.feed(event.audio) if frames is not None else event.audio
                if data:
                    yield data
            elif isinstance(event, SegmentCut):
                logger.warning("segment %d was cut short: %s", event.index, event.error.message)


async def _with_first(
    first: StreamEvent, rest: AsyncGenerator[StreamEvent, None]
) -> AsyncIterator[StreamEvent]:
    yield first
    async for event in rest:
        yield event
