"""Benchmark the global upstream limiter: what a slot costs, and whether 50 means 50.

What it measures
----------------
(a) Cost. `UpstreamLimiter.slot(Priority.LIVE, deadline)` entered and left with nothing
    inside, uncontended, in this process against a private redis-server on loopback, with
    the limiter and its `Notifier` started as the app's lifespan starts them (a Redis
    client from the app's own factory; no analytics rollups attached). Reported per call:
    acquire (until the block is entered), release (leaving it) and both, p50/p99/mean over
    `--iterations` calls, and the Redis commands one slot costs (INFO commandstats). The
    baseline, measured in the same run on the same client, interleaved block by block: one
    plain Redis round trip, PING and GET of a 1 KiB value.
(b) Correctness under load. `--processes` API processes (started as `make run` starts them)
    share one private Redis and point at the fake ElevenLabs (first byte after `--ttfb` s),
    with `VOICE_RESPONSE_TIMEOUT_MS` at its maximum so nothing falls back to the offline
    engine, and `LIMITER__UPSTREAM_SLOTS` = `--slots`. `--clients` callers per process each
    send `--per-client` requests one after the other, every text distinct (one segment each,
    so no cache or single-flight can merge them). Reported: the fake's peak concurrent
    requests (its own count, the ground truth), the most slots the limiter's Redis set held
    (sampled every 10 ms), total time against the ideal of `--slots` perfectly packed calls,
    statuses and providers of the responses, client latency, and the limiter's own wait
    figures from GET /api/v1/voice/performance when the app serves it; and, once the phase
    is over, the slots still held in Redis and whether their leases are still being renewed
    (held by requests that never end). Callers give up after `--max-seconds`.
(c) The same on the same processes with long upstream calls: the fake streams its audio in
    1 KiB chunks `--chunk-delay` s apart, so a call outlasts `LimiterSettings.lease_s / 3`
    and its slot is renewed while held (what real streams of long segments do), with
    `--long-per-client` requests per caller.

Aim: (a) acquire+release p99 ≤ 1 ms; (b), (c) peak concurrency at the fake exactly
`--slots`, never one more, and no slot still held once the load is over.

How to run
----------
From the repository root, with the repo's requirements installed (redis-server too: the
benchmark starts its own on a free port and stops it)::

    python bench/limiter.py [--iterations 4000] [--processes 4] [--clients 100] \\
        [--per-client 3] [--ttfb 0.3] [--slots 50] [--long-per-client 1] \\
        [--chunk-delay 0.05] [--max-seconds 45] [--lease 5]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
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

import httpx
import redis
from redis.asyncio import Redis

from app.config import LimiterSettings
from app.limits.upstream import HOLDERS, Priority, UpstreamLimiter
from app.notifications import Notifier
from bench.services import (
    RawCaller,
    api_env,
    api_pid,
    app_redis_client,
    flush,
    machine_lines,
    percentile,
    private_redis,
    process_cpu_s,
    redis_command_calls,
    redis_pid,
    redis_version,
)
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.fakes.synthetic_audio import RENDERED
from tests.processes import ApiProcess

AIM_SLOT_P99_MS = 1.0
SYNTHESIZE_PATH = "/api/v1/voice/synthesize"
PERFORMANCE_PATH = "/api/v1/voice/performance"
BLOCKS = 20  # ours and the baseline alternate this many times
WARM_UP = 200
HOLDERS_KEY = HOLDERS.format(upstream="elevenlabs")
WIRE_FORMAT = "ulaw_8000"
MAX_RESPONSE_TIMEOUT_MS = 60_000  # the most SynthesisSettings accepts: no fallback for waiting


# (a) What one slot costs.


@dataclass
class Timings:
    samples_ms: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.samples_ms.append(seconds * 1000)

    def p(self, fraction: float) -> float:
        return percentile(self.samples_ms, fraction)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples_ms)


@dataclass
class CostResult:
    acquire: Timings
    release: Timings
    slot: Timings
    ping: Timings
    get: Timings
    commands_per_slot: dict[str, float]
    local_fallbacks: int
    acquired: int


def _client(redis_url: str) -> Redis:
    return app_redis_client(redis_url)


async def measure_cost(redis_url: str, iterations: int) -> CostResult:
    client = _client(redis_url)
    notifier = Notifier(client)
    limiter = UpstreamLimiter(client, notifier, LimiterSettings())
    notifier.start()
    limiter.start()
    result = CostResult(Timings(), Timings(), Timings(), Timings(), Timings(), {}, 0, 0)
    try:
        await asyncio.wait_for(notifier.connected.wait(), 10)
        await client.set("bench:limiter:value", b"x" * 1024)

        async def one_slot(record: bool) -> None:
            started = time.perf_counter()
            async with limiter.slot(Priority.LIVE, time.monotonic() + 5):
                entered = time.perf_counter()
            left = time.perf_counter()
            if record:
                result.acquire.add(entered - started)
                result.release.add(left - entered)
                result.slot.add(left - started)

        async def one_ping(record: bool) -> None:
            started = time.perf_counter()
            await client.ping()
            if record:
                result.ping.add(time.perf_counter() - started)

        async def one_get(record: bool) -> None:
            started = time.perf_counter()
            await client.get("bench:limiter:value")
            if record:
                result.get.add(time.perf_counter() - started)

        for _ in range(WARM_UP):  # scripts loaded, connections made, code paths warm
            await one_slot(False)
            await one_ping(False)
            await one_get(False)
        per_block = max(1, iterations // BLOCKS)
        before = redis_command_calls(redis_url)
        for _ in range(BLOCKS):
            for _ in range(per_block):
                await one_slot(True)
        after = redis_command_calls(redis_url)
        slots = BLOCKS * per_block
        result.commands_per_slot = {
            name: (calls - before.get(name, 0)) / slots
            for name, calls in sorted(after.items())
            if calls - before.get(name, 0) > 0
        }
        # The timed interleaving: the counts above come from the slot-only pass.
        result.acquire, result.release, result.slot = Timings(), Timings(), Timings()
        for _ in range(BLOCKS):
            for _ in range(per_block):
                await one_slot(True)
            for _ in range(per_block):
                await one_ping(True)
            for _ in range(per_block):
                await one_get(True)
        result.local_fallbacks = limiter.stats.local_fallbacks
        result.acquired = limiter.stats.acquired
    finally:
        await limiter.stop()
        await notifier.stop()
        await client.aclose()
    return result


# (b) 50 means 50: several API processes, many callers, a slow fake upstream.


@dataclass(frozen=True)
class Phase:
    """One load on the same processes: how slow the fake is and how much is asked of it."""

    name: str
    ttfb_s: float
    chunk_delay_s: float
    per_client: int
    first_text: int  # texts are numbered on from the previous phase's, so all stay distinct


@dataclass
class LoadResult:
    phase: Phase
    planned: int
    wall_s: float
    latencies_ms: list[float]
    unanswered: int
    statuses: Counter[int]
    providers: Counter[str]
    peak_at_fake: int
    fake_requests: int
    peak_holders_sampled: int
    held_after: int
    renewed_after: int
    cpu_s: dict[str, float]
    script_calls: int
    performance: dict[str, Any] | None
    performance_note: str


@dataclass
class _Load:
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    unanswered: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    providers: Counter[str] = field(default_factory=Counter)
    peak_holders: int = 0


def listing_text(number: int) -> str:
    """A distinct one-sentence listing line per number (one segment each)."""
    streets = ("Birchwood Lane", "Maple Street", "Harbor View Drive", "Cedar Court", "Elm Avenue")
    beds = 2 + number % 4
    price = 300_000 + (number * 7919) % 900_000
    return (
        f"Listing {number}: a {beds}-bedroom home at {100 + number} {streets[number % 5]}, "
        f"offered at ${price:,}."
    )


async def _sample_holders(redis_url: str, stop: asyncio.Event) -> int:
    client = _client(redis_url)
    peak = 0
    try:
        while not stop.is_set():
            peak = max(peak, int(await client.zcard(HOLDERS_KEY)))
            await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    return peak


async def drive_load(
    urls: Sequence[str], redis_url: str, clients: int, phase: Phase, max_s: float
) -> _Load:
    """Every caller sends its requests in turn; what is not answered within `max_s` is not."""
    load = _Load()
    callers = [RawCaller(url + SYNTHESIZE_PATH) for url in urls for _ in range(clients)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    last_answer = loop.time()

    per_client = phase.per_client

    async def caller_loop(index: int, caller: RawCaller) -> None:
        nonlocal last_answer
        for turn in range(per_client):
            text = listing_text(phase.first_text + turn * len(callers) + index)
            body = json.dumps({"text": text, "language": "en", "output_format": WIRE_FORMAT})
            started = time.perf_counter()
            try:
                async with asyncio.timeout_at(deadline):
                    status, headers = await caller.post(body.encode())
            except TimeoutError:
                load.unanswered += per_client - turn
                return
            load.latencies_ms.append((time.perf_counter() - started) * 1000)
            load.statuses[status] += 1
            load.providers[headers.get("x-provider", "-")] += 1
            last_answer = loop.time()

    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_holders(redis_url, stop))
    started = loop.time()
    try:
        await asyncio.gather(*(caller_loop(i, c) for i, c in enumerate(callers)))
    finally:
        load.wall_s = last_answer - started
        stop.set()
        load.peak_holders = await sampler
        await asyncio.gather(*(caller.close() for caller in callers), return_exceptions=True)
    return load


def held_slots(redis_url: str, settle_s: float) -> tuple[int, int]:
    """Slots still held once the load is over, and how many of them are being renewed."""
    with redis.Redis.from_url(redis_url) as client:
        before = dict(client.zrange(HOLDERS_KEY, 0, -1, withscores=True))
        time.sleep(settle_s)
        now_s, now_us = client.time()
        now_ms = now_s * 1000 + now_us // 1000
        after = dict(client.zrange(HOLDERS_KEY, 0, -1, withscores=True))
    live = {member: score for member, score in after.items() if score > now_ms}
    renewed = sum(1 for member, score in live.items() if score > before.get(member, score))
    return len(live), renewed


def read_performance(url: str) -> tuple[dict[str, Any] | None, str]:
    """The limiter figures of GET /performance (every process's, through Redis), if served."""
    try:
        response = httpx.get(url + PERFORMANCE_PATH, timeout=10)
    except httpx.HTTPError as exc:
        return None, f"GET {PERFORMANCE_PATH} failed: {type(exc).__name__}"
    if response.status_code != 200:
        return None, f"GET {PERFORMANCE_PATH} answered {response.status_code}"
    body: Any = response.json()
    windows = body.get("windows") if isinstance(body, dict) else None
    window = next(iter(windows.values()), None) if isinstance(windows, dict) else None
    figures = window.get("limiter") if isinstance(window, dict) else None
    if not isinstance(windows, dict) or not isinstance(figures, dict):
        return None, f"GET {PERFORMANCE_PATH} has no limiter figures"
    return figures, f"GET {PERFORMANCE_PATH}, window {next(iter(windows))}, every process"


def phases(args: argparse.Namespace) -> list[Phase]:
    short = Phase("(b) short calls", args.ttfb, 0.0, args.per_client, 0)
    if args.long_per_client < 1:
        return [short]
    first = args.processes * args.clients * args.per_client
    long = Phase("(c) long streams", args.ttfb, args.chunk_delay, args.long_per_client, first)
    return [short, long]


def log_summary(work: Path) -> list[tuple[int, str]]:
    """The API processes' warnings and errors, counted by logger and message shape."""
    shapes: Counter[str] = Counter()
    for log in sorted(work.glob("uvicorn-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if " WARNING " not in line and " ERROR " not in line:
                continue
            message = line.split(" ", 2)[-1]  # drop the date and time
            shapes[re.sub(r"[0-9a-f]{6,}(?::[0-9a-f]+)*|\d+", "N", message)[:140]] += 1
    return [(count, shape) for shape, count in shapes.most_common(8)]


def measure_load(redis_url: str, work: Path, args: argparse.Namespace) -> list[LoadResult]:
    """Every phase in turn on the same API processes, the same fake and the same Redis."""
    plan = phases(args)
    results: list[LoadResult] = []
    with FakeElevenLabs() as fake:
        env = api_env(
            redis_url,
            ELEVENLABS__API_KEY=fake.api_key,
            ELEVENLABS__BASE_URL=fake.base_url,
            VOICE_RESPONSE_TIMEOUT_MS=str(MAX_RESPONSE_TIMEOUT_MS),
            LIMITER__UPSTREAM_SLOTS=str(args.slots),
            LIMITER__LIVE_RESERVED_SLOTS=str(min(10, args.slots - 1)),
            LIMITER__LEASE_S=str(args.lease),
        )
        processes = [ApiProcess(env, work).start() for _ in range(args.processes)]
        try:
            # The fake renders each distinct text once (~16 ms of CPU on the machine this was
            # written on); done here, while the API processes boot, it stays out of the load.
            for phase in plan:
                count = args.processes * args.clients * phase.per_client
                for number in range(phase.first_text, phase.first_text + count):
                    RENDERED.render(listing_text(number), WIRE_FORMAT, False)
            for process in processes:
                process.wait_ready(timeout_s=60)
            pids = {"redis-server": redis_pid(redis_url)}
            pids.update({f"api {i}": api_pid(p) for i, p in enumerate(processes)})
            for phase in plan:
                results.append(run_phase(phase, fake, processes, pids, redis_url, args))
        finally:
            hung = any(result.unanswered for result in results)
            for process in processes:
                # Requests that never end keep uvicorn from shutting down gracefully.
                if hung or len(results) < len(plan):
                    process.kill()
                else:
                    process.stop()
    return results


def run_phase(
    phase: Phase,
    fake: FakeElevenLabs,
    processes: Sequence[ApiProcess],
    pids: dict[str, int],
    redis_url: str,
    args: argparse.Namespace,
) -> LoadResult:
    fake.reset()
    fake.behavior.ttfb_s = phase.ttfb_s
    fake.behavior.chunk_delay_s = phase.chunk_delay_s
    fake.behavior.max_concurrent_requests = args.slots  # the plan we say we have
    cpu_before = {name: process_cpu_s(pid) for name, pid in pids.items()}
    calls_before = redis_command_calls(redis_url).get("evalsha", 0)
    here_before = time.process_time()
    urls = [p.base_url for p in processes]
    load = asyncio.run(drive_load(urls, redis_url, args.clients, phase, args.max_seconds))
    cpu = {name: process_cpu_s(pid) - cpu_before[name] for name, pid in pids.items()}
    cpu["this process (fake + callers)"] = time.process_time() - here_before
    script_calls = redis_command_calls(redis_url).get("evalsha", 0) - calls_before
    stats = fake.stats()
    held, renewed = held_slots(redis_url, settle_s=2.0)
    performance, note = read_performance(processes[0].base_url)
    return LoadResult(
        phase=phase,
        planned=len(urls) * args.clients * phase.per_client,
        wall_s=load.wall_s,
        latencies_ms=load.latencies_ms,
        unanswered=load.unanswered,
        statuses=load.statuses,
        providers=load.providers,
        peak_at_fake=stats.peak_concurrent,
        fake_requests=stats.total_requests,
        peak_holders_sampled=load.peak_holders,
        held_after=held,
        renewed_after=renewed,
        cpu_s=cpu,
        script_calls=script_calls,
        performance=performance,
        performance_note=note,
    )


# Report.


def print_header(args: argparse.Namespace, redis_info: str) -> None:
    print("# Limiter benchmark: UpstreamLimiter.slot() cost, and the global limit under load")
    print()
    for line in machine_lines():
        print(line)
    print(f"- redis-server {redis_info}, private, on loopback")
    print(
        f"- (a) {args.iterations} uncontended slots, {BLOCKS} blocks alternating with PING "
        f"and GET (1 KiB) on the same client, after {WARM_UP} warm-up calls of each"
    )
    print(
        f"- (b), (c): {args.processes} API processes × {args.clients} callers, {args.slots} "
        f"slots, lease {args.lease:g} s, distinct one-sentence texts ({WIRE_FORMAT}, rendered "
        "by the fake beforehand), "
        f"fake first byte after {args.ttfb:.2f} s; (b) {args.per_client} requests per caller; "
        f"(c) {args.long_per_client} per caller, streamed in 1 KiB chunks "
        f"{args.chunk_delay * 1000:.0f} ms apart (calls longer than a lease renewal period)"
    )
    print()


def print_cost(cost: CostResult) -> None:
    print("## (a) Cost of one slot, uncontended")
    print()
    print("| operation | p50 ms | p99 ms | mean ms | p50 ÷ PING p50 | p99 ÷ PING p99 |")
    print("|---|---:|---:|---:|---:|---:|")
    ping = cost.ping
    rows = (
        ("PING (baseline: one round trip)", ping),
        ("GET 1 KiB (baseline)", cost.get),
        ("slot(): acquire", cost.acquire),
        ("slot(): release", cost.release),
        ("**slot(): acquire + release**", cost.slot),
    )
    for name, timings in rows:
        print(
            f"| {name} | {timings.p(0.5):.3f} | {timings.p(0.99):.3f} | {timings.mean:.3f} "
            f"| {timings.p(0.5) / ping.p(0.5):.2f}× | {timings.p(0.99) / ping.p(0.99):.2f}× |"
        )
    print()
    commands = ", ".join(
        f"{name} {calls:.2f}" for name, calls in cost.commands_per_slot.items() if calls >= 0.01
    )
    print(
        f"Redis commands per slot (INFO commandstats, scripts' own commands included): {commands}."
    )
    print(
        f"Slots taken through Redis: {cost.acquired}; local fallbacks (Redis unreachable): "
        f"{cost.local_fallbacks}."
    )
    p99 = cost.slot.p(0.99)
    met = "met" if p99 <= AIM_SLOT_P99_MS else "NOT met"
    print(f"Aim acquire + release p99 ≤ {AIM_SLOT_P99_MS:.0f} ms: {met} ({p99:.3f} ms).")
    print()


def _ms(value: object) -> str:
    return f"{value:,.0f}" if isinstance(value, int | float) else "–"


def _call_s(result: LoadResult) -> float:
    """How long one upstream call of the phase lasts at the fake, audio streamed included."""
    phase = result.phase
    chunks = math.ceil(expected_audio_bytes() / 1024)  # the fake's default 1 KiB chunks
    return phase.ttfb_s + max(0, chunks - 1) * phase.chunk_delay_s


def expected_audio_bytes() -> int:
    """Mean μ-law bytes the fake sends for the listing texts (it renders them at 8 kHz)."""
    sample = [len(RENDERED.render(listing_text(n), WIRE_FORMAT, False)) for n in range(20)]
    return round(statistics.fmean(sample))


def _limiter_rows(result: LoadResult) -> tuple[str, str, str]:
    figures = result.performance
    if figures is None:
        return "–", "–", "–"
    found = figures.get("wait")
    wait: dict[str, Any] = found if isinstance(found, dict) else {}
    return (
        f"{figures.get('acquisitions', '–')} / {figures.get('timeouts', '–')} / "
        f"{figures.get('local_fallbacks', '–')}",
        f"{_ms(wait.get('p50_ms'))} / {_ms(wait.get('p95_ms'))} / {_ms(wait.get('p99_ms'))}",
        str(figures.get("peak_in_use", "–")),
    )


def print_load(results: Sequence[LoadResult], args: argparse.Namespace) -> None:
    print("## (b), (c) The global limit under load (same processes, one phase after the other)")
    print()
    rows: dict[str, list[str]] = {}

    def row(name: str, values: Sequence[str]) -> None:
        rows[name] = list(values)

    row(
        "upstream call at the fake s (first byte + streaming)",
        [f"{_call_s(r):.2f}" for r in results],
    )
    row(
        f"requests planned / answered / **not answered within {args.max_seconds:.0f} s**",
        [f"{r.planned:,} / {len(r.latencies_ms):,} / **{r.unanswered:,}**" for r in results],
    )
    row("requests the fake received", [f"{r.fake_requests:,}" for r in results])
    row("**peak concurrent requests at the fake**", [f"**{r.peak_at_fake}**" for r in results])
    row(
        "most slots held in Redis (sampled every 10 ms)",
        [str(r.peak_holders_sampled) for r in results],
    )
    row("time to the last answer s", [f"{r.wall_s:.2f}" for r in results])
    ideals = [math.ceil(r.planned / args.slots) * _call_s(r) for r in results]
    row(
        f"ideal s ({args.slots} slots always busy) and share achieved",
        [
            f"{i:.2f} ({i / r.wall_s:.0%})" if r.wall_s else "–"
            for i, r in zip(ideals, results, strict=True)
        ],
    )
    row(
        "client latency p50 / p99 ms",
        [
            f"{percentile(r.latencies_ms, 0.5):,.0f} / {percentile(r.latencies_ms, 0.99):,.0f}"
            for r in results
        ],
    )
    row(
        "**slots held 2 s after the phase / still being renewed** (cumulative)",
        [f"**{r.held_after} / {r.renewed_after}**" for r in results],
    )
    row(
        "script calls (EVALSHA) per answered request",
        [f"{r.script_calls / max(1, len(r.latencies_ms)):.1f}" for r in results],
    )
    row(
        "CPU s: API processes / redis-server / this process (fake + callers) / available",
        [
            f"{sum(v for k, v in r.cpu_s.items() if k.startswith('api')):.1f} / "
            f"{r.cpu_s['redis-server']:.1f} / {r.cpu_s['this process (fake + callers)']:.1f} / "
            f"{r.wall_s * (os.cpu_count() or 1):.0f}"
            for r in results
        ],
    )
    row(
        "statuses", [", ".join(f"{c}: {n}" for c, n in sorted(r.statuses.items())) for r in results]
    )
    row(
        "X-Provider",
        [", ".join(f"{k}: {n}" for k, n in sorted(r.providers.items())) for r in results],
    )
    limiter = [_limiter_rows(r) for r in results]
    row("limiter: acquisitions / timeouts / local fallbacks (cumulative)", [x[0] for x in limiter])
    row("limiter: wait p50 / p95 / p99 ms (histogram buckets, cumulative)", [x[1] for x in limiter])
    row("limiter: peak slots in use, its own count (cumulative)", [x[2] for x in limiter])
    print("| figure | " + " | ".join(r.phase.name for r in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name, values in rows.items():
        print(f"| {name} | " + " | ".join(values) + " |")
    print()
    print(f"Limiter figures: {results[0].performance_note}.")
    for result in results:
        peak = result.peak_at_fake
        met = "met" if peak == args.slots else "NOT met"
        over = "over the limit" if peak > args.slots else "never over the limit"
        print(
            f"Aim {result.phase.name}: peak at the fake exactly {args.slots}: {met} "
            f"({peak}; {over})."
        )
    lost = results[-1].held_after
    hung = sum(r.unanswered for r in results)
    if lost or hung:
        print(
            f"Slots lost: {lost} of {args.slots} are still held by requests that never ended "
            f"({hung} requests unanswered, counting the ones their callers never got to send); "
            "their leases are renewed, so they never expire."
        )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--iterations", type=int, default=4000, help="(a) timed slots")
    parser.add_argument("--processes", type=int, default=4, help="(b) API processes")
    parser.add_argument("--clients", type=int, default=100, help="(b) callers per process")
    parser.add_argument("--per-client", type=int, default=3, help="(b) requests per caller")
    parser.add_argument("--ttfb", type=float, default=0.3, help="(b) fake's first-byte delay s")
    parser.add_argument("--slots", type=int, default=50, help="(b) LIMITER__UPSTREAM_SLOTS")
    parser.add_argument(
        "--long-per-client", type=int, default=1, help="(c) requests per caller; 0: no (c)"
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.05, help="(c) fake's delay between 1 KiB chunks"
    )
    parser.add_argument(
        "--lease",
        type=float,
        default=LimiterSettings().lease_s,
        help="(b), (c) LIMITER__LEASE_S; slots are renewed every third of it",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=45, help="(b), (c) give up on requests after this"
    )
    args = parser.parse_args(argv)
    if min(args.iterations, args.processes, args.clients, args.per_client) < 1:
        parser.error("counts must be at least 1")
    if args.slots < 2 or min(args.ttfb, args.lease) <= 0:
        parser.error("--slots must be at least 2, --ttfb and --lease positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bench-limiter-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url:
            info = redis_version(redis_url)
            cost = asyncio.run(measure_cost(redis_url, args.iterations))
            flush(redis_url)
            load = measure_load(redis_url, work, args)
            logs = log_summary(work)
    print_header(args, info)
    print_cost(cost)
    print_load(load, args)
    print()
    print("API processes' log, warnings and errors by shape (numbers and ids as N):")
    for count, shape in logs or [(0, "none")]:
        print(f"- {count} × `{shape}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
