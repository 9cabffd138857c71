"""The provider chain: persona voice → persona fallback voice → offline engine, per segment."""

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass, field

from app.audio.formats import FormatSpec, OutputFormat, spec_of
from app.audio.sound_gate import SoundGate
from app.cache.keys import SegmentIdentity
from app.limits.upstream import Priority, SlotUnavailableError, UpstreamLimiter
from app.observability import metrics
from app.tts.circuit import ACCOUNT, Circuits
from app.tts.errors import (
    ProviderError,
    SynthesisUnavailableError,
    UpstreamAuthError,
    UpstreamBusyError,
    UpstreamProtocolError,
    UpstreamQuotaExceededError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamServerError,
    UpstreamTimeoutError,
    UpstreamUnreachableError,
)
from app.tts.models import Language, Provider
from app.tts.personas import PROFILES, Voice, VoiceProfile
from app.tts.providers.base import ProviderRequest, ProviderUsage, TTSProvider
from app.tts.segmenting import Segment

logger = logging.getLogger(__name__)

CIRCUIT_OPEN = "circuit_open"  # an attempt skipped: its voice's circuit is open
_PROBE_BUDGET_S = 10.0

# How an upstream call ended, by the error that ended it (anything else: not usable audio).
_CALL_STATUS: dict[str, metrics.UpstreamStatus] = {
    UpstreamAuthError.code: metrics.UpstreamStatus.AUTH,
    UpstreamQuotaExceededError.code: metrics.UpstreamStatus.AUTH,
    UpstreamRejectedError.code: metrics.UpstreamStatus.REJECTED,
    UpstreamRateLimitedError.code: metrics.UpstreamStatus.RATE_LIMITED,
    UpstreamServerError.code: metrics.UpstreamStatus.SERVER,
    UpstreamTimeoutError.code: metrics.UpstreamStatus.TIMEOUT,
    UpstreamUnreachableError.code: metrics.UpstreamStatus.UNREACHABLE,
    UpstreamProtocolError.code: metrics.UpstreamStatus.PROTOCOL,
}


