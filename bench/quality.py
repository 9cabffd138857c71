"""Benchmark the quality score per second of audio, and what recording requests costs.

What it measures
----------------
Part 1, recording (skip with `--no-recording`): the cache-hit benchmark's load
(bench/cache_hit.py: the same cached texts, callers and levels) against two API processes on
one private Redis, as `make run` starts them: one as shipped, recording every request (the
rollups behind /performance, the analytics event, the Prometheus metrics and the request
middleware), and the baseline, the same app with `ANALYTICS__RECORD_REQUESTS=false`. They
alternate level by level, the order flipping every round. Reported per level: throughput,
server time and server CPU per request of each, and the overhead, 1 − on ÷ off.
Aim: ≤ 10 % throughput cost.

Part 2, scoring:
CPU cost of scoring real eSpeak NG speech (two sentences in each of English, Spanish and
Mandarin, each said by two personas: about a minute in all) at 8000, 16000, 22050 and 44100 Hz, the
speech resampled from eSpeak NG's 22050 Hz with `codecs.resample`:

* per segment: each sentence scored on its own with `quality.measure(pcm, rate, chars)`, as
  the service scores every new segment (the figure the aim applies to);
* whole: all of it joined into one clip and scored once (the analysis route's long uploads);
* of which loudness: `loudness.integrated_loudness` alone (ITU-R BS.1770-4), the largest part;
* report: `quality_report.report(measures)` on top of a segment's measures.

The baseline, measured in the same run over the same samples: a bare numpy pass that converts
the int16 samples to float and takes the RMS of every 20 ms frame
(`np.sqrt(np.mean(frames * frames, axis=1))`), the least any level-based measure does.

Each case is timed as `--rounds` rounds, ours and the baseline alternating round by round,
each round one pass over all the clips; the median round is reported as milliseconds per
second of audio, and as the ratio ours ÷ baseline. The process is pinned to one CPU
(`--no-pin` to turn that off), so the figures are for one core.

Aim: ≤ 5 ms per second of audio per segment, on one core. (Part 1 runs before the pinning.)

How to run
----------
From the repository root, with the repo's requirements installed::

    .venv/bin/python bench/quality.py [--rounds 25] [--no-pin]
        [--recording-rounds 3] [--recording-requests 1500] [--no-recording]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import numpy.typing as npt

from app.audio import codecs, loudness, quality, quality_report
from app.audio.formats import OutputFormat
from app.tts.models import Language, Persona
from app.tts.personas import PROFILES
from app.tts.providers.espeak import shared_engine
from app.tts.segmenting import spoken_length
from bench import cache_hit
from bench.machine import cpu_model
from bench.services import api_env, api_pid, private_redis
from tests.processes import ApiProcess

Int16Array = npt.NDArray[np.int16]

RATES = (8000, 16000, 22050, 44100)
AIM_MS_PER_AUDIO_S = 5.0
AIM_RECORDING_COST = 0.10
ON, OFF = "on", "off (baseline)"
PATH = cache_hit.SYNTHESIZE_PATH
SENTENCES = {
    Language.EN: (
        "Welcome to the open house at 42 Maple Street; the kitchen was remodeled last spring.",
        "Would you like to book a private showing this Saturday afternoon?",
    ),
    Language.ES: (
        "Bienvenidos a la casa abierta; la cocina se renovó la primavera pasada.",
        "¿Le gustaría agendar una visita privada este sábado por la tarde?",
    ),
    Language.ZH: (
        "欢迎来到枫树街四十二号的开放日，厨房去年春天刚刚翻新。",
        "您想预约这个星期六下午的私人看房吗？",
    ),
}
PERSONAS = (Persona.PROFESSIONAL, Persona.CASUAL)
FRAME_S = 0.02


@dataclass(frozen=True)
class Clip:
    pcm: Int16Array
    chars: int


@dataclass(frozen=True)
class Row:
    rate: int
    audio_s: float
    segments: int
    per_segment_s: float  # median round, all segments scored one by one
    whole_s: float  # median round, the joined clip scored once
    loudness_s: float  # median round, loudness alone over the segments
    report_s: float  # median round, reports for the segments' measures
    baseline_s: float  # median round, the bare numpy pass over the segments

    def ms_per_audio_s(self, seconds: float) -> float:
        return seconds / self.audio_s * 1000


async def speak() -> tuple[list[Clip], int]:
    """Every sentence in every persona, from the offline engine."""
    engine = shared_engine()
    await engine.start()
    # Mandarin counts by spoken length (an ideograph is three), as the service scores it.
    clips = [
        Clip(
            await engine.synthesize(text, language, PROFILES[persona].offline),
            spoken_length(text),
        )
        for language, texts in SENTENCES.items()
        for text in texts
        for persona in PERSONAS
    ]
    rate = engine.sample_rate
    engine.close()
    return clips, rate


def baseline(pcm: Int16Array, rate: int) -> npt.NDArray[np.float64]:
    """The bare numpy pass: int16 to float, the RMS of each 20 ms frame."""
    frame = round(rate * FRAME_S)
    x = pcm[: pcm.size - pcm.size % frame].astype(np.float64) / 32768
    frames = x.reshape(-1, frame)
    rms: npt.NDArray[np.float64] = np.sqrt(np.mean(frames * frames, axis=1))
    return rms


def _round(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure_rate(clips: Sequence[Clip], source_rate: int, rate: int, rounds: int) -> Row:
    resampled = [Clip(codecs.resample(clip.pcm, source_rate, rate), clip.chars) for clip in clips]
    whole = np.concatenate([clip.pcm for clip in resampled])
    whole_chars = sum(clip.chars for clip in resampled)
    measured = [quality.measure(clip.pcm, rate, clip.chars) for clip in resampled]
    samples = [clip.pcm.astype(np.float64) / 32768 for clip in resampled]

    cases: dict[str, Callable[[], object]] = {
        "per_segment": lambda: [quality.measure(c.pcm, rate, c.chars) for c in resampled],
        "whole": lambda: quality.measure(whole, rate, whole_chars),
        "loudness": lambda: [loudness.integrated_loudness(x, rate) for x in samples],
        "report": lambda: [quality_report.report(m) for m in measured],
        "baseline": lambda: [baseline(c.pcm, rate) for c in resampled],
    }
    for run in cases.values():  # warm-up: FFT plans, cached filter responses, allocator
        run()
        run()
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, run in cases.items():
            timings[name].append(_round(run))
    median = {name: statistics.median(values) for name, values in timings.items()}
    return Row(
        rate=rate,
        audio_s=whole.size / rate,
        segments=len(resampled),
        per_segment_s=median["per_segment"],
        whole_s=median["whole"],
        loudness_s=median["loudness"],
        report_s=median["report"],
        baseline_s=median["baseline"],
    )


def pin_to_one_cpu() -> str:
    if sys.platform != "linux":
        return "not pinned (no sched_setaffinity here)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def print_header(args: argparse.Namespace, pinning: str, clips: Sequence[Clip], rate: int) -> None:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("numpy", "soxr", "espeakng-loader")
    )
    audio_s = sum(clip.pcm.size for clip in clips) / rate
    print("# Quality scoring benchmark: app.audio.quality.measure per second of audio")
    print()
    print(f"- Machine: {platform.platform()}; {cpu_model()}; {os.cpu_count()} CPUs; {pinning}")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()})")
    print(f"- {versions}")
    print(
        f"- Input: {len(clips)} eSpeak NG segments ({len(SENTENCES)} languages × 2 sentences × "
        f"{len(PERSONAS)} personas), {audio_s:.1f} s at {rate} Hz, resampled to each rate"
    )
    print(f"- Median of {args.rounds} rounds; every case and the baseline alternate each round")
    print()


def print_table(rows: Sequence[Row]) -> None:
    print(
        "| rate Hz | audio s | per segment ms/audio s | whole clip ms/audio s "
        "| of which loudness ms/audio s | report ms/segment | baseline ms/audio s "
        "| per segment ÷ baseline | aim ≤ 5 ms/audio s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        per_segment = row.ms_per_audio_s(row.per_segment_s)
        print(
            f"| {row.rate} | {row.audio_s:.1f} | {per_segment:.2f} "
            f"| {row.ms_per_audio_s(row.whole_s):.2f} | {row.ms_per_audio_s(row.loudness_s):.2f} "
            f"| {row.report_s / row.segments * 1000:.3f} "
            f"| {row.ms_per_audio_s(row.baseline_s):.3f} "
            f"| {row.per_segment_s / row.baseline_s:.1f}× "
            f"| {'met' if per_segment <= AIM_MS_PER_AUDIO_S else 'NOT met'} |"
        )
    print()
    worst = max(rows, key=lambda r: r.per_segment_s / r.audio_s)
    print(
        f"Slowest rate: {worst.rate} Hz at {worst.ms_per_audio_s(worst.per_segment_s):.2f} ms "
        f"per second of audio, {worst.audio_s / worst.per_segment_s:.0f}× "
        "faster than real time on one core. The baseline is a single RMS pass; the score adds "
        "the loudness filter (two FFTs per chunk), spectral flatness and the end analysis."
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds per case")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument("--no-recording", action="store_true", help="skip part 1")
    parser.add_argument("--recording-rounds", type=int, default=3, help="part 1 rounds")
    parser.add_argument(
        "--recording-requests", type=int, default=1500, help="part 1 requests per level"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.recording_rounds < 1 or args.recording_requests < 5:
        parser.error("--rounds must be at least 1, --recording-requests at least 5")
    return args


def measure_recording(args: argparse.Namespace) -> dict[tuple[int, str], cache_hit.Cell]:
    """The cache-hit load against the app recording (ON) and not recording (OFF)."""
    load = argparse.Namespace(
        rounds=args.recording_rounds, requests=args.recording_requests, caller="raw"
    )
    bodies = cache_hit.request_bodies(OutputFormat.MP3_44100_128.value)
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url:
            quiet_env = api_env(redis_url, ANALYTICS__RECORD_REQUESTS="false")
            with ApiProcess(api_env(redis_url), work) as on, ApiProcess(quiet_env, work) as off:
                cache_hit.warm_cache(on, redis_url, bodies)
                targets = (
                    cache_hit.Target(ON, on.base_url + PATH, api_pid(on), True, redis_url),
                    cache_hit.Target(OFF, off.base_url + PATH, api_pid(off), True, redis_url),
                )
                return asyncio.run(cache_hit.measure(targets, bodies, load))


def print_recording(cells: dict[tuple[int, str], cache_hit.Cell], args: argparse.Namespace) -> None:
    print("## Recording requests on the cache-hit path: app as shipped against recording off")
    print()
    print(
        f"- {len(cache_hit.TEXTS)} cached texts in turn, mp3_44100_128; "
        f"{args.recording_requests} requests per level and round, {args.recording_rounds} "
        "rounds; raw HTTP/1.1 callers in this process; both servers on one private Redis"
    )
    print()
    cache_hit.print_cost_table(cells, ON, OFF, "recording", AIM_RECORDING_COST)
    print()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    recording = None if args.no_recording else measure_recording(args)
    pinning = "not pinned (--no-pin)" if args.no_pin else pin_to_one_cpu()
    clips, source_rate = asyncio.run(speak())
    rows = [measure_rate(clips, source_rate, rate, args.rounds) for rate in RATES]
    if recording is not None:
        print_recording(recording, args)
    print_header(args, pinning, clips, source_rate)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
