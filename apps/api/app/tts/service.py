"""SynthesisService: the one synthesis path every surface uses (DESIGN §4)."""

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from app.audio import codecs, container, quality
from app.audio.formats import FormatSpec, spec_of
from app.config import SynthesisSettings
from app.ordered import in_order
from app.tts.fallback import ProviderChain, SpokenSegment
from app.tts.language import LanguageDetector
from app.tts.models import Language, LanguageChoice, Provider, SynthesizeRequest
from app.tts.personas import VoiceProfile, profile_for
from app.tts.segmenting import Segment, segment, spoken_length


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


@dataclass(frozen=True, slots=True)
class SegmentResult:
    spoken: SpokenSegment
    duration_ms: int
    quality: float


@dataclass(frozen=True, slots=True)
class SynthesisResult:
    plan: SynthesisPlan
    segments: tuple[SegmentResult, ...]
    body: bytes

    @property
    def providers(self) -> tuple[Provider, ...]:
        """Every provider that spoke, in order of first appearance."""
        return tuple(dict.fromkeys(s.spoken.provider for s in self.segments))

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
        return sum(s.spoken.usage.characters_billed for s in self.segments)

    @property
    def first_audio_s(self) -> float:
        return self.segments[0].spoken.ttfb_s if self.segments else 0.0


class SynthesisService:
    def __init__(
        self, chain: ProviderChain, detector: LanguageDetector, settings: SynthesisSettings
    ) -> None:
        self._chain = chain
        self._detector = detector
        self._settings = settings

    def plan(self, request: SynthesizeRequest) -> SynthesisPlan:
        """Resolve persona, language and format, and split the text into segments."""
        if request.language == LanguageChoice.AUTO:
            language, detected = self._detector.detect(request.text), True
        else:
            language, detected = Language(request.language.value), False
        spec = spec_of(request.output_format)
        segments = segment(
            request.text,
            min_chars=self._settings.min_segment_chars,
            max_chars=self._settings.max_segment_chars,
        )
        return SynthesisPlan(
            request=request,
            profile=profile_for(request.persona),
            language=language,
            language_detected=detected,
            spec=spec,
            wire=spec_of(spec.wire),
            segments=tuple(segments),
        )

    async def synthesize(self, plan: SynthesisPlan) -> AsyncGenerator[SegmentResult, None]:
        """Each segment's audio, in order, synthesized up to `segment_concurrency` at a time."""
        jobs = [lambda s=s: self._segment(plan, s) for s in plan.segments]
        async with aclosing(in_order(jobs, self._settings.segment_concurrency)) as results:
            async for result in results:
                yield result

    async def synthesize_all(self, plan: SynthesisPlan) -> SynthesisResult:
        """The whole text as one deliverable body (one WAV header, MP3 frames joined)."""
        results = [result async for result in self.synthesize(plan)]
        body = await asyncio.to_thread(
            container.deliverable, [r.spoken.audio for r in results], plan.spec
        )
        return SynthesisResult(plan=plan, segments=tuple(results), body=body)

    async def _segment(self, plan: SynthesisPlan, seg: Segment) -> SegmentResult:
        spoken = await self._chain.speak(seg, plan.profile, plan.language, plan.wire)
        duration_ms, score = await asyncio.to_thread(_measure, spoken, plan.wire)
        return SegmentResult(spoken=spoken, duration_ms=duration_ms, quality=score)


def _measure(spoken: SpokenSegment, wire: FormatSpec) -> tuple[int, float]:
    pcm = codecs.decode(spoken.audio, wire)
    score = quality.measure(pcm, wire.sample_rate, spoken_length(spoken.text)).score
    return codecs.duration_ms(spoken.audio, wire), score
