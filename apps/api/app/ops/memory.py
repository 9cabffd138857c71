"""The process's resident memory back to its working size after bursts (glibc malloc).

Audio is handled in several threads: the offline engine's, and the pool that encodes, cleans
and scores segments. glibc gives threads their own malloc arenas (up to 8 per core) and keeps
what is freed inside them. A burst of concurrent requests (a slow upstream piles them up)
therefore raises the resident size for good: the soak saw +9 MiB steps after such bursts that
never came back, although nothing stayed referenced.

Two remedies, both glibc's own API: fewer arenas, so freed blocks are reused rather than
stranded in an arena no thread touches any more, and a periodic `malloc_trim`, which hands the
free pages inside every arena back to the kernel. Elsewhere (musl, macOS) both are no-ops.
"""

import asyncio
import ctypes
import ctypes.util
from functools import cache

from app.periodic import Periodic

_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
TRIM_EVERY_S = 30.0


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.malloc_trim.argtypes = (ctypes.c_size_t,)
    return libc


def limit_arenas(count: int) -> bool:
    """At most `count` malloc arenas from now on; call before threads start. False if not glibc."""
    libc = _glibc()
    return libc is not None and libc.mallopt(_M_ARENA_MAX, count) == 1


def trim() -> bool:
    """Return free heap pages to the kernel; True when glibc released any."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1


def trimmer(every_s: float = TRIM_EVERY_S) -> Periodic:
    """`trim` every `every_s` seconds, off the event loop (it walks every arena)."""

    async def tick() -> None:
        await asyncio.to_thread(trim)

    return Periodic("malloc-trim", tick, every_s)
