"""Cache keys: what makes two segments the same audio, hashed; never a secret."""

import hashlib
import json
from dataclasses import dataclass

from app.tts.segmenting import normalize_whitespace

KEY_PREFIX = "sv:audio:v1:"
# Bump when text normalization or pronunciation rules change, so old audio is not reused.
LEXICON_VERSION = 1


@dataclass(frozen=True, slots=True)
class SegmentIdentity:
    """Everything that changes the audio of one segment."""

    text: str
    provider: str
    voice_id: str
    model_id: str
    settings: tuple[tuple[str, float | int | bool | str], ...]
    language: str
    wire_format: str


def cache_key(identity: SegmentIdentity) -> str:
    # Whitespace is collapsed but case is kept: "US" and "us" are said differently.
    canonical = {
        "lexicon": LEXICON_VERSION,
        "text": normalize_whitespace(identity.text),
        "provider": identity.provider,
        "voice": identity.voice_id,
        "model": identity.model_id,
        "settings": [[name, _rounded(value)] for name, value in identity.settings],
        "language": identity.language,
        "format": identity.wire_format,
    }
    encoded = json.dumps(canonical, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return KEY_PREFIX + hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _rounded(value: float | int | bool | str) -> float | int | bool | str:
    # 0.5 and 0.50000001 are one setting; rounding keeps float noise from splitting the cache.
    if isinstance(value, float):
        return round(value, 3)
    return value
