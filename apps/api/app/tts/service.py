"""SynthesisService: the one synthesis path every surface uses (DESIGN §4).

resolve → segment → cache (one lookup for all segments) → single-flight on misses → limiter →
provider chain → quality → deliver in order.
"""

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from enum import StrEnum

from redis.exceptions import RedisError

from app.agents import Agent, AgentStore
from app.analytics.events import AnalyticsEvent, EventLog
from app.analytics.rollups import Rollups, Sample, Scope
from app.audio import codecs, container, quality
from app.audio.formats import FormatSpec, spec_of
from app.cache.audio_cache import AudioCache, Lookup
from app.cache.entry import CacheEntry, new_entry
from app.cache.keys import cache_key
from app.cache.single_flight import Computed, SingleFlight
from app.config import SynthesisSettings
from app.limits.upstream import Priority
from app.observability import metrics
from app.ordered import in_order
from app.tts.errors import ProviderError, SynthesisUnavailableError
from app.tts.fallback import ProviderChain, SpokenSegment
from app.tts.finishing import SegmentFinisher
from app.tts.language import LanguageDetector
from app.tts.models import Language, LanguageChoice, Provider, SynthesizeRequest
from app.tts.personas import VoiceProfile, profile_for
from app.tts.segmenting import Segment, segment, unheard_rest

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SegmentStarted:
    """A segment's first audio is ready: who speaks it and how it was found."""

    index: int
    text: str
    provider: Provider
    cache: "CacheOutcome"
    first_audio_s: float


@dataclass(frozen=True, slots=True)
class AudioChunk:
    index: int
    audio: bytes


@dataclass(frozen=True, slots=True)
class SegmentEnded:
    result: "SegmentResult"


@dataclass(frozen=True, slots=True)
class SegmentCut:
    """The provider failed after the segment's first audio.

    `resumed`: the offline engine speaks the rest of the segment's text; a SegmentStarted
    for that rest follows, with its audio and the segment's end. Otherwise the rest is lost
    and the segment ends here.
    """

    index: int
    error: ProviderError
    resumed: bool = False


StreamEvent = SegmentStarted | AudioChunk | SegmentEnded | SegmentCut


# Recorded among a segment's failed attempts when its first take scored too low.
LOW_QUALITY = "low_quality"
# ...and when upstream's best take held no speech, so the offline engine spoke instead.
UNUSABLE_AUDIO = "unusable_audio"

# request JSON, persona named explicitly, agent JSON, catalog, priority, budget
_MemoKey = tuple[str, bool, str | None, bool, Priority, float | None]

# A plan is a few hundred bytes; this many cover a busy agent fleet's repeated phrases.
_REMEMBERED_PLANS = 4096


class CacheOutcome(StrEnum):
    HIT = "hit"
    PARTIAL = "partial"
    MISS = "miss"
    BYPASS = "bypass"


@dataclass(frozen=True, slots=True)
class SynthesisPlan:
    """A request resolved: who speaks, in which language, in which pieces, in which format."""

    request: SynthesizeRequest
    profile: VoiceProfile
    language: Language
    language_detected: bool
    spec: FormatSpec
    wire: FormatSpec
    segments: tuple[Segment, ...]
    keys: tuple[str, ...]
    # The registered agent that shaped the plan (None: none named, or not registered).
    agent_id: str | None = None
    catalog: bool = False
    priority: Priority = Priority.LIVE
    # None: the provider chain's budget (VOICE_RESPONSE_TIMEOUT_MS).
    budget_s: float | None = None


