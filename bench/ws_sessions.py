"""Benchmark many concurrent WebSocket sessions (DESIGN §5) against one API process.

What it measures
----------------
One API process (started as `make run` starts it) with the audio cache disabled
(`CACHE__ENABLED=false`, so every sentence goes upstream) speaks to the fake ElevenLabs (first
byte after `--ttfb` s, default 0.25; the whole body right after). `--sessions` WebSocket
sessions (default 1000) are opened by `websockets` clients, started evenly over `--ramp` s
(default 25),
all in one asyncio loop per client process (`--client-procs`, default 1; the fake runs in a
thread of the parent process, not in a client process). Each session sends `start`
(`ulaw_8000`, 20 ms JSON frames), then two utterances of two sentences each, each utterance as
two text pieces, one sentence each, the space leading the second piece as LLM tokens carry
it, the second with `flush`; the second utterance is sent `--turn` s (default 20: the
caller speaks) after the first one's `mark` and `metrics` have arrived, then `end`.

Why a ramp and a turn: every sentence holds one of the 50 upstream slots for about the TTFB,
so the upstream can start about 50 / 0.27 s ≈ 185 sentences a second, whatever the gateway
does. A session asks for 4; 1,000 sessions asking within 5 s would need ~800 a second, and
any gateway honouring the limit would queue them. Spread over a 25 s ramp the demand is ~160
a second (~43 slots), and with a 20 s turn each session lasts ~28 s, so all of them are
connected at once: `peak open` in the table is the most sessions connected at the same
moment (from the clients' own open and close times).

Texts: a pool of `--texts` utterance pairs (default 40) that sessions take in turn; the cache
is off, so a repeated text still goes upstream, and streamed misses skip single-flight. A pool
keeps the fake's rendering (~20 ms of CPU per distinct text) out of the load: a warm-up pass
of one session per pair renders every text before the measured runs.

Per run: sessions completed/failed (an `error` message, a close before the end, a provider
other than ElevenLabs, or no end within `--max-seconds`), TTFA from the session's own `metrics`
minus the fake's TTFB (the gateway's overhead) p50/p95/p99, frames that arrived later than
their playback time (the client's clock: the first frame of an utterance starts playback,
frame k plays at first + the duration of frames 0..k-1; the 300 ms lead lets frames come
early, never late), the fake's peak concurrent requests, the API process's CPU (cores) and the
client processes' CPU (cores; near 1.0 per process means the client is the limit).

Aim: 0 failed, overhead p95 ≤ 50 ms, 0 late frames, peak upstream concurrency ≤ 50. Then the
same for each count of `--sweep` (default 1500,2000) to find where it breaks.

How to run
----------
From the repository root (redis-server installed: the benchmark starts its own)::

    python bench/ws_sessions.py [--sessions 1000] [--sweep 1500,2000] [--ttfb 0.25] \\
        [--ramp 5] [--client-procs 1] [--texts 40] [--max-seconds 60]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.version import version as websockets_version

from bench.services import (
    api_env,
    api_pid,
    machine_lines,
    percentile,
    private_redis,
    process_cpu_s,
)
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess

PATH = "/api/v1/voice/streaming/stream/"
FORMAT = "ulaw_8000"
BYTES_PER_SECOND = 8000  # μ-law 8 kHz: one byte a sample
AIM_OVERHEAD_P95_MS = 50.0
AIM_PEAK_CONCURRENT = 50
STREETS = ("Maple", "Oak", "Birch", "Cedar", "Elm", "Pine", "Willow", "Aspen")


def utterances(pair: int) -> list[tuple[str, str]]:
    """Two utterances of two sentences (~2 s of audio each at the fake's 14 chars/s)."""
    street = STREETS[pair % len(STREETS)]
    return [
        (f"Unit {pair} on {street} has three rooms.", f"It is open on Saturday {pair}."),
        (f"The price for {pair} is now lower.", f"Shall I book {street} {pair} for you?"),
    ]


@dataclass
class SessionResult:
    ok: bool = False
    failure: str = ""
    ttfa_ms: list[float] = field(default_factory=list)
    frames: int = 0
    late: int = 0
    max_late_ms: float = 0.0
    providers: list[str] = field(default_factory=list)
    # time.monotonic() is one clock for every process of the machine.
    opened_at: float = 0.0
    closed_at: float = 0.0


async def _run_session(
    url: str, number: int, pair: int, start_at: float, turn_s: float, max_seconds: float
) -> SessionResult:
    result = SessionResult()
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    try:
        async with asyncio.timeout(max_seconds):
            await _converse(url, number, pair, turn_s, result)
        result.ok = not result.failure
    except TimeoutError:
        result.failure = result.failure or "timeout"
    except (OSError, websockets.exceptions.WebSocketException) as exc:
        result.failure = result.failure or type(exc).__name__
    return result


async def _converse(url: str, number: int, pair: int, turn_s: float, result: SessionResult) -> None:
    async with websockets.connect(
        f"{url}{PATH}s{number}", max_size=None, open_timeout=None, ping_interval=None
    ) as ws:
        result.opened_at = time.monotonic()
        try:
            await _speak_utterances(ws, pair, turn_s, result)
        finally:
            result.closed_at = time.monotonic()


async def _speak_utterances(
    ws: ClientConnection, pair: int, turn_s: float, result: SessionResult
) -> None:
    await ws.send(json.dumps({"type": "start", "output_format": FORMAT, "frame_ms": 20}))
    ready = json.loads(await ws.recv())
    if ready.get("type") != "ready":
        result.failure = f"no ready: {ready.get('code', ready.get('type'))}"
        return
    for index, (first, second) in enumerate(utterances(pair)):
        if index:
            await asyncio.sleep(turn_s)  # the caller's turn
        uid = f"u{index}"
        await ws.send(json.dumps({"type": "text", "utterance_id": uid, "text": first}))
        await ws.send(
            json.dumps({"type": "text", "utterance_id": uid, "text": " " + second, "flush": True})
        )
        t0: float | None = None
        played_s = 0.0
        while True:
            raw = await ws.recv()
            now = time.monotonic()
            message = json.loads(raw)
            kind = message.get("type")
            if kind == "audio":
                if t0 is None:
                    t0 = now
                late_s = now - (t0 + played_s)
                if late_s > 0:
                    result.late += 1
                    result.max_late_ms = max(result.max_late_ms, late_s * 1000)
                payload: str = message["audio"]
                size = len(payload) * 3 // 4 - payload.count("=", -2)
                played_s += size / BYTES_PER_SECOND
                result.frames += 1
            elif kind == "metrics":
                result.ttfa_ms.append(float(message["ttfa_ms"]))
                result.providers.append(str(message["provider"]))
                break
            elif kind == "error":
                result.failure = result.failure or f"error {message.get('code')}"
    await ws.send(json.dumps({"type": "end"}))
    try:
        async with asyncio.timeout(10):
            async for _ in ws:
                pass
    except TimeoutError:
        result.failure = result.failure or "no close after end"


def client_worker(
    url: str,
    numbers: list[int],
    texts: int,
    ramp_s: float,
    turn_s: float,
    max_seconds: float,
    delay_s: float,
) -> tuple[list[SessionResult], float, float]:
    """One client process: its sessions in one asyncio loop; results, CPU s, wall s."""

    async def run() -> list[SessionResult]:
        base = time.monotonic() + delay_s
        total = max(1, max(numbers) + 1)
        return await asyncio.gather(
            *(
                _run_session(url, n, n % texts, base + ramp_s * n / total, turn_s, max_seconds)
                for n in numbers
            )
        )

    cpu, wall = time.process_time(), time.monotonic()
    results = asyncio.run(run())
    return results, time.process_time() - cpu, time.monotonic() - wall


@dataclass
class RunResult:
    sessions: int
    results: list[SessionResult]
    wall_s: float
    api_cores: float
    client_cores: list[float]
    peak_upstream: int
    upstream_requests: int

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    def overhead(self, fraction: float, ttfb_ms: float) -> float:
        return percentile([t - ttfb_ms for r in self.results for t in r.ttfa_ms], fraction)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.results)

    @property
    def late(self) -> int:
        return sum(r.late for r in self.results)

    @property
    def max_late_ms(self) -> float:
        return max((r.max_late_ms for r in self.results), default=0.0)

    @property
    def peak_open(self) -> int:
        """The most sessions connected at the same moment."""
        events = sorted(
            (t, step)
            for r in self.results
            if r.opened_at
            for t, step in ((r.opened_at, 1), (r.closed_at or r.opened_at, -1))
        )
        peak = open_now = 0
        for _, step in events:
            open_now += step
            peak = max(peak, open_now)
        return peak

    @property
    def late_sessions(self) -> int:
        return sum(r.late > 0 for r in self.results)

    def failures(self) -> str:
        counts = Counter(r.failure for r in self.results if not r.ok)
        return ", ".join(f"{why} × {n}" for why, n in counts.most_common(4)) or "–"

    def providers(self) -> str:
        counts = Counter(p for r in self.results for p in r.providers)
        return ", ".join(f"{p} {n}" for p, n in counts.most_common()) or "–"


