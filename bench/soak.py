"""Soak: mixed traffic for minutes while upstream faults cycle and Redis and a worker die.

What it measures
----------------
The service as docker-compose runs it, each part started the Makefile's way: the API
(`python -m app.serve`), a Celery worker (`make worker`), a state Redis and a separate cache
Redis (both private redis-servers on free ports), and the fake ElevenLabs.

* Traffic, open loop at `--rate` requests a second: 70 % a sentence already cached, 20 % a
  new sentence (`POST /synthesize`, MP3), 10 % a WebSocket call (μ-law, twilio frames) that
  barges in once audio flows, then says a second sentence and hangs up. Every 30 s a
  background bulk job of 10 items.
* Faults: the fake cycles every `--fault-every` seconds through none, 500, stall mid-stream,
  429 with Retry-After, a first byte later than the budget, none. At a third of the run the
  cache Redis is killed and restarted 20 s later; at two thirds the worker is killed
  (SIGKILL) and restarted 10 s later; the job it was running is handed on after the
  visibility timeout, set to 60 s here (900 s by default) so that it finishes within the run.
* Per minute: requests, errors by kind, silent answers (audio without sound, or no audio),
  latency p95/p99, and the API process's RSS. At the start (after warm-up) and at the end
  (traffic stopped, 15 s of quiet): the API process's RSS, open file descriptors and asyncio
  tasks, from /streaming/health/detailed. The start is taken after `--warm-up` seconds of
  the same traffic, uncounted, going once through every upstream fault and a cache Redis
  restart, so pools, caches and the code of every path (fallbacks, reconnections, tracebacks'
  source lines) have their working size.
  Jobs: submitted and finished.

Aims: no silent answer; memory at the end within 10 % of the start; descriptors and tasks
back to the start's figures.

How to run
----------
From the repository root, with the repo's requirements installed (redis-server too)::

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 8]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
import websockets

from app.audio import codecs
from app.audio.formats import OutputFormat, spec_of
from app.ops import local_redis
from bench.services import api_pid, machine_lines, open_descriptors
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess, api_env, worker

SYNTHESIZE = "/api/v1/voice/synthesize"
HEALTH = "/api/v1/voice/streaming/health/detailed"
CACHED = [
    f"Welcome to the open house at {n} Maple Street; the kitchen is new." for n in range(1, 21)
]
FAULT_CYCLE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("none", {}),
    ("500", {"status": 500}),
    ("stall", {"stall_after_bytes": 6000, "stall_s": 8.0}),
    ("429 Retry-After 1", {"status": 429, "retry_after_s": 1.0}),
    ("slow first byte", {"ttfb_s": 3.0}),
)
AIM_RSS_GROWTH = 0.10
JOB_TIME_LIMIT_S = 50


@dataclass
class Minute:
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    silent: int = 0
    latencies: list[float] = field(default_factory=list)
    rss_mib: float | None = None  # the API process's, sampled during the minute


@dataclass
class Soak:
    minutes: dict[int, Minute] = field(default_factory=lambda: defaultdict(Minute))
    events: list[str] = field(default_factory=list)
    jobs_submitted: int = 0
    jobs_finished: int = 0
    # Jobs not (yet) completed: job id -> when submitted and the last status seen.
    jobs_open: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def minute(self) -> Minute:
        return self.minutes[int((time.monotonic() - self.started) // 60)]

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self.started:6.1f} s  {text}")


def has_speech(audio: bytes, fmt: OutputFormat) -> bool:
    if not audio:
        return False
    pcm = codecs.decode(audio, spec_of(fmt))
    return pcm.size > 0 and int(np.abs(pcm.astype(np.int32)).max()) > 1000


async def http_call(http: httpx.AsyncClient, soak: Soak, text: str) -> None:
    minute = soak.minute()
    minute.requests += 1
    started = time.monotonic()
    try:
        response = await http.post(SYNTHESIZE, json={"text": text})
    except httpx.HTTPError as exc:
        minute.errors[type(exc).__name__] += 1
        return
    minute.latencies.append(time.monotonic() - started)
    if response.status_code != 200:
        minute.errors[f"http {response.status_code}"] += 1
    elif not has_speech(response.content, OutputFormat.MP3_44100_128):
        minute.silent += 1


async def ws_call(ws_url: str, soak: Soak, n: int) -> None:
    minute = soak.minute()
    minute.requests += 1
    started = time.monotonic()
    audio = bytearray()
    first: float | None = None
    try:
        async with websockets.connect(f"{ws_url}soak-{n}", max_size=None) as ws:
            start = {"type": "start", "output_format": "ulaw_8000", "frames": "twilio"}
            await ws.send(json.dumps({**start, "stream_sid": f"MZ{n}"}))
            await ws.recv()
            text = f"Thanks for calling about listing {n}. The showing is on Saturday at noon."
            await ws.send(json.dumps({"type": "text", "utterance_id": "a", "text": text,
                                      "flush": True}))  # fmt: skip
            media = 0
            while media < 25:  # half a second heard, then the caller talks over it
                message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if message.get("event") == "media":
                    media += 1
                    audio += base64.b64decode(message["media"]["payload"])
                    first = first if first is not None else time.monotonic() - started
            await ws.send(json.dumps({"type": "barge_in"}))
            reply = {"type": "text", "utterance_id": "b", "text": "Yes, of course.", "flush": True}
            await ws.send(json.dumps(reply))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if message.get("event") == "media":
                    audio += base64.b64decode(message["media"]["payload"])
                if message.get("type") == "metrics" and message.get("utterance_id") == "b":
                    break
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        minute.errors[f"ws {type(exc).__name__}"] += 1
        return
    if first is not None:
        minute.latencies.append(first)
    if not has_speech(bytes(audio), OutputFormat.ULAW_8000):
        minute.silent += 1


async def bulk_job(http: httpx.AsyncClient, soak: Soak, n: int) -> None:
    items = [{"text": f"Bulk phrase {n}-{i}: the garden faces south."} for i in range(10)]
    try:
        accepted = await http.post(
            "/api/v1/voice/streaming/synthesize/bulk", json={"items": items, "background": True}
        )
    except httpx.HTTPError:
        return
    if accepted.status_code != 202:
        soak.minute().errors[f"bulk {accepted.status_code}"] += 1
        return
    soak.jobs_submitted += 1
    job = accepted.json()
    submitted = f"submitted at {time.monotonic() - soak.started:.0f} s"
    soak.jobs_open[job["job_id"]] = f"{submitted}, no status read yet"
    for _ in range(120):
        await asyncio.sleep(2)
        try:
            with_status = await http.get(job["status_url"])
        except httpx.HTTPError:
            continue  # the next poll asks again; the job is not the caller's to lose
        if with_status.status_code != 200:
            soak.jobs_open[job["job_id"]] = f"{submitted}, last poll {with_status.status_code}"
            continue
        status = with_status.json()
        if status["status"] == "completed":
            soak.jobs_finished += 1
            del soak.jobs_open[job["job_id"]]
            return
        soak.jobs_open[job["job_id"]] = (
            f"{submitted}, last seen {status['status']} {status['counts']} {status['notes']}"
        )


async def process_figures(http: httpx.AsyncClient) -> dict[str, int]:
    details = (await http.get(HEALTH, timeout=30)).json()["dependencies"]["process"]["details"]
    return {k: int(details[k]) for k in ("asyncio_tasks", "open_fds", "rss_bytes")}


async def sample_memory(http: httpx.AsyncClient, soak: Soak) -> None:
    """The API process's RSS in the middle of every minute: growth that levels off or not."""
    await asyncio.sleep(30)
    while True:
        minute = soak.minute()
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            minute.rss_mib = (await process_figures(http))["rss_bytes"] / 2**20
        await asyncio.sleep(60)


