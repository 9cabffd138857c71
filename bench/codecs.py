"""Benchmark our audio codecs (app.audio.g711, app.audio.codecs) against their baselines.

What it measures
----------------
Throughput on 10 s of deterministic, speech-like synthetic PCM (a gliding 85-215 Hz voice
with formant-weighted harmonics, syllable-rate loudness, pauses between phrases and
fricative-like noise bursts; seeded, and sampled directly at each rate so no resampler is
involved in making it):

* G.711 at 8 kHz: `g711.ulaw_encode` / `ulaw_decode` against `audioop.lin2ulaw` /
  `ulaw2lin`, and `alaw_encode` / `alaw_decode` against `audioop.lin2alaw` / `alaw2lin`
  (outputs are also checked to be bit-exact);
* MP3: `codecs.encode` for mp3_44100_128 and mp3_22050_32, given PCM already at the format's
  rate, against the raw `soundfile.write(..., format="MP3")` with the same bitrate settings but
  without our post-processing (`mp3.audio_frames`: dropping the ID3 tag and Xing/Info frame);
* resampling eSpeak NG's 22050 Hz to 8000 Hz (the telephony path) and to 44100 Hz (the
  mp3_44100_128 path) with `codecs.resample` against a direct `soxr.resample(..., quality="HQ")`
  call, plus `audioop.ratecv` (the standard library's resampler, lower quality) for reference.

Each case is timed as `--rounds` rounds of a fixed number of calls, ours and the baseline
alternating round by round; the median round is reported as MB/s of 16-bit PCM (input for
encoders and resamplers, output for decoders), as seconds of audio per second, and as the
speed ratio ours ÷ baseline (above 1: ours is faster).

Aim: μ-law encoding at least as fast as `audioop.lin2ulaw` (ratio ≥ 1).

How to run
----------
From the repository root, with the repo's requirements installed::

    python bench/codecs.py [--rounds 15]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from app.audio import codecs, g711
from app.audio.formats import FormatSpec, OutputFormat, spec_of
from bench.machine import cpu_model

with warnings.catch_warnings():
    # audioop is the baseline; it is deprecated since 3.11 (PEP 594) and warns on import.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import audioop

Int16Array = npt.NDArray[np.int16]

SECONDS = 10.0
SEED = 20240611
ESPEAK_RATE = 22050
TELEPHONY_RATE = 8000
AIM_ULAW_RATIO = 1.0


def speech_like(rate: int, seconds: float = SECONDS, seed: int = SEED) -> Int16Array:
    """Deterministic voiced/unvoiced signal with speech's rhythm and spectrum, at `rate`."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 150 + 45 * np.sin(2 * np.pi * 0.35 * t) + 20 * np.sin(2 * np.pi * 3.1 * t + 1.0)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = np.zeros_like(t)
    for k in range(1, 41):
        harmonic = k * f0
        weight = (
            1.0
            + 3.0 * np.exp(-(((harmonic - 650) / 180) ** 2))
            + 1.5 * np.exp(-(((harmonic - 1700) / 260) ** 2))
            + 0.6 * np.exp(-(((harmonic - 2600) / 320) ** 2))
        ) / k
        voiced += np.where(harmonic < 0.45 * rate, weight, 0.0) * np.sin(k * phase)
    syllables = np.clip(np.sin(2 * np.pi * 4.2 * t + 0.8 * np.sin(2 * np.pi * 0.5 * t)), 0, 1)
    phrase = (np.sin(2 * np.pi * t / 2.3) > -0.8).astype(np.float64)  # a pause every 2.3 s
    noise_gate = (np.sin(2 * np.pi * 1.3 * t + 0.4) > 0.85).astype(np.float64)
    fricative = rng.standard_normal(t.size) * noise_gate * 0.35
    signal = (voiced * syllables**0.7 + fricative) * phrase
    peak = float(np.max(np.abs(signal)))
    return np.round(signal / peak * 0.7 * 32767).astype(np.int16)


@dataclass(frozen=True)
class Case:
    """One operation: ours and its baseline, over the same input."""

    operation: str
    ours: str
    baseline: str
    run_ours: Callable[[], object]
    run_baseline: Callable[[], object]
    pcm_bytes: int  # 16-bit PCM bytes one call processes
    audio_seconds: float
    calls: int  # per timed round
    check: str