def run_level(
    sessions: int,
    url: str,
    fake: FakeElevenLabs,
    pid: int,
    args: argparse.Namespace,
) -> RunResult:
    fake.reset()
    fake.behavior.ttfb_s = args.ttfb
    fake.behavior.max_concurrent_requests = 50
    procs = max(1, args.client_procs)
    shares = [list(range(i, sessions, procs)) for i in range(procs)]
    context = multiprocessing.get_context("spawn")
    api_cpu, wall = process_cpu_s(pid), time.monotonic()
    with context.Pool(procs) as pool:
        jobs = [
            pool.apply_async(
                client_worker,
                (url, share, args.texts, args.ramp, args.turn, args.max_seconds, 1.0),
            )
            for share in shares
            if share
        ]
        outcomes = [job.get() for job in jobs]
    wall_s = time.monotonic() - wall
    api_cores = (process_cpu_s(pid) - api_cpu) / wall_s
    stats = fake.stats()
    return RunResult(
        sessions=sessions,
        results=[r for results, _, _ in outcomes for r in results],
        wall_s=wall_s,
        api_cores=api_cores,
        client_cores=[cpu / max(w, 1e-9) for _, cpu, w in outcomes],
        peak_upstream=stats.peak_concurrent,
        upstream_requests=stats.total_requests,
    )


