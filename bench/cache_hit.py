"""Benchmark cache hits through the whole API against a bare ASGI app reading the same key.

What it measures
----------------
`POST /api/v1/voice/synthesize` for texts whose audio is already cached, through the full
app as `make run` starts it (uvicorn, FastAPI's routing and middleware, the route's key check
and validation (app.api.lean_route), planning with language detection and cache keys, the
cache lookup, hit counting, the analytics sample, joining the body), against a baseline
measured in the same run: a bare ASGI app under the same uvicorn settings, in its own
process, that takes the same request, does one GET of the same Redis key in the same private
redis-server (through a client from the app's own factory), strips the cache value's header
and returns the audio.

The app runs with its defaults, so a hit is served from the process's memory tier
(`CACHE__MEMORY_BYTES`, app.cache.hot_audio) once Redis has answered for that text: no Redis
command at all (the table's last column shows it). A second app process with
`CACHE__MEMORY_BYTES=0`, measured in the same rounds, shows the Redis-only hit path against
the same baseline in a second table (no aim applies to it).

* Warm-up: one request per text (several distinct texts in en/es/zh and different personas,
  each one segment), spoken by the offline engine (no upstream key); each must be a `miss`
  that adds exactly one key to Redis. Both servers must then return 200 for every text
  (identical bodies are reported, not required: the app also drops the MP3 Info frame).
* Load: closed loop at 1, 16 and 64 concurrent callers, all in this process, each with its
  own keep-alive connection. The default load generator writes HTTP/1.1 on asyncio streams
  and reads Content-Length bodies, nothing else: httpx (`--caller httpx`, one AsyncClient per
  caller) spent more CPU per request than the baseline server did, and 64 callers sharing
  one pooled AsyncClient saturated this process's CPU at a fraction of either server's rate.
  The request sequence is fixed: the texts in turn, the JSON bodies encoded once. Every app
  response must be `X-Cache: hit`.
* Per level and server: throughput (req/s), client-side latency p50/p99, server time p50/p99
  from `Server-Timing: total` (the app's spans its handler from planning to the joined body;
  the baseline's spans its GET and slice), the server's CPU per request (`/proc`, every
  thread), the load generator's CPU use (near 100 % would mean the client is the limit) and
  the Redis commands per request (INFO commandstats: those clients sent, then those Lua
  scripts ran).
* `--rounds` rounds (7), the servers taking turns level by level (the order rotates every
  round); throughput is the median round, percentiles pool every round's requests. This
  VM's speed moves for seconds at a time, so one server can run a whole level in a slow
  spell: with 3 rounds the lowest ratio of back-to-back runs spread over 0.56-0.72, with 9
  over 0.68-0.70.

Aim: app ≥ 60 % of the baseline's throughput at every level, and app p99 server time ≤ 5 ms
at 64 clients.

How to run
----------
From the repository root, with the repo's requirements installed (redis-server too: the
benchmark starts its own on a free port and stops it)::

    python bench/cache_hit.py [--rounds 7] [--requests 1500] [--output-format mp3_44100_128]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis
import uvicorn
from redis.asyncio import Redis
from starlette.types import Message, Receive, Scope, Send

from app.audio.formats import OutputFormat, spec_of
from app.cache.keys import KEY_PREFIX
from app.ops.local_redis import free_port
from app.serve import SERVER_OPTIONS
from bench.services import (
    RawCaller,
    api_env,
    api_pid,
    app_redis_client,
    machine_lines,
    percentile,
    private_redis,
    process_cpu_s,
    redis_command_calls,
    redis_version,
    server_timing_ms,
)
from tests.processes import ApiProcess

# One sentence each (one segment), the personas and languages agents use.
TEXTS: tuple[tuple[str, str], ...] = (
    (
        "friendly",
        "Thanks for calling Maple Realty, this is Ava, how can I help you today?",
    ),
    ("professional", "The home at 1418 Birchwood Lane is listed at $485,000."),
    ("friendly", "Would Saturday at eleven in the morning work for a showing?"),
    ("casual", "No problem at all, I'll text you the address right now."),
    ("multilingual", "Gracias por llamar a Maple Realty, ¿en qué le puedo ayudar?"),
    ("multilingual", "La casa tiene tres recámaras y dos baños completos."),
    ("multilingual", "您好，感谢致电枫叶地产，请问有什么可以帮您？"),
    ("multilingual", "这套房子的挂牌价是四十八万五千美元。"),
)
LEVELS = (1, 16, 64)
SYNTHESIZE_PATH = "/api/v1/voice/synthesize"
AIM_THROUGHPUT_RATIO = 0.6
AIM_P99_SERVER_MS = 5.0
AIM_AT_CLIENTS = 64
REDIS_ONLY = "app, no memory tier"


# The baseline: a bare ASGI app that GETs the key and returns the audio.


class BaselineApp:
    """Answers POST {"text": ...} with the cached audio of that text: one Redis GET."""

    def __init__(self, redis_url: str, keys: dict[str, str], media_type: str) -> None:
        self._redis_url = redis_url
        self._keys = keys
        self._media_type = media_type.encode()
        self._redis: Redis | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._redis = app_redis_client(self._redis_url)  # the app's pool and options
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._redis is not None:
                    await self._redis.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message: Message = await receive()
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
        if scope["method"] != "POST" or self._redis is None:
            await _respond(send, 200, b"ok", b"text/plain", None)
            return
        started = time.perf_counter()
        value = await self._redis.get(self._keys[json.loads(body)["text"]])
        if not isinstance(value, bytes):
            await _respond(send, 404, b"not cached", b"text/plain", None)
            return
        # A cache value is MAGIC, 4-byte metadata length, metadata, audio (app.cache.entry).
        audio = value[8 + int.from_bytes(value[4:8], "big") :]
        elapsed_ms = (time.perf_counter() - started) * 1000
        await _respond(send, 200, audio, self._media_type, f"total;dur={elapsed_ms:.1f}")


async def _respond(
    send: Send, status: int, body: bytes, media_type: bytes, timing: str | None
) -> None:
    headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
    ]
    if timing is not None:
        headers.append((b"server-timing", timing.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_baseline(port: int, redis_url: str, keys_file: Path, output_format: str) -> None:
    """Child-process entry point: the baseline under uvicorn, as `make run` configures it."""
    keys: dict[str, str] = json.loads(keys_file.read_text())
    # As the app does after start-up: what is loaded now is never garbage, so the cyclic GC
    # need not walk it (otherwise its full collections stall the baseline for tens of ms).
    gc.freeze()
    app = BaselineApp(redis_url, keys, spec_of(OutputFormat(output_format)).media_type)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, **SERVER_OPTIONS)
    uvicorn.Server(config).run()


class BaselineProcess:
    """The parent's handle on the baseline server process."""

    def __init__(self, redis_url: str, keys_file: Path, output_format: str, log: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, str(Path(__file__).resolve()), "--serve-baseline", str(self.port),
            "--redis-url", redis_url, "--keys-file", str(keys_file),
            "--output-format", output_format,
        ]  # fmt: skip
        with log.open("wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._log = log

    @property
    def pid(self) -> int:
        return self._process.pid

    def __enter__(self) -> Self:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the baseline exited:\n{self._log.read_text()}")
            try:
                if httpx.get(self.base_url, timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self._stop()
        raise RuntimeError("the baseline did not answer in 30 s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)


# The load generator.


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    pid: int
    expect_hit: bool
    redis_url: str
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (an API key)


@dataclass
class LevelRun:
    requests: int
    wall_s: float
    client_cpu_s: float
    server_cpu_s: float
    latencies_ms: list[float]
    server_ms: list[float]
    not_hits: int
    redis_commands: dict[str, int]


@dataclass
class Cell:
    """One server at one concurrency level, over every round."""

    runs: list[LevelRun] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return statistics.median(run.requests / run.wall_s for run in self.runs)

    def latency(self, fraction: float) -> float:
        return percentile([ms for run in self.runs for ms in run.latencies_ms], fraction)

    def server(self, fraction: float) -> float:
        return percentile([ms for run in self.runs for ms in run.server_ms], fraction)

    @property
    def server_cpu_us(self) -> float:
        requests = sum(run.requests for run in self.runs)
        return sum(run.server_cpu_s for run in self.runs) / requests * 1e6

    @property
    def client_cpu(self) -> float:
        return sum(run.client_cpu_s for run in self.runs) / sum(run.wall_s for run in self.runs)

    @property
    def not_hits(self) -> int:
        return sum(run.not_hits for run in self.runs)

    @property
    def redis_per_request(self) -> dict[str, float]:
        requests = sum(run.requests for run in self.runs)
        totals: dict[str, int] = {}
        for run in self.runs:
            for name, calls in run.redis_commands.items():
                totals[name] = totals.get(name, 0) + calls
        return {name: calls / requests for name, calls in sorted(totals.items())}


def _difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    return {name: calls for name, calls in changed.items() if calls > 0}


def request_bodies(output_format: str) -> list[bytes]:
    return [
        json.dumps(
            {"text": text, "persona": persona, "output_format": output_format},
            ensure_ascii=False,
        ).encode()
        for persona, text in TEXTS
    ]


class Caller(Protocol):
    """One simulated caller: one keep-alive connection, one request at a time."""

    async def post(self, body: bytes) -> tuple[int, dict[str, str]]: ...

    async def close(self) -> None: ...


class HttpxCaller:
    """An httpx.AsyncClient of its own (a shared pool costs far more CPU at 64 callers)."""

    def __init__(self, url: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._url = url
        self._headers = {"content-type": "application/json", **dict(headers)}
        self._client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=1))

    async def post(self, body: bytes) -> tuple[int, dict[str, str]]:
        response = await self._client.post(self._url, content=body, headers=self._headers)
        return response.status_code, dict(response.headers)

    async def close(self) -> None:
        await self._client.aclose()


CALLERS: dict[str, type[RawCaller] | type[HttpxCaller]] = {
    "raw": RawCaller,
    "httpx": HttpxCaller,
}
CALLER_NOTES = {
    "raw": "HTTP/1.1 on asyncio streams, one keep-alive connection per caller "
    "(`--caller httpx`: one httpx.AsyncClient per caller)",
    "httpx": "one httpx.AsyncClient per caller, one keep-alive connection each",
}


async def drive(
    target: Target, bodies: Sequence[bytes], clients: int, count: int, caller: str
) -> LevelRun:
    """`count` requests from `clients` closed-loop callers, the bodies in turn."""
    pool: list[Caller] = [CALLERS[caller](target.url, target.headers) for _ in range(clients)]
    latencies: list[float] = []
    server: list[float] = []
    not_hits = 0
    issued = 0

    async def one(client: Caller, body: bytes, record: bool) -> None:
        nonlocal not_hits
        started = time.perf_counter()
        status, headers = await client.post(body)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise RuntimeError(f"{target.name} answered {status}")
        if not record:
            return
        latencies.append(elapsed_ms)
        timing = server_timing_ms(headers.get("server-timing"))
        if timing is not None:
            server.append(timing)
        if target.expect_hit and headers.get("x-cache") != "hit":
            not_hits += 1

    async def client_loop(client: Caller) -> None:
        nonlocal issued
        while issued < count:
            index = issued
            issued += 1
            await one(client, bodies[index % len(bodies)], record=True)

    try:
        # Connect every caller and warm both ends before the clock starts.
        await asyncio.gather(*(one(c, bodies[i % len(bodies)], False) for i, c in enumerate(pool)))
        commands_before = redis_command_calls(target.redis_url)
        cpu_start, server_start = time.process_time(), process_cpu_s(target.pid)
        wall_start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for client in pool))
        wall = time.perf_counter() - wall_start
        cpu, server_cpu = (
            time.process_time() - cpu_start,
            process_cpu_s(target.pid) - server_start,
        )
        commands = _difference(redis_command_calls(target.redis_url), commands_before)
    finally:
        await asyncio.gather(*(client.close() for client in pool))
    return LevelRun(count, wall, cpu, server_cpu, latencies, server, not_hits, commands)


