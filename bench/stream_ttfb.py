"""Benchmark time to first audio byte through the streaming endpoint against the bare upstream.

What it measures
----------------
`POST /api/v1/voice/streaming/synthesize/streaming` on one API process (started as `make run`
starts it) with `"cache": false` in every body, so every request goes upstream to the fake
ElevenLabs (first byte after `--ttfb` s, default 0.1), against a baseline measured in the
same run with the same client code: the very request the app sends upstream (path, query,
headers and JSON body copied from what the fake recorded during the warm-up), sent straight
to the fake. Time is from writing the request to reading the first byte of the body (chunked
bodies: the first byte of the first chunk), then the body is read to its end.

The client is HTTP/1.1 on asyncio streams, one keep-alive connection per caller, chunked or
Content-Length bodies. `--requests` requests per target and level at 1 and 8 concurrent
callers, the targets alternating in blocks of 20; the texts (one sentence each, `--format`)
taken in turn, every one spoken once during the warm-up so the fake's rendering stays out.

Reported per level: p50/p95 of both and the differences (the gateway's added time).
Aim: ≤ 5 ms added at p50.

How to run
----------
From the repository root (redis-server installed: the benchmark starts its own)::

    python bench/stream_ttfb.py [--requests 200] [--ttfb 0.1] [--format ulaw_8000]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from app.audio.formats import OutputFormat
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

STREAM_PATH = "/api/v1/voice/streaming/synthesize/streaming"
LEVELS = (1, 8)
BLOCK = 20
# uvicorn closes a keep-alive connection idle for 5 s (its timeout_keep_alive). On a slow
# machine one target's block outlasts that while the other's connections wait: those are
# opened again, before the clock starts, rather than found closed mid-request.
REOPEN_IDLE_S = 4.0
AIM_ADDED_P50_MS = 5.0
TEXTS = (
    "Thanks for calling Maple Realty, this is Ava, how can I help you today?",
    "The home at 1418 Birchwood Lane is listed at four hundred thousand dollars.",
    "Would Saturday at eleven in the morning work for a showing?",
    "No problem at all, I will text you the address right now.",
    "The kitchen was remodeled last spring with new granite counters.",
    "There is a two car garage and a large fenced back yard.",
    "The seller is open to offers until the end of the month.",
    "I can also send you three similar listings in the same area.",
)


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


class StreamCaller:
    """HTTP/1.1 on asyncio streams: keep-alive, chunked or Content-Length response bodies."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._last_used = 0.0

    async def first_byte_ms(self, request: Request) -> tuple[int, float, int]:
        """Status, ms from writing the request to the body's first byte, body length."""
        if self._streams is not None and time.monotonic() - self._last_used > REOPEN_IDLE_S:
            await self.close()
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        head = f"POST {request.path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
        for name, value in request.headers.items():
            head += f"{name}: {value}\r\n"
        head += f"Content-Length: {len(request.body)}\r\n\r\n"
        started = time.perf_counter()
        writer.write(head.encode() + request.body)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        first_ms = -1.0
        size = 0
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                length = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if length == 0:
                    await reader.readuntil(b"\r\n")
                    break
                await reader.readexactly(1)
                if first_ms < 0:
                    first_ms = (time.perf_counter() - started) * 1000
                await reader.readexactly(length - 1 + 2)
                size += length
        else:
            size = int(headers.get("content-length", "0"))
            if size:
                await reader.readexactly(1)
                first_ms = (time.perf_counter() - started) * 1000
                await reader.readexactly(size - 1)
        self._last_used = time.monotonic()
        return status, first_ms, size

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            await writer.wait_closed()


def app_requests(output_format: str) -> list[Request]:
    return [
        Request(
            STREAM_PATH,
            {"Content-Type": "application/json"},
            json.dumps({"text": t, "output_format": output_format, "cache": False}).encode(),
        )
        for t in TEXTS
    ]


def upstream_requests(fake: FakeElevenLabs) -> list[Request]:
    """What the app sent upstream during the warm-up, one per text, exactly."""
    found: dict[str, Request] = {}
    for recorded in fake.stats().requests:
        if not recorded.path.startswith("/v1/text-to-speech/") or not recorded.json:
            continue
        query = "&".join(f"{k}={v}" for k, v in recorded.query.items())
        path = recorded.path + (f"?{query}" if query else "")
        keep = ("xi-api-key", "content-type", "accept")
        headers = {k: v for k, v in recorded.headers.items() if k in keep}
        body = json.dumps(recorded.json).encode()
        found[str(recorded.json.get("text"))] = Request(path, headers, body)
    missing = [t for t in TEXTS if t not in found]
    if missing:
        raise RuntimeError(f"the app sent no upstream request for {missing[:1]}")
    return [found[t] for t in TEXTS]


@dataclass
class Samples:
    first_ms: list[float]
    bad: int = 0