@dataclass(frozen=True, slots=True)
class SegmentResult:
    index: int
    text: str
    audio: bytes
    provider: Provider
    voice_id: str | None
    duration_ms: int
    quality: float
    cache: CacheOutcome
    characters_billed: int
    characters_saved: int
    first_audio_s: float
    failed_attempts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    plan: SynthesisPlan
    segments: tuple[SegmentResult, ...]
    body: bytes

    @property
    def providers(self) -> tuple[Provider, ...]:
        """Every provider that spoke, in order of first appearance."""
        return tuple(dict.fromkeys(s.provider for s in self.segments))

    @property
    def cache(self) -> CacheOutcome:
        return overall_cache_outcome([s.cache for s in self.segments])

    @property
    def duration_ms(self) -> int:
        return sum(s.duration_ms for s in self.segments)

    @property
    def quality(self) -> float:
        """Duration-weighted mean of the segments' scores."""
        total = self.duration_ms
        if total == 0:
            return min((s.quality for s in self.segments), default=0.0)
        return round(sum(s.quality * s.duration_ms for s in self.segments) / total, 3)

    @property
    def characters_billed(self) -> int:
        return sum(s.characters_billed for s in self.segments)

    @property
    def characters_saved(self) -> int:
        return sum(s.characters_saved for s in self.segments)

    @property
    def first_audio_s(self) -> float:
        return self.segments[0].first_audio_s if self.segments else 0.0


def overall_cache_outcome(outcomes: list[CacheOutcome]) -> CacheOutcome:
    """hit: every segment from cache; partial: some; miss: none; bypass: cache not used."""
    if not outcomes or CacheOutcome.BYPASS in outcomes:
        return CacheOutcome.BYPASS
    hits = outcomes.count(CacheOutcome.HIT)
    if hits == len(outcomes):
        return CacheOutcome.HIT
    return CacheOutcome.PARTIAL if hits else CacheOutcome.MISS