@dataclass(frozen=True)
class CaseResult:
    case: Case
    ours_s: float  # median seconds per call
    baseline_s: float

    @property
    def ratio(self) -> float:
        return self.baseline_s / self.ours_s


def _timed_round(run: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        run()
    return (time.perf_counter() - start) / calls


def measure(case: Case, rounds: int) -> CaseResult:
    for _ in range(2):  # warm-up: tables, libraries, allocator
        case.run_ours()
        case.run_baseline()
    ours: list[float] = []
    baseline: list[float] = []
    for _ in range(rounds):
        ours.append(_timed_round(case.run_ours, case.calls))
        baseline.append(_timed_round(case.run_baseline, case.calls))
    return CaseResult(case, statistics.median(ours), statistics.median(baseline))


def _bit_exact(ours: bytes, reference: bytes) -> str:
    return "bit-exact" if ours == reference else "DIFFERENT"


def g711_cases(pcm: Int16Array) -> list[Case]:
    raw = pcm.astype("<i2").tobytes()
    ulaw = g711.ulaw_encode(pcm)
    alaw = g711.alaw_encode(pcm)
    # audioop works in native byte order: little-endian on the machines we run on.
    checks = (
        _bit_exact(ulaw, audioop.lin2ulaw(raw, 2)),
        _bit_exact(g711.ulaw_decode(ulaw).astype("<i2").tobytes(), audioop.ulaw2lin(ulaw, 2)),
        _bit_exact(alaw, audioop.lin2alaw(raw, 2)),
        _bit_exact(g711.alaw_decode(alaw).astype("<i2").tobytes(), audioop.alaw2lin(alaw, 2)),
    )
    runs: tuple[tuple[str, str, str, Callable[[], object], Callable[[], object]], ...] = (
        (
            "μ-law encode, 8 kHz",
            "g711.ulaw_encode",
            "audioop.lin2ulaw",
            lambda: g711.ulaw_encode(pcm),
            lambda: audioop.lin2ulaw(raw, 2),
        ),
        (
            "μ-law decode, 8 kHz",
            "g711.ulaw_decode",
            "audioop.ulaw2lin",
            lambda: g711.ulaw_decode(ulaw),
            lambda: audioop.ulaw2lin(ulaw, 2),
        ),
        (
            "A-law encode, 8 kHz",
            "g711.alaw_encode",
            "audioop.lin2alaw",
            lambda: g711.alaw_encode(pcm),
            lambda: audioop.lin2alaw(raw, 2),
        ),
        (
            "A-law decode, 8 kHz",
            "g711.alaw_decode",
            "audioop.alaw2lin",
            lambda: g711.alaw_decode(alaw),
            lambda: audioop.alaw2lin(alaw, 2),
        ),
    )
    seconds = pcm.size / TELEPHONY_RATE
    return [
        Case(operation, ours, baseline, run_ours, run_baseline, len(raw), seconds, 200, check)
        for (operation, ours, baseline, run_ours, run_baseline), check in zip(
            runs, checks, strict=True
        )
    ]


def mp3_cases() -> list[Case]:
    cases: list[Case] = []
    for fmt in (OutputFormat.MP3_44100_128, OutputFormat.MP3_22050_32):
        spec = spec_of(fmt)
        pcm = speech_like(spec.sample_rate)
        # The same settings codecs.encode uses, read from it so the two cannot drift apart.
        level = codecs._MP3_COMPRESSION_LEVEL[(spec.sample_rate, spec.bitrate_kbps or 0)]

        def ours(pcm: Int16Array = pcm, spec: FormatSpec = spec) -> bytes:
            return codecs.encode(pcm, spec.sample_rate, spec)

        def raw(pcm: Int16Array = pcm, rate: int = spec.sample_rate, level: float = level) -> bytes:
            buffer = io.BytesIO()
            sf.write(
                buffer,
                pcm,
                rate,
                format="MP3",
                bitrate_mode="CONSTANT",
                compression_level=level,
            )
            return buffer.getvalue()

        ours_bytes, raw_bytes = ours(), raw()
        check = (
            f"{len(ours_bytes):,} B vs {len(raw_bytes):,} B raw; "
            f"{codecs.duration_ms(ours_bytes, spec) / 1000:.2f} s of frames"
        )
        cases.append(
            Case(
                f"MP3 encode, {fmt.value}",
                "codecs.encode",
                'sf.write(format="MP3")',
                ours,
                raw,
                pcm.nbytes,
                pcm.size / spec.sample_rate,
                1,
                check,
            )
        )
    return cases


def resample_cases(pcm: Int16Array) -> list[Case]:
    cases: list[Case] = []
    raw = pcm.astype("<i2").tobytes()
    seconds = pcm.size / ESPEAK_RATE
    for to_rate in (TELEPHONY_RATE, 44100):
        reference = codecs.resample(pcm, ESPEAK_RATE, to_rate)

        def ours(to_rate: int = to_rate) -> Int16Array:
            return codecs.resample(pcm, ESPEAK_RATE, to_rate)

        def direct(to_rate: int = to_rate) -> object:
            return soxr.resample(pcm, ESPEAK_RATE, to_rate, quality="HQ")

        def ratecv(to_rate: int = to_rate) -> bytes:
            return audioop.ratecv(raw, 2, 1, ESPEAK_RATE, to_rate, None)[0]

        same = np.array_equal(np.asarray(direct()), reference)
        label = f"resample 22050→{to_rate} Hz"
        cases.append(
            Case(
                label,
                "codecs.resample",
                'soxr.resample(quality="HQ")',
                ours,
                direct,
                pcm.nbytes,
                seconds,
                20,
                f"{reference.size:,} samples; {'identical' if same else 'DIFFERENT'}",
            )
        )
        ratecv_size = len(ratecv()) // 2
        cases.append(
            Case(
                label,
                "codecs.resample",
                "audioop.ratecv (reference)",
                ours,
                ratecv,
                pcm.nbytes,
                seconds,
                20,
                f"{reference.size:,} vs {ratecv_size:,} samples",
            )
        )
    return cases


def print_header(args: argparse.Namespace) -> None:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("numpy", "soundfile", "soxr")
    )
    print("# Codec benchmark: app.audio.g711 / app.audio.codecs against their baselines")
    print()
    print(f"- Machine: {platform.platform()}; {cpu_model()}")
    print(f"- Python {platform.python_version()} ({platform.python_implementation()})")
    print(f"- {versions}; libsndfile {sf.__libsndfile_version__}")
    print(
        f"- Input: {SECONDS:.0f} s of synthetic speech-like PCM (seed {SEED}), 16-bit mono; "
        f"median of {args.rounds} rounds, ours and baseline alternating"
    )
    print()