@dataclass
class Parts:
    api: ApiProcess
    fake: FakeElevenLabs
    worker_env: dict[str, str]
    log_dir: Path
    cache_dir: Path
    cache_port: int
    cache_process: Any
    state_port: int
    worker: Any = None

    def descriptors(self) -> Counter[str]:
        peers = {
            self.api.port: "callers (and the listening socket)",
            self.state_port: "state Redis",
            self.cache_port: "cache Redis",
            httpx.URL(self.fake.base_url).port or 80: "ElevenLabs (the fake)",
        }
        return open_descriptors(api_pid(self.api), peers)


async def chaos(
    parts: Parts, soak: Soak, duration_s: float, every_s: float, kill_worker: bool = True
) -> None:
    """Cycles the fake's faults; kills the cache Redis at 1/3 and the worker at 2/3."""
    cache_killed = False
    worker_killed = not kill_worker
    index = 0
    next_fault = time.monotonic()
    while (elapsed := time.monotonic() - soak.started) < duration_s:
        if time.monotonic() >= next_fault:
            name, behavior = FAULT_CYCLE[index % len(FAULT_CYCLE)]
            parts.fake.reset()
            for attribute, value in behavior.items():
                setattr(parts.fake.behavior, attribute, value)
            soak.note(f"upstream fault: {name}")
            index += 1
            next_fault += every_s
        if not cache_killed and elapsed >= duration_s / 3:
            cache_killed = True
            parts.cache_process.kill()
            parts.cache_process.wait(10)
            soak.note("cache Redis killed")
            await asyncio.sleep(20)
            parts.cache_process, _ = local_redis.start_private(parts.cache_dir, parts.cache_port)
            soak.note("cache Redis back")
        if not worker_killed and elapsed >= 2 * duration_s / 3:
            worker_killed = True
            parts.worker.kill()
            soak.note("worker killed (SIGKILL)")
            await asyncio.sleep(10)
            parts.worker = worker(parts.worker_env, parts.log_dir).start().wait_ready()
            soak.note("worker back")
        await asyncio.sleep(0.5)
    parts.fake.reset()