class SynthesisService:
    def __init__(
        self,
        chain: ProviderChain,
        detector: LanguageDetector,
        cache: AudioCache,
        flights: SingleFlight,
        rollups: Rollups,
        settings: SynthesisSettings,
        agents: AgentStore,
        events: EventLog,
        finisher: SegmentFinisher,
        record: bool = True,
    ) -> None:
        self._chain = chain
        self._finisher = finisher
        self._recording = record
        self._agents = agents
        self._events = events
        self._detector = detector
        self._cache = cache
        self._flights = flights
        self._rollups = rollups
        self._settings = settings
        self._plans: OrderedDict[_MemoKey, SynthesisPlan] = OrderedDict()

    async def prepare(
        self,
        request: SynthesizeRequest,
        *,
        catalog: bool = False,
        priority: Priority = Priority.LIVE,
        budget_s: float | None = None,
    ) -> SynthesisPlan:
        """The plan of `request`, with its voice agent's persona and voices when it names one.

        An agent that is not registered (or cannot be read while the state Redis is away)
        leaves the request's own persona: a caller is never kept silent over a setting.
        """
        agent = await self._agent_of(request)
        return self.plan(
            request, agent=agent, catalog=catalog, priority=priority, budget_s=budget_s
        )

    async def _agent_of(self, request: SynthesizeRequest) -> Agent | None:
        if request.voice_agent_id is None:
            return None
        try:
            return await self._agents.get(request.voice_agent_id)
        except (RedisError, OSError) as exc:
            logger.warning(
                "agent %s unreadable (%s): persona as requested",
                request.voice_agent_id,
                type(exc).__name__,
            )
            return None

    def plan(
        self,
        request: SynthesizeRequest,
        *,
        agent: Agent | None = None,
        catalog: bool = False,
        priority: Priority = Priority.LIVE,
        budget_s: float | None = None,
    ) -> SynthesisPlan:
        """Resolve persona, language and format, and split the text into segments.

        `catalog` marks common phrases (pre-generation): they are cached for the long TTL.
        Plans of recent requests are remembered: agents repeat themselves, and a repeated
        request (a cache hit, most often) then skips detection, segmenting and hashing.
        """
        memo_key: _MemoKey = (
            request.model_dump_json(),
            "persona" in request.model_fields_set,
            agent.model_dump_json() if agent is not None else None,
            catalog,
            priority,
            budget_s,
        )
        if (known := self._plans.get(memo_key)) is not None:
            self._plans.move_to_end(memo_key)
            return known
        plan = self._make_plan(request, agent, catalog, priority, budget_s)
        self._plans[memo_key] = plan
        if len(self._plans) > _REMEMBERED_PLANS:
            self._plans.popitem(last=False)
        return plan

    def _make_plan(
        self,
        request: SynthesizeRequest,
        agent: Agent | None,
        catalog: bool,
        priority: Priority,
        budget_s: float | None,
    ) -> SynthesisPlan:
        if request.language == LanguageChoice.AUTO:
            language, detected = self._detector.detect(request.text), True
        else:
            language, detected = Language(request.language.value), False
        spec = spec_of(request.output_format)
        wire = spec_of(spec.wire)
        profile = _profile_of(request, agent)
        segments = tuple(
            segment(
                request.text,
                min_chars=self._settings.min_segment_chars,
                max_chars=self._settings.max_segment_chars,
            )
        )
        keys = tuple(
            cache_key(self._chain.primary_identity(s, profile, language, wire)) for s in segments
        )
        return SynthesisPlan(
            request=request,
            profile=profile,
            language=language,
            language_detected=detected,
            spec=spec,
            wire=wire,
            segments=segments,
            keys=keys,
            agent_id=agent.voice_agent_id if agent is not None else None,
            catalog=catalog,
            priority=priority,
            budget_s=budget_s,
        )

    async def synthesize(self, plan: SynthesisPlan) -> AsyncGenerator[SegmentResult, None]:
        """Each segment's audio, in order, synthesized up to `segment_concurrency` at a time.

        One analytics sample per request is recorded when the last segment is out (or when
        the request fails or its client leaves).
        """
        started = asyncio.get_running_loop().time()
        delivered: list[SegmentResult] = []
        outcome, error = "error", None
        try:
            async for result in self._segments(plan):
                delivered.append(result)
                yield result
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "abandoned"
            raise
        except Exception as exc:
            error = _error_code(exc)
            raise
        finally:
            elapsed = asyncio.get_running_loop().time() - started
            surface = _one_shot_surface(plan)
            self._record(plan, surface, delivered, outcome, elapsed, error)

    async def _segments(self, plan: SynthesisPlan) -> AsyncGenerator[SegmentResult, None]:
        found = await self._lookup(plan)
        if found is not None and None not in found.entries:
            # Everything is cached: nothing to run concurrently, so no tasks to start.
            for seg, entry in zip(plan.segments, found.entries, strict=True):
                assert entry is not None
                yield _from_entry(seg, entry, CacheOutcome.HIT, first_audio_s=0.0)
            return
        jobs = [
            lambda i=i: self._segment(plan, i, found.entries[i] if found else None, found is None)
            for i in range(len(plan.segments))
        ]
        async with aclosing(in_order(jobs, self._settings.segment_concurrency)) as results:
            async for result in results:
                yield result

    async def stream(
        self, plan: SynthesisPlan, surface: metrics.Surface = metrics.Surface.STREAM
    ) -> AsyncGenerator[StreamEvent, None]:
        """Audio as it is produced: the first segment's bytes are passed on as they arrive.

        Later segments are synthesized meanwhile (up to `segment_concurrency` at a time) and
        follow in order. A segment stays with the provider that started it; if that provider
        breaks off, a SegmentCut says so and the next segment goes on. Streamed misses skip
        single-flight (the caller is already listening), and are cached once complete.
        """
        started = asyncio.get_running_loop().time()
        delivered: list[SegmentResult] = []
        outcome = "error"
        found = await self._lookup(plan)
        queues: list[asyncio.Queue[StreamEvent | Exception]] = [
            asyncio.Queue() for _ in plan.segments
        ]
        gate = asyncio.Semaphore(self._settings.segment_concurrency)
        producers = [
            asyncio.create_task(
                self._produce(plan, i, found.entries[i] if found else None, queues[i], gate)
            )
            for i in range(len(plan.segments))
        ]
        error = None
        try:
            for queue in queues:
                while True:
                    event = await queue.get()
                    if isinstance(event, Exception):
                        raise event
                    if isinstance(event, SegmentEnded):
                        delivered.append(event.result)
                    yield event
                    if isinstance(event, SegmentEnded) or (
                        isinstance(event, SegmentCut) and not event.resumed
                    ):
                        break
            outcome = "ok"
        except (GeneratorExit, asyncio.CancelledError):
            outcome = "abandoned"
            raise
        except Exception as exc:
            error = _error_code(exc)
            raise
        finally:
            for task in producers:
                task.cancel()
            await asyncio.gather(*producers, return_exceptions=True)
            elapsed = asyncio.get_running_loop().time() - started
            self._record(plan, surface, delivered, outcome, elapsed, error)

    def _record(
        self,
        plan: SynthesisPlan,
        surface: metrics.Surface,
        delivered: list[SegmentResult],
        outcome: str,
        elapsed_s: float,
        error: str | None,
    ) -> None:
        """One request's figures: the rollups, the Prometheus metrics, the analytics event."""
        if not self._recording:
            return
        figures = _RequestFigures.of(delivered)
        self._rollups.record(_sample(figures, outcome, elapsed_s), _scopes(plan, figures))
        _export(surface, figures, outcome)
        self._events.record(_event(plan, surface, figures, outcome, elapsed_s, error))

    async def _produce(
        self,
        plan: SynthesisPlan,
        index: int,
        cached: CacheEntry | None,
        queue: "asyncio.Queue[StreamEvent | Exception]",
        gate: asyncio.Semaphore,
    ) -> None:
        seg = plan.segments[index]
        try:
            async with gate:
                if cached is not None:
                    result = _from_entry(seg, cached, CacheOutcome.HIT, first_audio_s=0.0)
                    queue.put_nowait(
                        SegmentStarted(index, seg.text, result.provider, result.cache, 0.0)
                    )
                    queue.put_nowait(AudioChunk(index, cached.audio))
                    queue.put_nowait(SegmentEnded(result))
                    return
                await self._stream_miss(plan, index, queue)
        except Exception as exc:  # handed to the consumer, which raises it in order
            queue.put_nowait(exc)

    async def _stream_miss(
        self, plan: SynthesisPlan, index: int, queue: "asyncio.Queue[StreamEvent | Exception]"
    ) -> None:
        seg = plan.segments[index]
        outcome = CacheOutcome.MISS if plan.request.cache else CacheOutcome.BYPASS
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with self._chain.open(
            seg, plan.profile, plan.language, plan.wire, plan.priority, plan.budget_s
        ) as opened:
            first_audio_s = loop.time() - began
            queue.put_nowait(
                SegmentStarted(index, seg.text, opened.provider, outcome, first_audio_s)
            )
            chunks = [opened.first]
            queue.put_nowait(AudioChunk(index, opened.first))
            cut: ProviderError | None = None
            try:
                async for chunk in opened.rest:
                    chunks.append(chunk)
                    queue.put_nowait(AudioChunk(index, chunk))
            except ProviderError as exc:
                cut = exc
        if cut is not None:
            await self._speak_the_rest(plan, index, b"".join(chunks), cut, queue)
            return
        entry = await self._new_segment_entry(plan, seg, opened.spoken(seg, b"".join(chunks)))
        if opened.by_primary and plan.request.cache:
            await self._cache.store(plan.keys[index], entry)
        result = _from_entry(seg, entry, outcome, first_audio_s=first_audio_s, paid=True)
        queue.put_nowait(SegmentEnded(result))

    async def _speak_the_rest(
        self,
        plan: SynthesisPlan,
        index: int,
        heard: bytes,
        cut: ProviderError,
        queue: "asyncio.Queue[StreamEvent | Exception]",
    ) -> None:
        """A segment cut mid-stream: the offline engine says what the caller did not hear."""
        seg = plan.segments[index]
        heard_s = codecs.duration_ms(heard, plan.wire) / 1000
        rest = unheard_rest(seg.text, heard_s, quality.CHARS_PER_SECOND)
        if not any(char.isalnum() for char in rest):
            queue.put_nowait(SegmentCut(index, cut))
            return
        queue.put_nowait(SegmentCut(index, cut, resumed=True))
        part = Segment(index=seg.index, text=rest, previous_text=None, next_text=None)
        began = asyncio.get_running_loop().time()
        spoken = await self._chain.speak_offline(part, plan.profile, plan.language, plan.wire)
        entry = await self._new_segment_entry(plan, part, spoken, extra_failures=(cut.code,))
        first_audio_s = asyncio.get_running_loop().time() - began
        outcome = CacheOutcome.MISS if plan.request.cache else CacheOutcome.BYPASS
        queue.put_nowait(SegmentStarted(index, rest, spoken.provider, outcome, first_audio_s))
        queue.put_nowait(AudioChunk(index, entry.audio))
        result = _from_entry(part, entry, outcome, first_audio_s=first_audio_s, paid=True)
        queue.put_nowait(SegmentEnded(result))

    async def _lookup(self, plan: SynthesisPlan) -> Lookup | None:
        """The cache's entries for the plan's segments; None when the cache is not used."""
        if not plan.request.cache:
            return None
        return await self._cache.lookup(list(plan.keys), plan.wire.format.value)

    async def synthesize_all(self, plan: SynthesisPlan) -> SynthesisResult:
        """The whole text as one deliverable body (one WAV header, MP3 frames joined)."""
        results = [result async for result in self.synthesize(plan)]
        # Segments are kept clean (segment_audio), so joining them is concatenation.
        body = container.deliverable([r.audio for r in results], plan.spec)
        return SynthesisResult(plan=plan, segments=tuple(results), body=body)

    async def _segment(
        self, plan: SynthesisPlan, index: int, cached: CacheEntry | None, bypass: bool
    ) -> SegmentResult:
        seg, key = plan.segments[index], plan.keys[index]
        if cached is not None:
            return _from_entry(seg, cached, CacheOutcome.HIT, first_audio_s=0.0)
        started = asyncio.get_running_loop().time()
        if bypass:
            computed = await self._compute(plan, seg)
            # `"cache": false` keeps the text out of the cache both ways.
            if computed.cacheable and plan.request.cache:
                await self._cache.store(key, computed.entry)
            entry, outcome, paid = computed.entry, CacheOutcome.BYPASS, True
        else:
            flown = await self._flights.run(
                key, plan.wire.format.value, lambda: self._compute(plan, seg)
            )
            paid = flown.computed_here
            entry = flown.entry
            outcome = CacheOutcome.MISS if paid else CacheOutcome.HIT
        first_audio_s = asyncio.get_running_loop().time() - started
        return _from_entry(seg, entry, outcome, first_audio_s=first_audio_s, paid=paid)

    async def _compute(self, plan: SynthesisPlan, seg: Segment) -> Computed:
        deadline = time.monotonic() + (plan.budget_s or self._chain.budget_s)
        spoken = await self._chain.speak(
            seg, plan.profile, plan.language, plan.wire, plan.priority, plan.budget_s
        )
        entry = await self._new_segment_entry(plan, seg, spoken)
        if entry.meta.quality >= self._settings.retry_below_quality:
            return Computed(entry=entry, cacheable=spoken.by_primary)
        retried = await self._retry_with_fallback_voice(plan, seg, spoken, deadline)
        # Neither take is the first choice's good audio: neither is cached (the next request
        # asks again).
        best = entry if retried is None or retried.meta.quality <= entry.meta.quality else retried
        if (
            best.meta.quality < self._settings.unusable_below_quality
            and best.meta.provider != Provider.ESPEAK.value
        ):
            # No speech at all (silence, noise): the offline engine says it instead.
            offline = await self._chain.speak_offline(seg, plan.profile, plan.language, plan.wire)
            failures = (*best.meta.failed_attempts, UNUSABLE_AUDIO)
            best = await self._new_segment_entry(plan, seg, offline, extra_failures=failures)
        return Computed(
            entry=best, cacheable=best is entry and retried is None and spoken.by_primary
        )

    async def _retry_with_fallback_voice(
        self, plan: SynthesisPlan, seg: Segment, first: SpokenSegment, deadline: float
    ) -> CacheEntry | None:
        """The segment again in the persona's fallback voice, if upstream spoke it in another
        voice and time is left; None when no retry was made or it did not come from upstream."""
        fallback = plan.profile.fallback_voice
        remaining_s = deadline - time.monotonic()
        if first.provider != Provider.ELEVENLABS or first.voice_id == fallback.voice_id:
            return None
        if remaining_s <= 0:
            return None
        voices = {**plan.profile.voices, plan.language: fallback}
        profile = plan.profile.model_copy(update={"voices": voices})
        try:
            again = await self._chain.speak(
                seg, profile, plan.language, plan.wire, plan.priority, remaining_s
            )
        except SynthesisUnavailableError:
            return None
        if again.provider != Provider.ELEVENLABS:
            return None
        logger.info("segment %d scored low; retried in the fallback voice", seg.index)
        return await self._new_segment_entry(
            plan, seg, again, extra_failures=(*first.failed_attempts, LOW_QUALITY)
        )

    async def _new_segment_entry(
        self,
        plan: SynthesisPlan,
        seg: Segment,
        spoken: SpokenSegment,
        extra_failures: tuple[str, ...] | None = None,
    ) -> CacheEntry:
        """A freshly made segment as a cache entry: clean audio, duration and quality measured."""
        finished = await self._finisher.finish(spoken.audio, seg.text, plan.wire)
        metrics.QUALITY_SCORE.labels(spoken.provider).observe(finished.score)
        return new_entry(
            finished.audio,
            wire_format=plan.wire.format.value,
            provider=spoken.provider.value,
            voice_id=spoken.voice_id,
            duration_ms=finished.duration_ms,
            quality=finished.score,
            characters_billed=spoken.usage.characters_billed,
            catalog=plan.catalog,
            failed_attempts=spoken.failed_attempts if extra_failures is None else extra_failures,
        )


