"""Benchmark the offline engine: eSpeak NG through our EspeakEngine and EspeakProvider.

What it measures
----------------
* Real-time factor (RTF) of `app.tts.providers.espeak.shared_engine().synthesize(...)`, per
  language (en, es, zh) and persona (professional, authoritative), over a few real-estate
  sentences per language: seconds of audio produced per CPU second (`time.process_time()`,
  every thread of the process, so the event loop and the engine's thread both count) and per
  wall-clock second. Each cell is timed over `--trials` trials of `--repeat` passes over its
  sentences; the median trial is reported.
* Time to first audio (TTFA) of one sentence per language through
  `EspeakProvider.stream(...)` (until its first chunk arrives) for the wire formats ulaw_8000,
  mp3_44100_128 and pcm_16000: median and p95 (nearest rank) over `--ttfa-runs` runs.
* The baseline, measured in the same run: libespeak-ng called directly through ctypes, without
  our wrapping (no event loop, no executor hop, no numpy, voice and parameters set once per
  cell instead of per call), with a callback that only copies the samples out as bytes. It runs
  in a child process, because the library's state is global to a process and our engine owns
  it from its own thread; the child is driven cell by cell, right after the same cell of ours,
  so that drift in machine load hits both alike. Same sentences, voices, eSpeak parameters,
  trials and repetitions. The RTF ratio compares CPU seconds per second of audio (for the same
  text and voice, eSpeak NG's output length varies by a few hundred samples from call to call,
  so totals are not compared directly); the TTFA baseline is the raw synthesis of the sentence.

Both processes are pinned to the same single CPU (`--no-pin` to turn that off).

Aim: RTF (CPU) ≥ 200× real time on one core, TTFA ≤ 20 ms.

How to run
----------
From the repository root, with the repo's requirements installed::

    python bench/offline_engine.py [--trials 7] [--repeat 6] [--ttfa-runs 30] [--no-pin]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import soundfile

from app.audio.formats import OutputFormat, spec_of
from app.tts.models import Language, Persona
from app.tts.personas import OFFLINE_LANGUAGE_VOICES, PROFILES, OfflineVoice
from app.tts.providers.base import ProviderRequest, ProviderUsage
from app.tts.providers.espeak import EspeakProvider, load_library, shared_engine
from bench.machine import cpu_model

SENTENCES: dict[Language, tuple[str, ...]] = {
    Language.EN: (
        "Thanks for calling Maple Realty, this is Sarah. How can I help you today?",
        "The three-bedroom home at 42 Maple Street is listed at $649,000 "
        "and comes with a two-car garage.",
        "The open house runs this Saturday from one to four p.m., "
        "and there is free parking on Oak Avenue.",
    ),
    Language.ES: (
        "Gracias por llamar a Maple Realty, le habla Sarah. ¿En qué puedo ayudarle hoy?",
        "La casa de tres recámaras en la calle Maple 42 tiene un precio de 649.000 dólares "
        "e incluye cochera para dos autos.",
        "La casa abierta es este sábado de una a cuatro de la tarde, "
        "y hay estacionamiento gratuito en la avenida Oak.",
    ),
    Language.ZH: (
        "感谢您致电枫叶地产，我是莎拉。请问今天有什么可以帮您？",
        "枫树街42号的三居室住宅挂牌价为64.9万美元，并带有双车位车库。",
        "开放参观时间是本周六下午一点到四点，橡树大道上可以免费停车。",
    ),
}
PERSONAS: tuple[Persona, ...] = (Persona.PROFESSIONAL, Persona.AUTHORITATIVE)
TTFA_PERSONA = Persona.PROFESSIONAL
TTFA_FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat.ULAW_8000,
    OutputFormat.MP3_44100_128,
    OutputFormat.PCM_16000,
)
TTFA_WARM_UP = 3
AIM_RTF = 200.0
AIM_TTFA_MS = 20.0

# The subset of the eSpeak NG C API (speak_lib.h) the raw baseline needs.
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class CellTiming:
    """One (language, persona) cell: audio of one trial and the median trial's times."""

    audio_s: float
    cpu_s: float
    wall_s: float

    @property
    def rtf_cpu(self) -> float:
        return self.audio_s / self.cpu_s

    @property
    def rtf_wall(self) -> float:
        return self.audio_s / self.wall_s


