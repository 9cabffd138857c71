"""Benchmark bulk-job throughput against the limiter's ideal, and the live path meanwhile.

What it measures
----------------
One API process (as `make run` starts it) and one `make worker` (2 prefork worker processes,
as the Makefile starts it) on a private Redis, speaking to the fake ElevenLabs with a first
byte after `--latency` s (default 0.3), sending `--chunk-bytes` chunks (default 8192:
ElevenLabs writes audio as it is generated, seconds of it at a time; the fake's own 1024
stresses parsing, and `--chunk-bytes 1024` measures that case), and speaking every request
as one clip (rendering 1,000 distinct clips would take the fake a core of its own on this
2-core machine, where it runs beside the API and the workers). A `--items`-item background job
(default 1,000 distinct sentences, so 1,000 cache misses, `--format`) goes through
POST /streaming/synthesize/bulk.

- Throughput: items / (the job's finished_at - created_at, from its own record). The ideal
  is bounded by the bulk slots of the limiter: (slots - live-reserved) / latency items per
  second; reported as a ratio. Aim: >= 0.8.
- The live path meanwhile: time to the first audio byte of POST
  /streaming/synthesize/streaming (`"cache": false`, so upstream every time) from a client in
  its own process, one request after another, before the job (baseline, same run) and while
  it runs. Reported: p50/p95 and the growth of the p50. Aim: <= 10 %.
- The fake's peak concurrency while the job ran (it must stay <= the limiter's 50).

The workers are warmed up first (one small job: each worker process opens its services
once, the language models and eSpeak included); the cold start is reported apart.

How to run
----------
From the repository root (redis-server installed: the benchmark starts its own)::

    python bench/bulk.py [--items 1000] [--latency 0.3] [--format pcm_16000]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.config import Settings
from bench.services import (
    api_env,
    api_pid,
    machine_lines,
    percentile,
    private_redis,
    process_cpu_s,
)
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess, worker

BULK = "/api/v1/voice/streaming/synthesize/bulk"
JOBS = "/api/v1/voice/streaming/jobs/"
STREAM = "/api/v1/voice/streaming/synthesize/streaming"
AIM_RATIO = 0.8
AIM_LIVE_GROWTH = 0.10


def worker_pids() -> list[int]:
    """The Celery worker processes (the main one and its pool) running on this machine."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"app.jobs.celery_app\x00worker" in cmdline:
                pids.append(int(entry.name))
    return pids


def cpu_now(api: ApiProcess) -> dict[str, float]:
    """CPU seconds so far: the API, the worker processes, and this one (the fake's thread)."""
    return {
        "api": process_cpu_s(api_pid(api)),
        "workers": sum(process_cpu_s(pid) for pid in worker_pids()),
        "fake": time.process_time(),
    }


STREETS = (
    "Maple Street",
    "Birchwood Lane",
    "Harbor Road",
    "Cedar Avenue",
    "Willow Court",
)


def listing(i: int, run: str) -> str:
    street = STREETS[i % len(STREETS)]
    return f"Listing {run}-{i}: {i % 4 + 2} bedrooms on {street}, open house on Saturday."