def _profile_of(request: SynthesizeRequest, agent: Agent | None) -> VoiceProfile:
    """The request's persona (the agent's, unless the request names one) with agent voices."""
    if agent is None:
        return profile_for(request.persona)
    persona = request.persona if "persona" in request.model_fields_set else agent.persona
    return agent.voice_profile(profile_for(persona))


def _from_entry(
    seg: Segment,
    entry: CacheEntry,
    outcome: CacheOutcome,
    *,
    first_audio_s: float,
    paid: bool = False,
) -> SegmentResult:
    meta = entry.meta
    return SegmentResult(
        index=seg.index,
        text=seg.text,
        audio=entry.audio,
        provider=Provider(meta.provider),
        voice_id=meta.voice_id,
        duration_ms=meta.duration_ms,
        quality=meta.quality,
        cache=outcome,
        characters_billed=meta.characters_billed if paid else 0,
        characters_saved=0 if paid else meta.characters_billed,
        first_audio_s=first_audio_s,
        failed_attempts=tuple(meta.failed_attempts) if paid else (),
    )


@dataclass(frozen=True, slots=True)
class _RequestFigures:
    """What a request's delivered segments add up to, computed once for every record."""

    segments: int
    segment_hits: int
    cache: CacheOutcome | None  # None when nothing was delivered
    served_bytes: int
    characters_billed: int
    characters_saved: int
    quality_sum: float
    quality: float | None  # duration-weighted
    fallback: bool
    providers: tuple[Provider, ...]
    first_audio_s: float | None

    @classmethod
    def of(cls, results: list[SegmentResult]) -> "_RequestFigures":
        # One pass: this runs for every request, cache hits included.
        hits = served = billed = saved = duration_ms = 0
        quality_sum = weighted = 0.0
        fallback = False
        providers: dict[Provider, None] = {}
        for r in results:
            if r.cache == CacheOutcome.HIT:
                hits += 1
                served += len(r.audio)
            billed += r.characters_billed
            saved += r.characters_saved
            duration_ms += r.duration_ms
            quality_sum += r.quality
            weighted += r.quality * r.duration_ms
            fallback = fallback or bool(r.failed_attempts)
            providers[r.provider] = None
        return cls(
            segments=len(results),
            segment_hits=hits,
            cache=overall_cache_outcome([r.cache for r in results]) if results else None,
            served_bytes=served,
            characters_billed=billed,
            characters_saved=saved,
            quality_sum=quality_sum,
            quality=weighted / duration_ms if duration_ms else None,
            fallback=fallback,
            providers=tuple(providers),
            first_audio_s=results[0].first_audio_s if results else None,
        )