async def traffic(parts: Parts, soak: Soak, args: argparse.Namespace) -> dict[str, Any]:
    base = parts.api.base_url
    ws_url = base.replace("http://", "ws://") + "/api/v1/voice/streaming/stream/"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as http:
        for text in CACHED:  # warm the cache
            await http.post(SYNTHESIZE, json={"text": text})
        # The same traffic, uncounted, through every fault and a cache Redis restart, until
        # the pools, caches and lazily loaded code of every path have their working size.
        warm = Soak()
        every_s = args.warm_up / len(FAULT_CYCLE)
        warm_faults = asyncio.create_task(
            chaos(parts, warm, args.warm_up, every_s, kill_worker=False)
        )
        warming = await run_traffic(
            http, ws_url, warm, args.rate, args.warm_up, random.Random(3), tag="w"
        )
        await warm_faults
        if warming:
            await asyncio.wait(warming, timeout=120)
        await asyncio.sleep(10)
        before = await process_figures(http)
        before_fds = parts.descriptors()
        soak.started = time.monotonic()
        duration_s = args.minutes * 60
        chaos_task = asyncio.create_task(chaos(parts, soak, duration_s, args.fault_every))
        sampler = asyncio.create_task(sample_memory(http, soak))
        tasks = await run_traffic(http, ws_url, soak, args.rate, duration_s, random.Random(7))
        await chaos_task
        sampler.cancel()
        soak.note("traffic stopped")
        if tasks:
            await asyncio.wait(tasks, timeout=120)
        await asyncio.sleep(15)
        after = await process_figures(http)
        after_fds = parts.descriptors()
    return {"before": before, "after": after, "fds": (before_fds, after_fds)}


async def run_traffic(
    http: httpx.AsyncClient,
    ws_url: str,
    soak: Soak,
    rate: float,
    duration_s: float,
    rng: random.Random,
    tag: str = "",
) -> set[asyncio.Task[None]]:
    """Open-loop traffic at `rate` for `duration_s`; the calls still under way at the end."""
    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    n = 0
    next_bulk = started + 5
    while time.monotonic() - started < duration_s:
        n += 1
        roll = rng.random()
        if roll < 0.7:
            call = http_call(http, soak, rng.choice(CACHED))
        elif roll < 0.9:
            call = http_call(http, soak, f"New sentence {tag}{n}: the porch was painted in May.")
        else:
            call = ws_call(ws_url, soak, n)
        task = asyncio.create_task(call)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if time.monotonic() >= next_bulk:
            bulk = asyncio.create_task(bulk_job(http, soak, n))
            tasks.add(bulk)
            bulk.add_done_callback(tasks.discard)
            next_bulk += 30
        await asyncio.sleep(1 / rate)
    return tasks


