"""The provider chain: persona voice → persona fallback voice → offline engine, per segment."""

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field

from app.audio.formats import FormatSpec
from app.tts.errors import (
    ProviderError,
    SynthesisUnavailableError,
    UpstreamProtocolError,
    UpstreamTimeoutError,
)
from app.tts.models import Language, Provider
from app.tts.personas import Voice, VoiceProfile
from app.tts.providers.base import ProviderRequest, ProviderUsage, TTSProvider
from app.tts.segmenting import Segment

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpokenSegment:
    """One segment's audio in the wire format, and who produced it how fast."""

    index: int
    text: str
    audio: bytes
    provider: Provider
    voice_id: str | None
    ttfb_s: float
    elapsed_s: float
    usage: ProviderUsage
    failed_attempts: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class _Attempt:
    provider: TTSProvider
    voice: Voice
    budgeted: bool


class ProviderChain:
    """Tries each provider in order until one speaks; the offline engine always can.

    Upstream attempts share one time budget per segment for their first byte; when it runs out
    the offline engine speaks instead, so a slow upstream costs latency, never silence.
    """

    def __init__(self, upstream: TTSProvider, offline: TTSProvider, budget_s: float) -> None:
        self._upstream = upstream
        self._offline = offline
        self._budget_s = budget_s

    def _attempts(self, profile: VoiceProfile, language: Language) -> list[_Attempt]:
        attempts: list[_Attempt] = []
        if self._upstream.configured:
            primary = profile.voice_for(language)
            attempts.append(_Attempt(self._upstream, primary, budgeted=True))
            if profile.fallback_voice != primary:
                attempts.append(_Attempt(self._upstream, profile.fallback_voice, budgeted=True))
        attempts.append(_Attempt(self._offline, profile.voice_for(language), budgeted=False))
        return attempts

    async def speak(
        self, segment: Segment, profile: VoiceProfile, language: Language, wire: FormatSpec
    ) -> SpokenSegment:
        """The whole segment from the first provider that delivers all of it."""
        started = time.monotonic()
        deadline = started + self._budget_s
        failures: list[str] = []
        skip: set[Provider] = set()
        for attempt in self._attempts(profile, language):
            if attempt.provider.name in skip:
                continue
            if attempt.budgeted and time.monotonic() >= deadline:
                failures.append(UpstreamTimeoutError.code)
                continue
            request = ProviderRequest(
                text=segment.text,
                language=language,
                profile=profile,
                voice=attempt.voice,
                wire=wire,
                previous_text=segment.previous_text,
                next_text=segment.next_text,
            )
            try:
                return await self._collect(
                    attempt, request, segment, deadline if attempt.budgeted else None, failures
                )
            except ProviderError as exc:
                logger.warning(
                    "segment %d: %s voice %s failed: %s",
                    segment.index,
                    attempt.provider.name,
                    attempt.voice.voice_id,
                    exc.message,
                )
                failures.append(exc.code)
                if exc.account_wide:
                    skip.add(attempt.provider.name)
        raise SynthesisUnavailableError(
            "No provider could speak this text right now.",
            details={"failed_attempts": failures},
            headers={"Retry-After": "1"},
        )

    async def _collect(
        self,
        attempt: _Attempt,
        request: ProviderRequest,
        segment: Segment,
        deadline: float | None,
        failures: list[str],
    ) -> SpokenSegment:
        started = time.monotonic()
        usage = ProviderUsage()
        async with aclosing(attempt.provider.stream(request, usage)) as stream:
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    first = await anext(stream, b"")
            except TimeoutError as exc:
                raise UpstreamTimeoutError(
                    attempt.provider.name, "no audio within the response time budget"
                ) from exc
            if not first:
                raise UpstreamProtocolError(attempt.provider.name, "the stream held no audio")
            ttfb_s = time.monotonic() - started
            chunks = [first]
            async for chunk in stream:
                chunks.append(chunk)
        return SpokenSegment(
            index=segment.index,
            text=segment.text,
            audio=b"".join(chunks),
            provider=attempt.provider.name,
            voice_id=attempt.voice.voice_id if attempt.budgeted else None,
            ttfb_s=ttfb_s,
            elapsed_s=time.monotonic() - started,
            usage=usage,
            failed_attempts=tuple(failures),
        )


def _loop_time(deadline: float | None) -> float | None:
    """A time.monotonic() deadline on the running loop's clock (they may differ)."""
    if deadline is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())