def _sample(figures: _RequestFigures, outcome: str, elapsed_s: float) -> Sample:
    # Counts of distinct names, made as one dict: this runs for every request.
    # (StrEnum members format as their values.)
    if outcome != "ok":
        return Sample({"requests": 1, f"outcome_{outcome}": 1}).observe("latency", elapsed_s)
    sample = Sample(
        {
            "requests": 1,
            f"outcome_{outcome}": 1,
            f"cache_{figures.cache or CacheOutcome.BYPASS}": 1,
            "segments": figures.segments,
            "segment_hits": figures.segment_hits,
            "cache_bytes_served": figures.served_bytes,
            "chars_billed": figures.characters_billed,
            "chars_saved": figures.characters_saved,
            "quality_sum": figures.quality_sum,
            "fallback": int(figures.fallback),
            **{f"provider_{provider}": 1 for provider in figures.providers},
        }
    ).observe("latency", elapsed_s)
    if figures.first_audio_s is not None:
        sample.observe("first_audio", figures.first_audio_s)
    return sample


def _scopes(plan: SynthesisPlan, figures: _RequestFigures) -> tuple[Scope, ...]:
    """The request's rollup scopes: bounded ones only (an agent only when it is registered).

    Enum members stand for their values here and in the event (each is a str, and reading
    `.value` costs a descriptor call: a dozen a request).
    """
    scopes: list[Scope] = [("persona", plan.profile.persona), ("language", plan.language)]
    if plan.agent_id is not None:
        scopes.append(("agent", plan.agent_id))
    scopes.extend(("provider", p) for p in figures.providers)
    return tuple(scopes)


