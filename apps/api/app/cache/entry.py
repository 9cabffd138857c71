"""A cache value: the segment's wire bytes and a small metadata record, in one Redis string.

Layout: MAGIC, 4-byte big-endian metadata length, metadata JSON, audio. The metadata carries the
audio's length and CRC-32, so a truncated or corrupt value is detected and treated as a miss.
"""

import json
import struct
import time
import zlib
from dataclasses import asdict, dataclass, field

MAGIC = b"SVA1"
_HEADER = struct.Struct(">4sI")


class CorruptEntryError(ValueError):
    """The bytes are not a whole, intact cache value."""


@dataclass(frozen=True, slots=True)
class EntryMeta:
    wire_format: str
    provider: str
    voice_id: str | None
    duration_ms: int
    quality: float
    characters_billed: int
    created: float
    catalog: bool
    audio_bytes: int
    crc32: int
    # Codes of the attempts that failed before this audio was made (empty for cached audio).
    failed_attempts: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    meta: EntryMeta
    audio: bytes


def new_entry(
    audio: bytes,
    *,
    wire_format: str,
    provider: str,
    voice_id: str | None,
    duration_ms: int,
    quality: float,
    characters_billed: int,
    catalog: bool,
    failed_attempts: tuple[str, ...] = (),
) -> CacheEntry:
    meta = EntryMeta(
        wire_format=wire_format,
        provider=provider,
        voice_id=voice_id,
        duration_ms=duration_ms,
        quality=quality,
        characters_billed=characters_billed,
        created=time.time(),
        catalog=catalog,
        audio_bytes=len(audio),
        crc32=zlib.crc32(audio),
        failed_attempts=list(failed_attempts),
    )
    return CacheEntry(meta=meta, audio=audio)


def encode_entry(entry: CacheEntry) -> bytes:
    meta = json.dumps(asdict(entry.meta), separators=(",", ":")).encode()
    return _HEADER.pack(MAGIC, len(meta)) + meta + entry.audio


def decode_entry(value: bytes) -> CacheEntry:
    if len(value) < _HEADER.size:
        raise CorruptEntryError("shorter than the header")
    magic, meta_size = _HEADER.unpack_from(value)
    if magic != MAGIC:
        raise CorruptEntryError("not a cache value of this version")
    meta_end = _HEADER.size + meta_size
    try:
        meta = EntryMeta(**json.loads(value[_HEADER.size : meta_end]))
    except (ValueError, TypeError) as exc:
        raise CorruptEntryError(f"unreadable metadata: {exc}") from exc
    audio = value[meta_end:]
    if len(audio) != meta.audio_bytes or zlib.crc32(audio) != meta.crc32:
        raise CorruptEntryError("audio truncated or damaged")
    return CacheEntry(meta=meta, audio=audio)
