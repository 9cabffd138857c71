"""The provider chain: persona voice → persona fallback voice → offline engine, per segment."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field

from app.audio.formats import FormatSpec
from app.cache.keys import SegmentIdentity
from app.limits.upstream import Priority, SlotUnavailableError, UpstreamLimiter
from app.tts.errors import (
    ProviderError,
    SynthesisUnavailableError,
    UpstreamBusyError,
    UpstreamProtocolError,
    UpstreamRateLimitedError,
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

    @property
    def by_primary(self) -> bool:
        """Spoken by the chain's first choice: the only audio worth caching under its key."""
        return not self.failed_attempts


@dataclass(frozen=True, slots=True)
class _Attempt:
    provider: TTSProvider
    voice: Voice
    budgeted: bool


class ProviderChain:
    """Tries each provider in order until one speaks; the offline engine always can.

    Upstream attempts share one time budget per segment for their first byte, waiting for a
    limiter slot included; when it runs out the offline engine speaks instead, so a slow or
    saturated upstream costs latency, never silence.
    """

    def __init__(
        self,
        upstream: TTSProvider,
        offline: TTSProvider,
        budget_s: float,
        limiter: UpstreamLimiter | None = None,
    ) -> None:
        self._upstream = upstream
        self._offline = offline
        self._budget_s = budget_s
        self._limiter = limiter

    def _attempts(self, profile: VoiceProfile, language: Language) -> list[_Attempt]:
        attempts: list[_Attempt] = []
        if self._upstream.configured:
            primary = profile.voice_for(language)
            attempts.append(_Attempt(self._upstream, primary, budgeted=True))
            if profile.fallback_voice != primary:
                attempts.append(_Attempt(self._upstream, profile.fallback_voice, budgeted=True))
        attempts.append(_Attempt(self._offline, profile.voice_for(language), budgeted=False))
        return attempts

    def primary_identity(
        self, segment: Segment, profile: VoiceProfile, language: Language, wire: FormatSpec
    ) -> SegmentIdentity:
        """The identity (cache key material) of the audio the first choice would produce."""
        first = self._attempts(profile, language)[0]
        return first.provider.identity(_request(segment, profile, language, first.voice, wire))

    async def speak(
        self,
        segment: Segment,
        profile: VoiceProfile,
        language: Language,
        wire: FormatSpec,
        priority: Priority = Priority.LIVE,
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
            request = _request(segment, profile, language, attempt.voice, wire)
            try:
                async with self._slot(attempt, priority, deadline):
                    spoken = await self._collect(
                        attempt, request, segment, deadline if attempt.budgeted else None, failures
                    )
                if self._limiter is not None and attempt.budgeted:
                    self._limiter.observe_plan_limit(spoken.usage.max_concurrent_requests)
                return spoken
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
                if isinstance(exc, UpstreamRateLimitedError) and self._limiter is not None:
                    await self._limiter.cool_down(exc.retry_after_s or 0.0)
        raise SynthesisUnavailableError(
            "No provider could speak this text right now.",
            details={"failed_attempts": failures},
            headers={"Retry-After": "1"},
        )

    @asynccontextmanager
    async def _slot(
        self, attempt: _Attempt, priority: Priority, deadline: float
    ) -> AsyncIterator[None]:
        if self._limiter is None or not attempt.budgeted:
            yield
            return
        try:
            async with self._limiter.slot(priority, deadline):
                yield
        except SlotUnavailableError as exc:
            raise UpstreamBusyError(attempt.provider.name, str(exc)) from exc

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


def _request(
    segment: Segment, profile: VoiceProfile, language: Language, voice: Voice, wire: FormatSpec
) -> ProviderRequest:
    return ProviderRequest(
        text=segment.text,
        language=language,
        profile=profile,
        voice=voice,
        wire=wire,
        previous_text=segment.previous_text,
        next_text=segment.next_text,
    )


def _loop_time(deadline: float | None) -> float | None:
    """A time.monotonic() deadline on the running loop's clock (they may differ)."""
    if deadline is None:
        return None
    loop = asyncio.get_running_loop()
    return loop.time() + (deadline - time.monotonic())