@dataclass(frozen=True)
class CellResult:
    language: Language
    persona: Persona
    ours: CellTiming
    raw: CellTiming


@dataclass(frozen=True)
class TtfaResult:
    language: Language
    wire: OutputFormat
    audio_s: float
    timings_ms: list[float]
    raw_synth_ms: list[float]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def _cell_timing(
    samples: int, trials: int, rate: int, cpu: list[float], wall: list[float]
) -> CellTiming:
    return CellTiming(samples / trials / rate, statistics.median(cpu), statistics.median(wall))


# The raw baseline: libespeak-ng in a child process, answering one JSON request per line.


class _RawSynth:
    """libespeak-ng with the thinnest Python around it: synthesize, copy the samples out."""

    def __init__(self) -> None:
        self.lib, self.sample_rate = load_library()
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._on_audio)  # referenced while the library uses it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, samples: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(samples, count * 2))
        return 0

    def select(self, language: Language, voice: OfflineVoice) -> None:
        name = f"{OFFLINE_LANGUAGE_VOICES[language]}+{voice.variant}".encode()
        if self.lib.espeak_SetVoiceByName(name) != 0:
            raise RuntimeError(f"no voice {name.decode()}")
        self.lib.espeak_SetParameter(_PARAM_RATE, voice.rate_wpm, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self.lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)

    def synthesize(self, text: str) -> bytes:
        encoded = text.encode("utf-8")
        self._chunks = []
        self.lib.espeak_Synth(
            encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        return b"".join(self._chunks)

    def time_cell(
        self, language: Language, persona: Persona, trials: int, repeat: int
    ) -> CellTiming:
        sentences = SENTENCES[language]
        self.select(language, PROFILES[persona].offline)
        for text in sentences:  # warm-up: voice data, dictionaries
            self.synthesize(text)
        samples = 0
        cpu: list[float] = []
        wall: list[float] = []
        for _ in range(trials):
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            for _ in range(repeat):
                for text in sentences:
                    samples += len(self.synthesize(text)) // 2
            cpu.append(time.process_time() - cpu_start)
            wall.append(time.perf_counter() - wall_start)
        return _cell_timing(samples, trials, self.sample_rate, cpu, wall)

    def time_sentence(self, language: Language, runs: int) -> list[float]:
        text = SENTENCES[language][0]
        self.select(language, PROFILES[TTFA_PERSONA].offline)
        for _ in range(TTFA_WARM_UP):
            self.synthesize(text)
        timings = []
        for _ in range(runs):
            start = time.perf_counter()
            self.synthesize(text)
            timings.append((time.perf_counter() - start) * 1000)
        return timings


def run_raw_worker(requests: IO[str], answers: IO[str]) -> None:
    """Child-process entry point: answer each JSON request line with one JSON line."""
    raw = _RawSynth()
    for line in requests:
        request: dict[str, Any] = json.loads(line)
        answer: object
        if request["op"] == "info":
            version = raw.lib.espeak_Info(None)
            answer = {"version": version.decode() if version else "?", "rate": raw.sample_rate}
        elif request["op"] == "cell":
            language, persona = Language(request["language"]), Persona(request["persona"])
            answer = asdict(raw.time_cell(language, persona, request["trials"], request["repeat"]))
        elif request["op"] == "sentence":
            answer = raw.time_sentence(Language(request["language"]), request["runs"])
        else:
            raise ValueError(f"unknown request {request!r}")
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


class RawWorker:
    """The parent's handle on the child process that runs the raw baseline."""

    def __init__(self) -> None:
        command = [sys.executable, str(Path(__file__).resolve()), "--raw-worker"]
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        if self._process.stdin is None or self._process.stdout is None:
            raise RuntimeError("no pipes to the raw eSpeak NG worker")
        self._requests: IO[str] = self._process.stdin
        self._answers: IO[str] = self._process.stdout

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._requests.close()  # the worker's loop ends at end of input
        self._process.wait(timeout=30)

    def _ask(self, **request: object) -> Any:
        self._requests.write(json.dumps(request) + "\n")
        self._requests.flush()
        line = self._answers.readline()
        if not line:
            raise RuntimeError("the raw eSpeak NG worker exited (its stderr is above)")
        return json.loads(line)

    def info(self) -> tuple[str, int]:
        answer = self._ask(op="info")
        return str(answer["version"]), int(answer["rate"])

    def time_cell(
        self, language: Language, persona: Persona, trials: int, repeat: int
    ) -> CellTiming:
        answer = self._ask(
            op="cell", language=language, persona=persona, trials=trials, repeat=repeat
        )
        return CellTiming(float(answer["audio_s"]), float(answer["cpu_s"]), float(answer["wall_s"]))

    def time_sentence(self, language: Language, runs: int) -> list[float]:
        return [float(ms) for ms in self._ask(op="sentence", language=language, runs=runs)]


# Ours: the shared engine and the provider, in this process.


async def time_engine_cell(
    language: Language, persona: Persona, trials: int, repeat: int
) -> CellTiming:
    engine = shared_engine()
    await engine.start()
    sentences = SENTENCES[language]
    voice = PROFILES[persona].offline
    for text in sentences:
        await engine.synthesize(text, language, voice)
    samples = 0
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(trials):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for _ in range(repeat):
            for text in sentences:
                samples += (await engine.synthesize(text, language, voice)).size
        cpu.append(time.process_time() - cpu_start)
        wall.append(time.perf_counter() - wall_start)
    return _cell_timing(samples, trials, engine.sample_rate, cpu, wall)


async def _first_chunk_ms(provider: EspeakProvider, request: ProviderRequest) -> float:
    start = time.perf_counter()
    stream = provider.stream(request, ProviderUsage())
    try:
        await anext(stream)
        return (time.perf_counter() - start) * 1000
    finally:
        await stream.aclose()


async def time_first_audio(
    language: Language, wire: OutputFormat, runs: int
) -> tuple[float, list[float]]:
    """The sentence's audio seconds and its TTFA over `runs` runs."""
    engine = shared_engine()
    await engine.start()
    provider = EspeakProvider(engine)
    profile = PROFILES[TTFA_PERSONA]
    text = SENTENCES[language][0]
    request = ProviderRequest(
        text=text,
        language=language,
        profile=profile,
        voice=profile.voice_for(language),
        wire=spec_of(wire),
    )
    for _ in range(TTFA_WARM_UP):  # voice data, encoder and resampler set-up
        await _first_chunk_ms(provider, request)
    timings = [await _first_chunk_ms(provider, request) for _ in range(runs)]
    pcm = await engine.synthesize(text, language, profile.offline)
    return pcm.size / engine.sample_rate, timings


# Report.


def pin_to_one_cpu() -> str:
    if sys.platform != "linux":
        return "not pinned (no sched_setaffinity here)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"both processes pinned to CPU {cpu}"


def print_header(version: str, rate: int, pinning: str, args: argparse.Namespace) -> None:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("numpy", "soundfile", "soxr", "espeakng-loader")
    )
    print("# Offline engine benchmark: eSpeak NG through EspeakEngine / EspeakProvider")
    print()
    print(f"- Machine: {platform.platform()}; {cpu_model()}; {os.cpu_count()} CPUs; {pinning}")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()})")
    print(f"- {versions}; libsndfile {soundfile.__libsndfile_version__}")
    print(f"- eSpeak NG {version} (espeakng-loader's libespeak-ng), {rate} Hz")
    print(
        f"- Workload: {args.trials} trials × {args.repeat} passes over 3 sentences per cell "
        f"(median trial shown); TTFA over {args.ttfa_runs} runs after {TTFA_WARM_UP} "
        f"warm-up runs, persona {TTFA_PERSONA.value}"
    )
    print()


