"""G.711 μ-law and A-law for 16-bit PCM, bit-exact with CPython's `audioop`.

Both directions are table lookups: the tables are computed once, with the classic Sun/CCITT
algorithm that `audioop.c` uses, over every possible input (65,536 samples, 256 codes).
`audioop` itself is deprecated and gone in 3.13, and libsndfile's μ-law encoder differs from it
on 381 inputs, so this module is the one codec used everywhere.
"""

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

_ULAW_CLIP = 8159
_ULAW_BIAS = 0x84
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


Int64Array = npt.NDArray[np.int64]


def _segment(magnitude: Int64Array, seg_end: Int64Array) -> Int64Array:
    # The first segment whose upper end is >= the magnitude; 8 when none is.
    return np.searchsorted(seg_end, magnitude, side="left").astype(np.int64)


def _build_ulaw_encoder() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int64) >> 2  # 14-bit, as audioop does
    mask = np.where(samples < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, _ULAW_SEG_END)
    code = (np.minimum(seg, 7) << 4) | ((magnitude >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    table = (code ^ mask).astype(np.uint8)
    # Index by the sample's bit pattern as uint16, so encoding is one fancy-index.
    return np.roll(table, -32768)


def _build_ulaw_decoder() -> Int16Array:
    u = ~np.arange(256, dtype=np.int64) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encoder() -> npt.NDArray[np.uint8]:
    samples = np.arange(-32768, 32768, dtype=np.int64) >> 3  # 13-bit, as audioop does
    mask = np.where(samples >= 0, 0xD5, 0x55)
    magnitude = np.where(samples >= 0, samples, -samples - 1)
    seg = _segment(magnitude, _ALAW_SEG_END)
    safe_seg = np.minimum(seg, 7)
    quant = np.where(safe_seg < 2, magnitude >> 1, magnitude >> safe_seg) & 0x0F
    code = np.where(seg >= 8, 0x7F, (safe_seg << 4) | quant)
    table = (code ^ mask).astype(np.uint8)
    return np.roll(table, -32768)


def _build_alaw_decoder() -> Int16Array:
    a = np.arange(256, dtype=np.int64) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ULAW_ENCODE = _build_ulaw_encoder()
_ULAW_DECODE = _build_ulaw_decoder()
_ALAW_ENCODE = _build_alaw_encoder()
_ALAW_DECODE = _build_alaw_decoder()

# The code for digital silence: what a μ-law stream is padded with.
ULAW_SILENCE = int(_ULAW_ENCODE[0])
ALAW_SILENCE = int(_ALAW_ENCODE[0])


def ulaw_encode(pcm: Int16Array) -> bytes:
    return _ULAW_ENCODE[pcm.view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: Int16Array) -> bytes:
    return _ALAW_ENCODE[pcm.view(np.uint16)].tobytes()


def alaw_decode(data: bytes) -> Int16Array:
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