async def drive(
    targets: dict[str, tuple[str, int, list[Request]]], clients: int, count: int
) -> dict[str, Samples]:
    samples = {name: Samples([]) for name in targets}
    pools = {
        name: [StreamCaller(host, port) for _ in range(clients)]
        for name, (host, port, _) in targets.items()
    }
    turn = 0
    try:
        for name, (_, _, requests) in targets.items():  # connect and warm each caller
            await asyncio.gather(*(c.first_byte_ms(requests[0]) for c in pools[name]))
        done = 0
        while done < count:
            block = min(BLOCK, count - done)
            order = list(targets) if turn % 2 == 0 else list(targets)[::-1]
            for name in order:
                requests = targets[name][2]
                queue = list(range(done, done + block))

                async def caller(
                    client: StreamCaller,
                    name: str = name,
                    queue: list[int] = queue,
                    requests: list[Request] = requests,
                ) -> None:
                    while queue:
                        index = queue.pop()
                        status, ms, size = await client.first_byte_ms(
                            requests[index % len(requests)]
                        )
                        if status != 200 or size == 0:
                            samples[name].bad += 1
                        else:
                            samples[name].first_ms.append(ms)

                await asyncio.gather(*(caller(c) for c in pools[name]))
            done += block
            turn += 1
    finally:
        for pool in pools.values():
            await asyncio.gather(*(c.close() for c in pool))
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--requests", type=int, default=200, help="per target and level")
    parser.add_argument("--ttfb", type=float, default=0.1, help="the fake's first-byte delay s")
    parser.add_argument(
        "--format", default=OutputFormat.ULAW_8000.value, choices=[f.value for f in OutputFormat]
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    results: dict[int, dict[str, Samples]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ttfb-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url, FakeElevenLabs() as fake:
            env = api_env(
                redis_url,
                ELEVENLABS__API_KEY=fake.api_key,
                ELEVENLABS__BASE_URL=fake.base_url,
            )
            with ApiProcess(env, work) as api:
                mine = app_requests(args.format)
                with httpx.Client(timeout=30) as http:
                    for request in mine:  # warm-up: renders every text, records upstream
                        reply = http.post(api.base_url + STREAM_PATH, content=request.body,
                                          headers=request.headers)  # fmt: skip
                        if reply.status_code != 200 or reply.headers.get("x-provider") != (
                            "elevenlabs"
                        ):
                            raise RuntimeError(f"warm-up: {reply.status_code} {reply.headers}")
                upstream = upstream_requests(fake)
                fake.behavior.ttfb_s = args.ttfb
                fake_url = httpx.URL(fake.base_url)
                targets = {
                    "gateway": ("127.0.0.1", api.port, mine),
                    "upstream": ("127.0.0.1", fake_url.port or 80, upstream),
                }
                cpu = process_cpu_s(api_pid(api))
                for clients in LEVELS:
                    results[clients] = asyncio.run(drive(targets, clients, args.requests))
                api_cpu_ms = (process_cpu_s(api_pid(api)) - cpu) * 1000
                upstream_total = fake.stats().total_requests
    measured = sum(len(results[c]["gateway"].first_ms) for c in LEVELS)
    print("# Streaming TTFB: the gateway's streaming endpoint against the fake upstream itself")
    print()
    for line in machine_lines():
        print(line)
    print(
        f"- Workload: {len(TEXTS)} one-sentence texts in turn, `{args.format}`, "
        f'`"cache": false`; fake TTFB {args.ttfb * 1000:.0f} ms, whole body right after; '
        f"{args.requests} requests per target and level, targets alternating in blocks of {BLOCK}"
    )
    print(
        "- Baseline: the app's own upstream request (recorded by the fake), sent straight to "
        "the fake by the same client (HTTP/1.1 on asyncio streams, keep-alive per caller)"
    )
    print(
        f"- Fake saw {upstream_total} text-to-speech requests in all; API CPU "
        f"{api_cpu_ms / max(1, measured):.2f} ms per gateway request (warm-up connections "
        "included)"
    )
    print()
    print("| callers | target | p50 ms | p95 ms | p99 ms | bad | added p50 ms | added p95 ms |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for clients in LEVELS:
        gw, up = results[clients]["gateway"], results[clients]["upstream"]
        for name, s in (("gateway", gw), ("upstream (fake)", up)):
            print(
                f"| {clients} | {name} | {percentile(s.first_ms, 0.5):.1f} "
                f"| {percentile(s.first_ms, 0.95):.1f} | {percentile(s.first_ms, 0.99):.1f} "
                f"| {s.bad} | | |"
            )
        added50 = percentile(gw.first_ms, 0.5) - percentile(up.first_ms, 0.5)
        added95 = percentile(gw.first_ms, 0.95) - percentile(up.first_ms, 0.95)
        print(f"| {clients} | **gateway − upstream** | | | | | **{added50:.1f}** | {added95:.1f} |")
    print()
    added = percentile(results[1]["gateway"].first_ms, 0.5) - percentile(
        results[1]["upstream"].first_ms, 0.5
    )
    met = "met" if added <= AIM_ADDED_P50_MS else "NOT met"
    print(f"Aim ≤ {AIM_ADDED_P50_MS:.0f} ms added at p50 (1 caller): {met} ({added:.1f} ms).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