def print_rtf_table(cells: Sequence[CellResult]) -> None:
    print("## Real-time factor (audio seconds per second; one trial of each cell)")
    print()
    print(
        "| language | persona | audio s | CPU s | RTF (CPU) | RTF (wall) | raw RTF (CPU) "
        "| CPU per audio s vs raw | aim ≥ 200× |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for cell in cells:
        ours, raw = cell.ours, cell.raw
        print(
            f"| {cell.language.value} | {cell.persona.value} | {ours.audio_s:.2f} "
            f"| {ours.cpu_s:.4f} | {ours.rtf_cpu:.0f}× | {ours.rtf_wall:.0f}× "
            f"| {raw.rtf_cpu:.0f}× | {raw.rtf_cpu / ours.rtf_cpu:.3f} "
            f"| {'yes' if ours.rtf_cpu >= AIM_RTF else 'NO'} |"
        )
    audio = sum(cell.ours.audio_s for cell in cells)
    cpu = sum(cell.ours.cpu_s for cell in cells)
    wall = sum(cell.ours.wall_s for cell in cells)
    raw_rtf = sum(cell.raw.audio_s for cell in cells) / sum(cell.raw.cpu_s for cell in cells)
    ratio = raw_rtf / (audio / cpu)
    print(
        f"| **all** | | {audio:.2f} | {cpu:.4f} | {audio / cpu:.0f}× | {audio / wall:.0f}× "
        f"| {raw_rtf:.0f}× | {ratio:.3f} | {'yes' if audio / cpu >= AIM_RTF else 'NO'} |"
    )
    print()
    print(
        f"Our wrapping costs {(ratio - 1) * 100:+.1f} % CPU per second of audio over raw "
        "eSpeak NG (all cells)."
    )
    print()


def print_ttfa_table(results: Sequence[TtfaResult]) -> None:
    print("## Time to first audio through EspeakProvider.stream (one sentence)")
    print()
    print(
        "| language | wire format | sentence audio s | median ms | p95 ms | raw synth median ms "
        "| median vs raw | aim ≤ 20 ms (p95) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for result in results:
        median = statistics.median(result.timings_ms)
        p95 = percentile(result.timings_ms, 0.95)
        raw = statistics.median(result.raw_synth_ms)
        print(
            f"| {result.language.value} | {result.wire.value} | {result.audio_s:.2f} "
            f"| {median:.2f} | {p95:.2f} | {raw:.2f} | {median / raw:.2f}× "
            f"| {'yes' if p95 <= AIM_TTFA_MS else 'NO'} |"
        )
    print()
    print(
        "TTFA is synthesis of the full sentence, its resampling, and the encoding of the "
        "provider's first 250 ms block; the raw baseline is synthesis alone."
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--trials", type=int, default=7, help="timed trials per cell")
    parser.add_argument("--repeat", type=int, default=6, help="passes over the sentences a trial")
    parser.add_argument("--ttfa-runs", type=int, default=30, help="timed TTFA runs per format")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--raw-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.trials, args.repeat, args.ttfa_runs) < 1:
        parser.error("--trials, --repeat and --ttfa-runs must be at least 1")
    return args


def measure(raw: RawWorker, args: argparse.Namespace) -> tuple[list[CellResult], list[TtfaResult]]:
    """Ours and the raw baseline, cell by cell, alternating."""
    cells: list[CellResult] = []
    for language in SENTENCES:
        for persona in PERSONAS:
            ours = asyncio.run(time_engine_cell(language, persona, args.trials, args.repeat))
            baseline = raw.time_cell(language, persona, args.trials, args.repeat)
            cells.append(CellResult(language, persona, ours, baseline))
    first_audio: list[TtfaResult] = []
    for language in SENTENCES:
        for wire in TTFA_FORMATS:
            audio_s, timings = asyncio.run(time_first_audio(language, wire, args.ttfa_runs))
            baseline_ms = raw.time_sentence(language, args.ttfa_runs)
            first_audio.append(TtfaResult(language, wire, audio_s, timings, baseline_ms))
    return cells, first_audio


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.raw_worker:
        run_raw_worker(sys.stdin, sys.stdout)
        return 0
    pinning = "not pinned (--no-pin)" if args.no_pin else pin_to_one_cpu()
    engine = shared_engine()
    try:
        with RawWorker() as raw:
            version, raw_rate = raw.info()
            cells, first_audio = measure(raw, args)
    finally:
        # Explicitly: at interpreter exit the engine's executor no longer accepts work.
        engine.close()
    if engine.sample_rate != raw_rate:
        raise RuntimeError(f"sample rates differ: ours {engine.sample_rate}, raw {raw_rate}")
    print_header(version, raw_rate, pinning, args)
    print_rtf_table(cells)
    print_ttfa_table(first_audio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