def report(soak: Soak, figures: dict[str, Any], args: argparse.Namespace) -> None:
    print("# Soak: mixed traffic while upstream faults cycle and Redis and a worker die")
    print()
    for line in machine_lines():
        print(line)
    print(
        f"- {args.minutes} min at {args.rate} requests/s: 70 % cached, 20 % new sentences, "
        f"10 % WebSocket calls with barge-in; a 10-item bulk job every 30 s; faults change "
        f"every {args.fault_every:g} s"
    )
    print()
    print("| minute | requests | errors | silent | p95 s | p99 s | API RSS MiB |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    total = Minute()
    for index in sorted(soak.minutes):
        m = soak.minutes[index]
        total.requests += m.requests
        total.errors.update(m.errors)
        total.silent += m.silent
        total.latencies += m.latencies
        errors = ", ".join(f"{k} {v}" for k, v in m.errors.most_common()) or "0"
        print(
            f"| {index + 1} | {m.requests} | {errors} | {m.silent} "
            f"| {_pct(m.latencies, 0.95)} | {_pct(m.latencies, 0.99)} "
            f"| {'—' if m.rss_mib is None else f'{m.rss_mib:.1f}'} |"
        )
    errors = ", ".join(f"{k} {v}" for k, v in total.errors.most_common()) or "0"
    print(
        f"| all | {total.requests} | {errors} | {total.silent} "
        f"| {_pct(total.latencies, 0.95)} | {_pct(total.latencies, 0.99)} | |"
    )
    print()
    before, after = figures["before"], figures["after"]
    growth = after["rss_bytes"] / before["rss_bytes"] - 1
    print("| API process | start | end |")
    print("|---|---:|---:|")
    print(f"| RSS MiB | {before['rss_bytes'] / 2**20:.1f} | {after['rss_bytes'] / 2**20:.1f} |")
    print(f"| open file descriptors | {before['open_fds']} | {after['open_fds']} |")
    print(f"| asyncio tasks | {before['asyncio_tasks']} | {after['asyncio_tasks']} |")
    before_fds, after_fds = figures["fds"]
    for kind in sorted(set(before_fds) | set(after_fds)):
        print(f"| descriptors: {kind} | {before_fds[kind]} | {after_fds[kind]} |")
    print()
    print(f"Bulk jobs: {soak.jobs_submitted} submitted, {soak.jobs_finished} finished.")
    for job_id, last in soak.jobs_open.items():
        print(f"    not finished: {job_id}, {last}")
    print(f"Aim: no silent answer: {'met' if total.silent == 0 else 'NOT met'} ({total.silent}).")
    met = "met" if growth <= AIM_RSS_GROWTH else "NOT met"
    print(f"Aim: memory growth ≤ {AIM_RSS_GROWTH:.0%}: {met} ({growth:+.1%}).")
    back = (
        after["open_fds"] <= before["open_fds"]
        and after["asyncio_tasks"] <= before["asyncio_tasks"]
    )
    print(f"Aim: descriptors and tasks back to the start's: {'met' if back else 'NOT met'}.")
    print()
    print("Timeline:")
    for event in soak.events:
        print(f"    {event}")


def _pct(values: Sequence[float], fraction: float) -> str:
    if not values:
        return "—"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]:.2f}"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=8.0, help="requests a second")
    parser.add_argument("--fault-every", type=float, default=30.0, help="seconds per fault")
    parser.add_argument(
        "--warm-up", type=float, default=120.0, help="seconds of uncounted traffic first"
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0:
        parser.error("--minutes and --rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    soak = Soak()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp, FakeElevenLabs() as fake:
        work = Path(tmp)
        state_process, state_port = local_redis.start_private(work / "state")
        cache_dir = work / "cache"
        cache_process, cache_port = local_redis.start_private(cache_dir)
        state_url = f"redis://127.0.0.1:{state_port}/0"
        env = api_env(
            state_url,
            ELEVENLABS__API_KEY=fake.api_key,
            ELEVEN_LABS_BASE_URL=fake.base_url,
            REDIS__URL=state_url,
            REDIS__CACHE_URL=f"redis://127.0.0.1:{cache_port}/0",
            # The killed worker's job is handed on after the visibility timeout (900 s by
            # default): short enough here that the run sees it finish, not merely survive.
            JOBS__TASK_TIME_LIMIT_S=str(JOB_TIME_LIMIT_S),
            JOBS__VISIBILITY_TIMEOUT_S=str(JOB_TIME_LIMIT_S + 10),
        )
        try:
            with ApiProcess(env, work) as api:
                parts = Parts(
                    api, fake, env, work, cache_dir, cache_port, cache_process, state_port
                )
                parts.worker = worker(env, work).start().wait_ready()
                try:
                    figures = asyncio.run(traffic(parts, soak, args))
                finally:
                    parts.worker.stop()
                    parts.cache_process.kill()
        finally:
            state_process.kill()
    report(soak, figures, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