@dataclass(frozen=True, slots=True)
class SpokenSegment:
    """One segment's audio in the wire format, and who produced it how fast."""

    index: int
    text: str
    audio: bytes
    provider: Provider
    voice_id: str | None
    usage: ProviderUsage
    failed_attempts: tuple[str, ...] = field(default=())

    @property
    def by_primary(self) -> bool:
        """Spoken by the chain's first choice: the only audio worth caching under its key."""
        return not self.failed_attempts


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of one voice inside the segment's time budget (DESIGN §4.5).

    Server errors, rate limiting, stalls and bad bodies are retried after a full-jitter
    backoff (uniform in 0..base·2^n; Retry-After when upstream gives one) as long as the wait
    and `min_try_s` of a try still fit before the deadline. A bad key, no quota, a refused
    request or an unreachable host are not: they will not change within a second.
    """

    retries: int = 2
    base_s: float = 0.1
    min_try_s: float = 0.3
    # No audio for this long once a stream has started: it stalled.
    stall_s: float = 2.0

    def delay(self, exc: ProviderError, tries: int, deadline: float) -> float | None:
        if tries > self.retries or not isinstance(exc, _RETRYABLE):
            return None
        if isinstance(exc, UpstreamRateLimitedError) and exc.retry_after_s:
            wait = exc.retry_after_s
        else:
            wait = random.uniform(0, self.base_s * 2 ** (tries - 1))
        if time.monotonic() + wait + self.min_try_s > deadline:
            return None
        return wait


_RETRYABLE = (
    UpstreamServerError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamProtocolError,
)


@dataclass(frozen=True, slots=True)
class _Attempt:
    provider: TTSProvider
    voice: Voice
    budgeted: bool


@dataclass(slots=True)
class OpenedSegment:
    """A segment's stream under way: its provider is settled, its first chunk is in."""

    attempt: _Attempt
    first: bytes
    rest: AsyncGenerator[bytes, None]
    usage: ProviderUsage
    failed_attempts: tuple[str, ...] = ()

    @property
    def provider(self) -> Provider:
        return self.attempt.provider.name

    @property
    def voice_id(self) -> str | None:
        return self.attempt.voice.voice_id if self.attempt.budgeted else None

    @property
    def by_primary(self) -> bool:
        return not self.failed_attempts

    def spoken(self, segment: Segment, audio: bytes) -> SpokenSegment:
        return SpokenSegment(
            index=segment.index,
            text=segment.text,
            audio=audio,
            provider=self.provider,
            voice_id=self.voice_id,
            usage=self.usage,
            failed_attempts=self.failed_attempts,
        )


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
        circuits: Circuits | None = None,
        retry: RetryPolicy | None = None,
        sound_gate_s: float = 0.5,
    ) -> None:
        self._sound_gate_s = sound_gate_s
        self._upstream = upstream
        self._offline = offline
        self._budget_s = budget_s
        self._limiter = limiter
        self._circuits = circuits
        self._retry = retry or RetryPolicy()

    @property
    def budget_s(self) -> float:
        """Seconds a segment may wait for upstream's first byte before the offline engine."""
        return self._budget_s

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
        budget_s: float | None = None,
    ) -> SpokenSegment:
        """The whole segment from the first provider that delivers all of it.

        Nothing has reached the caller yet, so a stream that breaks after its first bytes is
        replaced whole by the next provider. `budget_s` replaces the chain's time budget (bulk
        work may wait longer than a caller).
        """
        deadline = time.monotonic() + (budget_s or self._budget_s)
        failures: list[str] = []
        skip: set[Provider] = set()
        for attempt in self._attempts(profile, language):
            tries = 0
            while self._still_worth_trying(attempt, skip, deadline, failures):
                request = _request(segment, profile, language, attempt.voice, wire)
                try:
                    async with self._open_attempt(attempt, request, priority, deadline) as opened:
                        chunks = [opened.first] + [chunk async for chunk in opened.rest]
                    opened.failed_attempts = tuple(failures)
                    _count_fallback(failures)
                    return opened.spoken(segment, b"".join(chunks))
                except ProviderError as exc:
                    tries += 1
                    if not await self._failed(
                        segment, attempt, exc, tries, deadline, failures, skip
                    ):
                        break
        raise _unavailable(failures)

    @asynccontextmanager
    async def open(
        self,
        segment: Segment,
        profile: VoiceProfile,
        language: Language,
        wire: FormatSpec,
        priority: Priority = Priority.LIVE,
        budget_s: float | None = None,
    ) -> AsyncIterator[OpenedSegment]:
        """The first provider that starts speaking, with its first chunk, for streaming.

        Once the first chunk is out the segment stays with that provider: a failure later in
        the stream surfaces from `rest` as a ProviderError and the segment is cut there.
        """
        deadline = time.monotonic() + (budget_s or self._budget_s)
        failures: list[str] = []
        skip: set[Provider] = set()
        async with AsyncExitStack() as stack:
            for attempt in self._attempts(profile, language):
                tries = 0
                while self._still_worth_trying(attempt, skip, deadline, failures):
                    request = _request(segment, profile, language, attempt.voice, wire)
                    try:
                        opened = await stack.enter_async_context(
                            self._open_attempt(attempt, request, priority, deadline)
                        )
                    except ProviderError as exc:
                        tries += 1
                        if await self._failed(
                            segment, attempt, exc, tries, deadline, failures, skip
                        ):
                            continue
                        break
                    opened.failed_attempts = tuple(failures)
                    _count_fallback(failures)
                    yield opened
                    return
        raise _unavailable(failures)

    async def speak_offline(
        self, segment: Segment, profile: VoiceProfile, language: Language, wire: FormatSpec
    ) -> SpokenSegment:
        """The segment from the offline engine alone (upstream broke off in the middle)."""
        attempt = _Attempt(self._offline, profile.voice_for(language), budgeted=False)
        request = _request(segment, profile, language, attempt.voice, wire)
        async with self._open_attempt(attempt, request, Priority.LIVE, time.monotonic()) as opened:
            chunks = [opened.first] + [chunk async for chunk in opened.rest]
        return opened.spoken(segment, b"".join(chunks))

    async def probe(self, provider: str, voice_id: str) -> None:
        """A circuit's half-open probe: three characters in `voice_id`, on a bulk slot.

        Raises the ProviderError that keeps the circuit open (UpstreamBusyError: no slot,
        so no verdict). The account circuit is probed with the first persona's voice.
        """
        profile = PROFILES[next(iter(PROFILES))]
        if voice_id == ACCOUNT:
            voice = profile.voice_for(Language.EN)
        else:
            voice = Voice(voice_id=voice_id, name="probe")
        attempt = _Attempt(self._upstream, voice, budgeted=True)
        segment = Segment(index=0, text="OK.", previous_text=None, next_text=None)
        request = _request(segment, profile, Language.EN, voice, spec_of(OutputFormat.PCM_16000))
        deadline = time.monotonic() + _PROBE_BUDGET_S
        async with self._open_attempt(attempt, request, Priority.BULK, deadline) as opened:
            async for _ in opened.rest:
                pass

    def _still_worth_trying(
        self, attempt: _Attempt, skip: set[Provider], deadline: float, failures: list[str]
    ) -> bool:
        if attempt.provider.name in skip:
            return False
        circuits = self._circuits
        if (
            attempt.budgeted
            and circuits is not None
            and not circuits.allows(attempt.provider.name, attempt.voice.voice_id)
        ):
            failures.append(CIRCUIT_OPEN)
            return False
        if attempt.budgeted and time.monotonic() >= deadline:
            failures.append(UpstreamTimeoutError.code)
            return False
        return True

    async def _failed(
        self,
        segment: Segment,
        attempt: _Attempt,
        exc: ProviderError,
        tries: int,
        deadline: float,
        failures: list[str],
        skip: set[Provider],
    ) -> bool:
        """Notes a failed try; True after waiting out the backoff when it is worth retrying."""
        delay = self._retry.delay(exc, tries, deadline) if attempt.budgeted else None
        if isinstance(exc, UpstreamRejectedError):
            # Upstream refused a request we built: a bug (or a bad voice id) to report.
            logger.error(
                "segment %d: %s refused our request for voice %s (status %s): %s",
                segment.index,
                attempt.provider.name,
                attempt.voice.voice_id,
                exc.upstream_status,
                exc.message,
            )
        else:
            logger.warning(
                "segment %d: %s voice %s failed (try %d%s): %s",
                segment.index,
                attempt.provider.name,
                attempt.voice.voice_id,
                tries,
                f", again in {delay:.2f} s" if delay is not None else "",
                exc.message,
            )
        failures.append(exc.code)
        if exc.account_wide and delay is None:
            skip.add(attempt.provider.name)
        if attempt.budgeted and self._circuits is not None:
            await self._circuits.failed(attempt.provider.name, attempt.voice.voice_id, exc)
        if isinstance(exc, UpstreamRateLimitedError) and self._limiter is not None:
            await self._limiter.cool_down(exc.retry_after_s or 0.0)
        if delay is None:
            return False
        await asyncio.sleep(delay)
        return True

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

    @asynccontextmanager
    async def _open_attempt(
        self, attempt: _Attempt, request: ProviderRequest, priority: Priority, deadline: float
    ) -> AsyncIterator[OpenedSegment]:
        """One provider's stream, opened until its first chunk (within the budget)."""
        async with self._slot(attempt, priority, deadline):
            usage = ProviderUsage()
            # A gap longer than the time budget is as bad as a first byte that late.
            stall_s = min(self._retry.stall_s, self._budget_s)
            call = _UpstreamCall(attempt, self._circuits, stall_s)
            async with aclosing(attempt.provider.stream(request, usage)) as stream:
                try:
                    first = await _first_chunk(
                        attempt, stream, deadline, request.wire, self._sound_gate_s
                    )
                    call.status = metrics.UpstreamStatus.OK
                    if attempt.budgeted and self._circuits is not None:
                        await self._circuits.succeeded(
                            attempt.provider.name, attempt.voice.voice_id
                        )
                    async with aclosing(call.watch(stream)) as rest:
                        yield OpenedSegment(attempt, first, rest, usage)
                except ProviderError as exc:
                    call.ended_by(exc)
                    raise
                finally:
                    call.count()
            if self._limiter is not None and attempt.budgeted:
                self._limiter.observe_plan_limit(usage.max_concurrent_requests)