def print_report(args: argparse.Namespace, runs: list[RunResult], warm: RunResult) -> None:
    ttfb_ms = args.ttfb * 1000
    print("# WebSocket sessions: many concurrent calls against one API process")
    print()
    for line in machine_lines():
        print(line)
    print(
        f"- Workload: each session `start` ({FORMAT}, 20 ms JSON frames), 2 utterances × 2 "
        f"sentences (~8 s of audio), the second {args.turn:g} s (the caller's turn) after the "
        f"first's mark; sessions started evenly over {args.ramp:g} s; {args.texts} text pairs "
        f"taken in turn, cache disabled (every sentence upstream); fake TTFB {ttfb_ms:.0f} ms, "
        f"body right after"
    )
    print(
        f"- Clients: `websockets` {websockets_version}, {args.client_procs} client "
        f"process(es), one asyncio loop each; the fake runs in a thread of the parent"
    )
    print(
        f"- Warm-up: {warm.sessions} sessions (one per pair), {warm.failed} failed; "
        f"per-session bound {args.max_seconds:g} s"
    )
    print()
    print(
        "| sessions | peak open | completed | failed | overhead p50 ms | p95 ms | p99 ms "
        "| frames | late frames | sessions with late | max late ms | upstream peak "
        "| upstream requests | providers | API CPU cores | client CPU cores | wall s | failures |"
    )
    print(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
    )
    for run in runs:
        clients = "+".join(f"{c:.2f}" for c in run.client_cores)
        print(
            f"| {run.sessions} | {run.peak_open} | {run.sessions - run.failed} | {run.failed} "
            f"| {run.overhead(0.5, ttfb_ms):.1f} | {run.overhead(0.95, ttfb_ms):.1f} "
            f"| {run.overhead(0.99, ttfb_ms):.1f} | {run.frames:,} | {run.late:,} "
            f"| {run.late_sessions} | {run.max_late_ms:.0f} | {run.peak_upstream} "
            f"| {run.upstream_requests} | {run.providers()} | {run.api_cores:.2f} | {clients} "
            f"| {run.wall_s:.1f} | {run.failures()} |"
        )
    print()
    for run in runs:
        verdict = (
            run.failed == 0
            and run.overhead(0.95, ttfb_ms) <= AIM_OVERHEAD_P95_MS
            and run.late == 0
            and run.peak_upstream <= AIM_PEAK_CONCURRENT
        )
        print(
            f"Aim at {run.sessions} sessions (0 failed, overhead p95 ≤ {AIM_OVERHEAD_P95_MS:.0f} "
            f"ms, 0 late frames, upstream peak ≤ {AIM_PEAK_CONCURRENT}): "
            f"{'met' if verdict else 'NOT met'}."
        )
    print(
        "Overhead is the session's own ttfa_ms (first sentence ready → first audio chunk from "
        "the stream) minus the fake's TTFB: limiter queueing and event-loop delay show here."
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument(
        "--sweep", default="1500,2000", help="further session counts, comma-separated ('' none)"
    )
    parser.add_argument("--ttfb", type=float, default=0.25, help="the fake's first-byte delay s")
    parser.add_argument("--ramp", type=float, default=25.0, help="sessions start over this many s")
    parser.add_argument(
        "--turn", type=float, default=20.0, help="the caller's turn between the utterances, s"
    )
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--texts", type=int, default=40, help="distinct utterance pairs")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="bound per session")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.texts < 1 or args.client_procs < 1:
        parser.error("--sessions, --texts and --client-procs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    levels = [args.sessions] + [int(n) for n in args.sweep.split(",") if n.strip()]
    runs: list[RunResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-ws-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url, FakeElevenLabs() as fake:
            env = api_env(
                redis_url,
                ELEVENLABS__API_KEY=fake.api_key,
                ELEVENLABS__BASE_URL=fake.base_url,
                CACHE__ENABLED="false",
            )
            with ApiProcess(env, work) as api:
                url = api.base_url.replace("http://", "ws://")
                pid = api_pid(api)
                warm = run_level(args.texts, url, fake, pid, _warm_args(args))
                for sessions in levels:
                    runs.append(run_level(sessions, url, fake, pid, args))
                    print(f"(done {sessions} sessions)", file=sys.stderr, flush=True)
    print_report(args, runs, warm)
    return 0


def _warm_args(args: argparse.Namespace) -> argparse.Namespace:
    warm: dict[str, Any] = {**vars(args), "ramp": 0.0, "turn": 0.0, "client_procs": 1}
    return argparse.Namespace(**warm)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