def print_table(results: Sequence[CaseResult]) -> None:
    print(
        "| operation | ours | ours MB/s | ours audio s/s | baseline | baseline MB/s "
        "| baseline audio s/s | speed ours ÷ baseline | output |"
    )
    print("|---|---|---:|---:|---|---:|---:|---:|---|")
    for result in results:
        case = result.case
        print(
            f"| {case.operation} | `{case.ours}` | {case.pcm_bytes / result.ours_s / 1e6:.1f} "
            f"| {case.audio_seconds / result.ours_s:,.0f} | `{case.baseline}` "
            f"| {case.pcm_bytes / result.baseline_s / 1e6:.1f} "
            f"| {case.audio_seconds / result.baseline_s:,.0f} | {result.ratio:.2f}× "
            f"| {case.check} |"
        )
    print()
    ulaw = next(r for r in results if r.case.operation.startswith("μ-law encode"))
    met = "met" if ulaw.ratio >= AIM_ULAW_RATIO else "NOT met"
    print(
        f"Aim μ-law encode ≥ {AIM_ULAW_RATIO:.0f}× audioop.lin2ulaw: {met} ({ulaw.ratio:.2f}×). "
        "MB/s counts 16-bit PCM: the encoders' and resamplers' input, the decoders' output."
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per case")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cases = [
        *g711_cases(speech_like(TELEPHONY_RATE)),
        *mp3_cases(),
        *resample_cases(speech_like(ESPEAK_RATE)),
    ]
    results = [measure(case, args.rounds) for case in cases]
    print_header(args)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