async def measure(
    targets: Sequence[Target], bodies: Sequence[bytes], args: argparse.Namespace
) -> dict[tuple[int, str], Cell]:
    cells: dict[tuple[int, str], Cell] = {}
    for round_index in range(args.rounds):
        # Each server goes first as often as the others (two: the order flips every round).
        turn = round_index % len(targets)
        order = [*targets[turn:], *targets[:turn]]
        for clients in LEVELS:
            count = args.requests if clients > 1 else max(1, args.requests // 5)
            for target in order:
                run = await drive(target, bodies, clients, count, args.caller)
                cells.setdefault((clients, target.name), Cell()).runs.append(run)
    return cells


# Set-up: warm the cache, find each text's key.


def warm_cache(api: ApiProcess, redis_url: str, bodies: Sequence[bytes]) -> dict[str, str]:
    """One request per text (a miss); the key each one added to Redis."""
    keys: dict[str, str] = {}
    with redis.Redis.from_url(redis_url) as client, httpx.Client(timeout=60) as http:
        for body in bodies:
            before = set(client.scan_iter(match=KEY_PREFIX + "*"))
            response = http.post(
                api.base_url + SYNTHESIZE_PATH,
                content=body,
                headers={"content-type": "application/json"},
            )
            if response.status_code != 200 or response.headers.get("x-cache") != "miss":
                raise RuntimeError(f"warm-up: {response.status_code} {response.headers}")
            added = set(client.scan_iter(match=KEY_PREFIX + "*")) - before
            if len(added) != 1:
                raise RuntimeError(f"warm-up added {len(added)} keys, not 1 (one segment each)")
            keys[json.loads(body)["text"]] = added.pop().decode()
    return keys


def compare_bodies(app_url: str, baseline_url: str, bodies: Sequence[bytes]) -> str:
    identical = 0
    sizes: list[tuple[int, int]] = []
    with httpx.Client(timeout=30) as http:
        for body in bodies:
            answers = [
                http.post(url, content=body, headers={"content-type": "application/json"})
                for url in (app_url, baseline_url)
            ]
            if any(a.status_code != 200 for a in answers):
                raise RuntimeError(f"check: {[a.status_code for a in answers]}")
            identical += answers[0].content == answers[1].content
            sizes.append((len(answers[0].content), len(answers[1].content)))
    app_kb = sum(s[0] for s in sizes) / len(sizes) / 1024
    baseline_kb = sum(s[1] for s in sizes) / len(sizes) / 1024
    return (
        f"{identical} of {len(sizes)} bodies identical; mean body {app_kb:.1f} KiB (app), "
        f"{baseline_kb:.1f} KiB (baseline)"
    )


# Report.


def print_header(args: argparse.Namespace, redis_info: str, bodies_check: str) -> None:
    print("# Cache-hit benchmark: the full API against a bare ASGI app doing one Redis GET")
    print()
    for line in machine_lines():
        print(line)
    print(f"- redis-server {redis_info}, private, on loopback; offline engine filled the cache")
    print(
        f"- Workload: {len(TEXTS)} cached texts (en/es/zh, one segment each) in turn, "
        f"`{args.output_format}`; {args.requests} requests per level and round "
        f"({max(1, args.requests // 5)} at 1 client), {args.rounds} rounds"
    )
    print(f"- Load generator: {CALLER_NOTES[args.caller]}; all callers in this process")
    print(f"- Check: {bodies_check}")
    print()


def print_rows(cells: dict[tuple[int, str], Cell], app_name: str) -> None:
    print(
        "| clients | server | req/s | client p50 ms | client p99 ms | server p50 ms "
        "| server p99 ms | server CPU µs/req | load-generator CPU | Redis commands per request |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for clients in LEVELS:
        app, base = cells[(clients, app_name)], cells[(clients, "baseline")]
        for name, cell in ((app_name, app), ("baseline", base)):
            print(
                f"| {clients} | {name} | {cell.throughput:,.0f} | {cell.latency(0.5):.2f} "
                f"| {cell.latency(0.99):.2f} | {cell.server(0.5):.1f} | {cell.server(0.99):.1f} "
                f"| {cell.server_cpu_us:,.0f} | {cell.client_cpu:.0%} "
                f"| {_commands(cell.redis_per_request)} |"
            )
        print(
            f"| {clients} | **app ÷ baseline** | **{app.throughput / base.throughput:.2f}×** "
            f"| {app.latency(0.5) / base.latency(0.5):.2f}× "
            f"| {app.latency(0.99) / base.latency(0.99):.2f}× "
            f"| {app.server(0.5) / base.server(0.5):.1f}× "
            f"| {app.server(0.99) / base.server(0.99):.1f}× "
            f"| {app.server_cpu_us / base.server_cpu_us:.2f}× | | |"
        )
    print()
    not_hits = sum(cells[(c, app_name)].not_hits for c in LEVELS)
    print(f"App responses that were not `X-Cache: hit`: {not_hits}.")


def print_table(cells: dict[tuple[int, str], Cell]) -> None:
    print_rows(cells, "app")
    ratios = {c: cells[(c, "app")].throughput / cells[(c, "baseline")].throughput for c in LEVELS}
    worst = min(ratios, key=lambda c: ratios[c])
    met = "met" if ratios[worst] >= AIM_THROUGHPUT_RATIO else "NOT met"
    print(
        f"Aim throughput ≥ {AIM_THROUGHPUT_RATIO:.0%} of the baseline at every level: {met} "
        f"(lowest {ratios[worst]:.0%}, at {worst} client{'s' if worst > 1 else ''})."
    )
    p99 = cells[(AIM_AT_CLIENTS, "app")].server(0.99)
    base_p99 = cells[(AIM_AT_CLIENTS, "baseline")].server(0.99)
    met = "met" if p99 <= AIM_P99_SERVER_MS else "NOT met"
    print(
        f"Aim app p99 server time ≤ {AIM_P99_SERVER_MS:.0f} ms at {AIM_AT_CLIENTS} clients: "
        f"{met} ({p99:.1f} ms; the baseline's {base_p99:.1f} ms)."
    )
    print(
        "Server time is the time inside the handler, waits on the event loop included: once a "
        "server is saturated it grows with the number of requests in flight."
    )
    if any(name == REDIS_ONLY for _, name in cells):
        print()
        print(f"## The Redis-only hit path (`{REDIS_ONLY}`: `CACHE__MEMORY_BYTES=0`)")
        print()
        print_rows(cells, REDIS_ONLY)
        lowest = min(
            cells[(c, REDIS_ONLY)].throughput / cells[(c, "baseline")].throughput for c in LEVELS
        )
        print(f"Its throughput against the baseline: {lowest:.0%} at the lowest level.")


def print_cost_table(
    cells: dict[tuple[int, str], Cell], on: str, off: str, what: str, aim: float
) -> None:
    """Two variants of the app at each level, and what `on` costs against `off` (the baseline):
    1 − throughput ratio, and the differences in client p50 and server CPU per request."""
    print(f"| clients | {what} | req/s | client p50 ms | client p99 ms | server CPU µs/req |")
    print("|---:|---|---:|---:|---:|---:|")
    costs = {}
    for clients in LEVELS:
        with_it, without = cells[(clients, on)], cells[(clients, off)]
        for name, cell in ((on, with_it), (off, without)):
            print(
                f"| {clients} | {name} | {cell.throughput:,.0f} | {cell.latency(0.5):.2f} "
                f"| {cell.latency(0.99):.2f} | {cell.server_cpu_us:,.0f} |"
            )
        costs[clients] = 1 - with_it.throughput / without.throughput
        print(
            f"| {clients} | **cost of {what}** | **{costs[clients]:.1%}** "
            f"| {with_it.latency(0.5) - without.latency(0.5):+.2f} ms "
            f"| {with_it.latency(0.99) - without.latency(0.99):+.2f} ms "
            f"| {with_it.server_cpu_us - without.server_cpu_us:+,.0f} µs |"
        )
    print()
    worst = max(costs, key=lambda c: costs[c])
    met = "met" if costs[worst] <= aim else "NOT met"
    print(
        f"Aim: {what} costs ≤ {aim:.0%} of the throughput at every level: {met} "
        f"(highest {costs[worst]:.1%}, at {worst} client{'s' if worst > 1 else ''})."
    )


def _commands(per_request: dict[str, float]) -> str:
    """Commands a client sent (round trips, pipelined ones apart), then those scripts ran."""
    sent = {n: c for n, c in per_request.items() if _sent_by_clients(n) and c >= 0.01}
    inside = sum(c for n, c in per_request.items() if not _sent_by_clients(n))
    parts = ", ".join(f"{name} {calls:.2f}" for name, calls in sent.items())
    return f"{sum(sent.values()):.2f} ({parts}); {inside:.1f} inside scripts"


def _sent_by_clients(command: str) -> bool:
    # INFO commandstats also counts the commands Lua scripts run; these are the ones our
    # clients send themselves in this workload.
    return command.startswith(("eval", "script|")) or command in _CLIENT_COMMANDS


_CLIENT_COMMANDS = frozenset({"get", "mget", "set", "ping", "hello", "publish", "client|setinfo"})


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=7, help="rounds over every level")
    parser.add_argument(
        "--requests",
        type=int,
        default=1500,
        help="requests per level and round (÷5 at 1 client)",
    )
    parser.add_argument(
        "--output-format",
        default=OutputFormat.MP3_44100_128.value,
        choices=[f.value for f in OutputFormat],
    )
    parser.add_argument(
        "--caller",
        default="raw",
        choices=sorted(CALLERS),
        help="load generator: raw HTTP/1.1 on asyncio streams, or one httpx.AsyncClient per caller",
    )
    parser.add_argument(
        "--no-redis-only",
        dest="redis_only",
        action="store_false",
        help="skip the second app process without the memory tier",
    )
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--keys-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 5:
        parser.error("--rounds must be at least 1 and --requests at least 5")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_baseline is not None:
        serve_baseline(args.serve_baseline, args.redis_url, args.keys_file, args.output_format)
        return 0
    bodies = request_bodies(args.output_format)
    with tempfile.TemporaryDirectory(prefix="bench-cache-hit-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url:
            # No upstream key: the offline engine fills the cache.
            with ExitStack() as servers:
                api = servers.enter_context(ApiProcess(api_env(redis_url), work))
                keys = warm_cache(api, redis_url, bodies)
                keys_file = work / "keys.json"
                keys_file.write_text(json.dumps(keys, ensure_ascii=False))
                log = work / "baseline.log"
                with BaselineProcess(redis_url, keys_file, args.output_format, log) as baseline:
                    app_url, baseline_url = (
                        api.base_url + SYNTHESIZE_PATH,
                        baseline.base_url,
                    )
                    check = compare_bodies(app_url, baseline_url, bodies)
                    targets = [
                        Target("app", app_url, api_pid(api), True, redis_url),
                        Target("baseline", baseline_url, baseline.pid, False, redis_url),
                    ]
                    if args.redis_only:
                        env = api_env(redis_url, CACHE__MEMORY_BYTES="0")
                        other = servers.enter_context(ApiProcess(env, work))
                        url = other.base_url + SYNTHESIZE_PATH
                        targets.append(Target(REDIS_ONLY, url, api_pid(other), True, redis_url))
                    cells = asyncio.run(measure(targets, bodies, args))
            info = redis_version(redis_url)
    print_header(args, info, check)
    print_table(cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