async def _first_chunk(
    attempt: _Attempt,
    stream: AsyncGenerator[bytes, None],
    deadline: float,
    wire: FormatSpec,
    sound_gate_s: float,
) -> bytes:
    """The stream's first audio, within the budget; upstream's held until it holds sound."""
    name = attempt.provider.name
    try:
        budget = _loop_time(deadline) if attempt.budgeted else None
        async with asyncio.timeout_at(budget):
            first = await anext(stream, b"")
            if not first:
                raise UpstreamProtocolError(name, "the stream held no audio")
            if not attempt.budgeted or sound_gate_s <= 0:
                return first
            gate = SoundGate(wire, sound_gate_s)
            held = [first]
            while not gate.sound_in(held[-1]):
                more = b"" if gate.exhausted else await anext(stream, b"")
                if not more:
                    raise UpstreamProtocolError(
                        name, f"no sound in the first {gate.heard_s:.2f} s of audio"
                    )
                held.append(more)
            return b"".join(held)
    except TimeoutError as exc:
        raise UpstreamTimeoutError(name, "no audio within the response time budget") from exc


class _UpstreamCall:
    """One attempt's outcome for the upstream calls metric, counted once when it ends.

    A stream that breaks after its first audio counts by its error even when the caller
    keeps what it got (a streamed segment is cut, not replaced). A call cancelled before any
    answer is not counted.
    """

    def __init__(self, attempt: _Attempt, circuits: Circuits | None, stall_s: float) -> None:
        self._attempt = attempt
        self._circuits = circuits
        # The offline engine renders in one piece: no stall to watch for.
        self._stall_s = stall_s if attempt.budgeted else None
        self.status: metrics.UpstreamStatus | None = None

    async def watch(self, stream: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                try:
                    async with asyncio.timeout(self._stall_s):
                        chunk = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    raise UpstreamTimeoutError(
                        self._attempt.provider.name,
                        f"the stream stalled: no audio for {self._stall_s:g} s",
                    ) from exc
                yield chunk
        except ProviderError as exc:
            self.ended_by(exc)
            if self._attempt.budgeted and self._circuits is not None:
                attempt = self._attempt
                await self._circuits.failed(attempt.provider.name, attempt.voice.voice_id, exc)
            raise

    def ended_by(self, exc: ProviderError) -> None:
        self.status = _CALL_STATUS.get(exc.code, metrics.UpstreamStatus.PROTOCOL)

    def count(self) -> None:
        if self._attempt.budgeted and self.status is not None:
            metrics.UPSTREAM_CALLS.labels(self._attempt.provider.name, self.status).inc()


def _count_fallback(failures: list[str]) -> None:
    """A segment spoken by another attempt than the first: why the first one failed."""
    if failures:
        metrics.FALLBACK_ACTIVATIONS.labels(failures[0]).inc()


def _unavailable(failures: list[str]) -> SynthesisUnavailableError:
    return SynthesisUnavailableError(
        "No provider could speak this text right now.",
        details={"failed_attempts": failures},
        headers={"Retry-After": "1"},
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
