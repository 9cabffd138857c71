"""The offline engine: eSpeak NG from the espeakng-loader package, through ctypes.

libespeak-ng keeps global state and is not thread-safe, so one dedicated thread owns it: every
call is submitted to that thread's executor and awaited. Synthesis runs in synchronous mode at
several hundred times real time, so a sentence costs milliseconds of that thread.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import itertools
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import espeakng_loader
import numpy as np
import numpy.typing as npt

from app.audio import codecs
from app.cache.keys import SegmentIdentity
from app.tts.errors import OfflineEngineError
from app.tts.models import Language, Provider
from app.tts.personas import OFFLINE_LANGUAGE_VOICES, OfflineVoice
from app.tts.providers.base import ProviderRequest, ProviderUsage

Int16Array = npt.NDArray[np.int16]

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_CALLBACK_BUFFER_MS = 100
_FIRST_BLOCK_S = 0.25
_BLOCK_S = 1.0

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def load_library() -> tuple[ctypes.CDLL, int]:
    """libespeak-ng with its signatures declared, initialized in synchronous mode.

    Returns the library and its output sample rate. Call it on the thread that will own the
    library (the benchmarks also use it for their raw baseline).
    """
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Terminate.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.c_void_p]
    lib.espeak_Info.restype = ctypes.c_char_p
    # espeak_Initialize wants the folder that contains espeak-ng-data.
    data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
    rate = int(
        lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _CALLBACK_BUFFER_MS, data_parent, 0)
    )
    if rate <= 0:
        raise OfflineEngineError(Provider.ESPEAK, f"espeak_Initialize failed ({rate})")
    return lib, rate


class EspeakEngine:
    """libespeak-ng, owned by one thread; async callers await its results.

    The library's state is global to the process, so there is one engine per process
    (`shared_engine()`), whatever number of apps or event loops use it.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak-ng")
        self._lib: ctypes.CDLL | None = None
        # Kept referenced: libespeak-ng calls it long after espeak_SetSynthCallback returns.
        self._callback: object = None
        self._chunks: list[Int16Array] = []
        self._owner: threading.Thread | None = None
        self._voice: tuple[str, int, int, int] | None = None  # what the library is set to
        self.sample_rate = 0

    @property
    def started(self) -> bool:
        return self._lib is not None

    async def start(self) -> None:
        """Load and initialize the library (once; later calls return at once)."""
        loop = asyncio.get_running_loop()
        self.sample_rate = await loop.run_in_executor(self._executor, self._initialize)

    def close(self) -> None:
        """Release the library and its thread (at process exit)."""
        if self._lib is not None:
            try:
                self._executor.submit(self._terminate).result()
            except RuntimeError:
                # concurrent.futures stops executor threads before atexit callbacks run, so at
                # exit the owning thread is gone and nothing else can be using the library.
                self._terminate()
        self._executor.shutdown(wait=True)

    async def synthesize(self, text: str, language: Language, voice: OfflineVoice) -> Int16Array:
        """The whole utterance as 16-bit PCM at `sample_rate`."""
        if self._lib is None:
            raise OfflineEngineError(Provider.ESPEAK, "the offline engine is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._synthesize, text, language, voice)

    # Everything below runs on the owning thread only.

    def _initialize(self) -> int:
        if self._lib is not None:
            return self.sample_rate
        self._owner = threading.current_thread()
        lib, rate = load_library()
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib
        return rate

    def _on_audio(self, samples: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).astype(np.int16))
        return 0

    def _synthesize(self, text: str, language: Language, voice: OfflineVoice) -> Int16Array:
        assert self._lib is not None
        assert threading.current_thread() is self._owner
        name = f"{OFFLINE_LANGUAGE_VOICES[language]}+{voice.variant}"
        wanted = (name, voice.rate_wpm, voice.pitch, voice.pitch_range)
        # Loading a voice costs 0.1–0.5 ms; consecutive calls mostly keep the same one.
        if self._voice != wanted:
            self._voice = None
            if self._lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
                raise OfflineEngineError(Provider.ESPEAK, f"eSpeak NG has no voice {name}")
            self._lib.espeak_SetParameter(_PARAM_RATE, voice.rate_wpm, 0)
            self._lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
            self._lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)
            self._voice = wanted
        encoded = text.encode("utf-8")
        self._chunks = []
        result = self._lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        chunks, self._chunks = self._chunks, []
        if result != _EE_OK:
            raise OfflineEngineError(Provider.ESPEAK, f"espeak_Synth failed ({result})")
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks)

    def _terminate(self) -> None:
        if self._lib is not None:
            self._lib.espeak_Terminate()
            self._lib = None


_shared_engine: EspeakEngine | None = None
_shared_engine_lock = threading.Lock()


def shared_engine() -> EspeakEngine:
    """The process's one engine, released at interpreter exit."""
    global _shared_engine
    with _shared_engine_lock:
        if _shared_engine is None:
            _shared_engine = EspeakEngine()
            atexit.register(_shared_engine.close)
        return _shared_engine


class EspeakProvider:
    """The offline engine behind the provider interface: always configured, never billed."""

    name = Provider.ESPEAK

    def __init__(self, engine: EspeakEngine) -> None:
        self._engine = engine

    @property
    def configured(self) -> bool:
        return True

    def identity(self, request: ProviderRequest) -> SegmentIdentity:
        offline = request.profile.offline
        return SegmentIdentity(
            text=request.text,
            provider=self.name.value,
            voice_id=f"{OFFLINE_LANGUAGE_VOICES[request.language]}+{offline.variant}",
            model_id="espeak-ng",
            settings=(
                ("pitch", offline.pitch),
                ("pitch_range", offline.pitch_range),
                ("rate_wpm", offline.rate_wpm),
            ),
            language=request.language.value,
            wire_format=request.wire.format.value,
        )

    async def stream(
        self, request: ProviderRequest, usage: ProviderUsage
    ) -> AsyncGenerator[bytes, None]:
        pcm = await self._engine.synthesize(request.text, request.language, request.profile.offline)
        if pcm.size == 0:
            raise OfflineEngineError(self.name, "eSpeak NG produced no audio for the text")
        rate = request.wire.sample_rate
        pcm = await asyncio.to_thread(codecs.resample, pcm, self._engine.sample_rate, rate)
        encoder = codecs.StreamEncoder(request.wire)
        # A short first block, so the first bytes (MP3 above all) are out in a few ms.
        first = int(rate * _FIRST_BLOCK_S)
        block = int(rate * _BLOCK_S)
        for start in itertools.chain((0,), range(first, pcm.size, block)):
            end = first if start == 0 else start + block
            data = await asyncio.to_thread(encoder.encode, pcm[start:end])
            if data:
                yield data
        tail = await asyncio.to_thread(encoder.finish)
        if tail:
            yield tail
