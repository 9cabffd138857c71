"""The one interface every speech provider implements."""

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from app.audio.formats import FormatSpec
from app.cache.keys import SegmentIdentity
from app.tts.models import Language, Provider
from app.tts.personas import Voice, VoiceProfile


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """One segment to speak, in one voice, in one wire format."""

    text: str
    language: Language
    profile: VoiceProfile
    voice: Voice
    wire: FormatSpec
    previous_text: str | None = None
    next_text: str | None = None


@dataclass(slots=True)
class ProviderUsage:
    """What one upstream call reported about itself; filled in by the provider as it streams."""

    request_id: str | None = None
    characters_billed: int = 0
    concurrent_requests: int | None = None
    max_concurrent_requests: int | None = None


class TTSProvider(Protocol):
    name: Provider

    @property
    def configured(self) -> bool:
        """Whether the provider can be asked at all (an upstream needs its key)."""
        ...

    def identity(self, request: ProviderRequest) -> SegmentIdentity:
        """Everything about the request that changes this provider's audio (the cache key)."""
        ...

    def stream(self, request: ProviderRequest, usage: ProviderUsage) -> AsyncGenerator[bytes, None]:
        """The segment's audio in `request.wire`, chunk by chunk; raises ProviderError."""
        ...