async def wait_done(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    while True:
        status: dict[str, Any] = (await client.get(JOBS + job_id, params={"items_limit": 0})).json()
        if status["status"] == "completed":
            return status
        await asyncio.sleep(0.25)


async def run_job(client: httpx.AsyncClient, texts: list[str], fmt: str) -> dict[str, Any]:
    items = [{"text": text, "output_format": fmt} for text in texts]
    accepted = await client.post(BULK, json={"items": items, "background": True})
    accepted.raise_for_status()
    return await wait_done(client, accepted.json()["job_id"])


def probe_live(base_url: str, count: int, run: str, stop: Any, results: Any) -> None:
    """In its own process: streamed requests one after another (`count` of them, or until
    `stop` is set); the first-byte ms of each."""

    async def main() -> list[float]:
        timings: list[float] = []
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for i in range(count):
                if stop.is_set():
                    break
                body = {"text": f"Live caller {run}, question {i}: is it still for sale?",
                        "cache": False, "output_format": "ulaw_8000"}  # fmt: skip
                started = time.perf_counter()
                async with client.stream("POST", STREAM, json=body) as response:
                    chunks = response.aiter_raw()
                    await anext(chunks)
                    timings.append((time.perf_counter() - started) * 1000)
                    async for _ in chunks:
                        pass
        return timings

    results.put(asyncio.run(main()))


async def sample_concurrency(fake: FakeElevenLabs, samples: list[int]) -> None:
    """The fake's requests in flight, every 20 ms."""
    while True:
        samples.append(fake.stats().concurrent_now)
        await asyncio.sleep(0.02)


class LiveProbe:
    """A live caller in its own process, so the fake's work in ours does not delay it."""

    def __init__(self, base_url: str, count: int, run: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._results = context.Queue()
        self._process = context.Process(
            target=probe_live, args=(base_url, count, run, self._stop, self._results)
        )
        self._process.start()

    def timings(self, stop: bool = False) -> list[float]:
        if stop:
            self._stop.set()
        found: list[float] = self._results.get(timeout=120)
        self._process.join()
        return found


def summary(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5):.1f} ms, p95 {percentile(values, 0.95):.1f} ms"


def configure(fake: FakeElevenLabs, args: argparse.Namespace) -> None:
    fake.behavior.ttfb_s = args.latency
    # One clip for every request: the fake's own synthesis stays out of the measurement.
    fake.behavior.spoken_text = listing(0, "bulk")
    fake.behavior.chunk_sizes = (args.chunk_bytes,)


async def bench(args: argparse.Namespace, api: ApiProcess, fake: FakeElevenLabs) -> None:
    limiter = Settings().limiter
    bulk_slots = limiter.upstream_slots - limiter.live_reserved_slots
    ideal = bulk_slots / args.latency
    configure(fake, args)
    async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as client:
        started = time.monotonic()
        # Two chunks: both worker processes open their services before the measured job.
        warm_up = 2 * Settings().jobs.chunk_items
        await run_job(client, [listing(i, "warm") for i in range(warm_up)], args.format)
        cold_s = time.monotonic() - started

        baseline = LiveProbe(api.base_url, args.live_requests, "before").timings()

        fake.reset()  # counters from zero (and the behaviour too: set it again)
        configure(fake, args)
        texts = [listing(i, "bulk") for i in range(args.items)]
        probe = LiveProbe(api.base_url, 10**6, "during")
        cpu_before = cpu_now(api)
        samples: list[int] = []
        sampler = asyncio.create_task(sample_concurrency(fake, samples))
        status = await run_job(client, texts, args.format)
        sampler.cancel()
        cpu = {name: used - cpu_before[name] for name, used in cpu_now(api).items()}
        during = probe.timings(stop=True)
        figures = (await client.get("/api/v1/voice/performance")).json()
    # Every process's limiter waits over the last 5 minutes (the job and its warm-up).
    wait = figures["windows"]["5m"]["limiter"]["wait"]
    peak = fake.stats().peak_concurrent
    elapsed = status["finished_at"] - status["created_at"]
    rate = args.items / elapsed
    growth = percentile(during, 0.5) / percentile(baseline, 0.5) - 1

    print("# Bulk jobs: throughput against the limiter's ideal, live TTFA meanwhile")
    print(*machine_lines(), sep="\n")
    print(f"- Fake ElevenLabs first byte after {args.latency * 1000:.0f} ms; format {args.format};"
          f" limiter {limiter.upstream_slots} slots, {limiter.live_reserved_slots} reserved "
          f"for live traffic; 1 `make worker` with 2 worker processes")  # fmt: skip
    print(
        f"- Cold start ({warm_up}-item warm-up job: services opened in each worker): {cold_s:.2f} s"
    )
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| items | {args.items} ({status['counts']['done']} done, "
          f"{status['counts']['failed']} failed) |")  # fmt: skip
    print(f"| job time (created -> finished) | {elapsed:.2f} s |")
    print(f"| throughput | {rate:.1f} items/s |")
    print(f"| ideal ({bulk_slots} bulk slots / {args.latency:.2f} s) | {ideal:.1f} items/s |")
    print(f"| ratio to ideal | {rate / ideal:.2f} (aim >= {AIM_RATIO}) |")
    print(
        f"| fake's concurrency | peak {peak} (limit {limiter.upstream_slots}), mean "
        f"{statistics.fmean(samples):.1f} |"
    )
    print(
        f"| limiter wait, queueing included (5 min, all processes) | "
        f"p50 {wait['p50_ms']:.0f} ms, p95 {wait['p95_ms']:.0f} ms |"
    )
    print(f"| live TTFA before the job ({len(baseline)} requests) | {summary(baseline)} |")
    print(f"| live TTFA during the job ({len(during)} requests) | {summary(during)} |")
    print(
        f"| CPU during the job | worker processes {cpu['workers']:.1f} s "
        f"({cpu['workers'] / args.items * 1000:.1f} ms/item), API {cpu['api']:.1f} s, "
        f"fake + this client {cpu['fake']:.1f} s, over {elapsed:.1f} s on {os.cpu_count()} CPUs |"
    )
    print(
        f"| live TTFA p50 growth | {growth * 100:+.1f} % (aim <= {AIM_LIVE_GROWTH * 100:.0f} %) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--format", default="pcm_16000")
    parser.add_argument("--live-requests", type=int, default=40)
    parser.add_argument("--chunk-bytes", type=int, default=8192, help="the fake's chunk size")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url, FakeElevenLabs() as fake:
            env = api_env(
                redis_url,
                ELEVENLABS__API_KEY=fake.api_key,
                ELEVEN_LABS_BASE_URL=fake.base_url,
                WORKER_CONCURRENCY="2",
            )
            with ApiProcess(env, work) as api, worker(env, work):
                asyncio.run(bench(args, api, fake))


if __name__ == "__main__":
    main()