def _error_code(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else type(exc).__name__


def _event(
    plan: SynthesisPlan,
    surface: metrics.Surface,
    figures: _RequestFigures,
    outcome: str,
    elapsed_s: float,
    error: str | None,
) -> AnalyticsEvent:
    first_audio_s = figures.first_audio_s
    return AnalyticsEvent(
        at=time.time(),
        surface=surface,
        outcome=outcome,
        agent=plan.request.voice_agent_id,
        persona=plan.profile.persona,
        language=plan.language,
        provider=",".join(figures.providers),
        cache=figures.cache if figures.cache is not None else "",
        latency_ms=round(elapsed_s * 1000, 2),
        first_audio_ms=round(first_audio_s * 1000, 2) if first_audio_s is not None else None,
        characters_billed=figures.characters_billed,
        characters_saved=figures.characters_saved,
        quality=round(figures.quality, 3) if figures.quality is not None else None,
        fallback=figures.fallback,
        error=error,
    )


def _one_shot_surface(plan: SynthesisPlan) -> metrics.Surface:
    return metrics.Surface.BULK if plan.priority == Priority.BULK else metrics.Surface.HTTP


_CACHE_LOOKUPS = metrics.ChildCache(metrics.CACHE_LOOKUPS)
_FIRST_AUDIO = metrics.ChildCache(metrics.FIRST_AUDIO)
_CACHE_SERVED_BYTES = metrics.ChildCache(metrics.CACHE_SERVED_BYTES)
_BILLED_CHARACTERS = metrics.ChildCache(metrics.BILLED_CHARACTERS)
_SAVED_CHARACTERS = metrics.ChildCache(metrics.SAVED_CHARACTERS)


def _export(surface: metrics.Surface, figures: _RequestFigures, outcome: str) -> None:
    """A finished request's cache outcome, first audio, bytes from cache and characters."""
    if outcome != "ok" or figures.cache is None or figures.first_audio_s is None:
        return
    _CACHE_LOOKUPS(figures.cache).inc()
    _FIRST_AUDIO(surface, figures.cache).observe(figures.first_audio_s)
    if figures.served_bytes:
        _CACHE_SERVED_BYTES(surface).inc(figures.served_bytes)
    if figures.characters_billed:
        _BILLED_CHARACTERS(surface).inc(figures.characters_billed)
    if figures.characters_saved:
        _SAVED_CHARACTERS(surface).inc(figures.characters_saved)
