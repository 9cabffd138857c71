"""Benchmark what API keys cost on the cache-hit path: the key check and its rate limits.

What it measures
----------------
The cache-hit benchmark's load (bench/cache_hit.py: the same cached texts, raw HTTP/1.1
callers, 1, 16 and 64 concurrent callers) against two API processes on one private Redis,
as `make run` starts them:

* auth on: keys required (one key exists in the store); every request presents it in
  `X-API-Key`, so each pays the key check and the request bucket (one Lua call) and the
  characters bucket (a second one), and answers with RateLimit-* headers. The key's limits
  are set high enough never to refuse: refusals are not what is measured.
* auth off (the baseline): the same app with `AUTH__ENABLED=false`.

They alternate level by level, the order flipping every round. Reported per level:
throughput, client latency p50/p99 and server CPU per request of each, and the cost of auth:
1 − on ÷ off, the p50 difference, the CPU difference.

Then, in this process against the same kind of private Redis, the guard alone, timed over
`--calls` calls: `Access.admit` and `Access.charge_characters` for a key it has accepted
before (the steady state: leases from Redis every 2 % of the budget) against the same calls
with keys switched off (the baseline: they return at once). CPU µs per request, the median of
5 runs. Host noise on a 2-core VM moves the end-to-end figures by ±15 %; this part is what
the guard itself costs.

Aims: ≤ 10 % throughput cost at every level, ≤ 0.5 ms added to the p50 (at 1 client, where
the latency is the request's own and not a queue).

How to run
----------
From the repository root, with the repo's requirements installed (redis-server too)::

    .venv/bin/python bench/auth.py [--rounds 3] [--requests 1500]

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from app.audio.formats import OutputFormat
from app.auth import KeyStore, Scope
from app.auth.access import Access
from app.config import AuthSettings
from app.notifications import Notifier
from bench import cache_hit
from bench.services import api_env, api_pid, machine_lines, private_redis
from tests.processes import ApiProcess

AIM_COST = 0.10
AIM_P50_MS = 0.5
ON, OFF = "auth on", "auth off (baseline)"
PEPPER = "bench-pepper-0123456789abcdef"
UNLIMITED = 1_000_000_000


async def create_key(redis_url: str) -> str:
    async with Redis.from_url(redis_url) as redis:
        created = await KeyStore(redis, PEPPER).create(
            "bench",
            [Scope.SYNTHESIZE],
            requests_per_minute=UNLIMITED,
            characters_per_minute=UNLIMITED,
        )
    return created.key


def measure(args: argparse.Namespace) -> dict[tuple[int, str], cache_hit.Cell]:
    load = argparse.Namespace(rounds=args.rounds, requests=args.requests, caller="raw")
    bodies = cache_hit.request_bodies(OutputFormat.MP3_44100_128.value)
    path = cache_hit.SYNTHESIZE_PATH
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        work = Path(tmp)
        with private_redis(work / "redis") as redis_url:
            key = asyncio.run(create_key(redis_url))
            keyed_env = api_env(redis_url, AUTH__PEPPER=PEPPER)
            open_env = api_env(redis_url, AUTH__ENABLED="false")
            with ApiProcess(keyed_env, work) as on, ApiProcess(open_env, work) as off:
                cache_hit.warm_cache(off, redis_url, bodies)  # one cache: both hit it
                targets = (
                    cache_hit.Target(
                        ON, on.base_url + path, api_pid(on), True, redis_url, (("X-API-Key", key),)
                    ),
                    cache_hit.Target(OFF, off.base_url + path, api_pid(off), True, redis_url),
                )
                return asyncio.run(cache_hit.measure(targets, bodies, load))


async def guard_cost_us(redis_url: str, calls: int) -> tuple[float, float]:
    """CPU µs per admitted request: a remembered key's admit + charge, and keys off."""
    async with Redis.from_url(redis_url) as redis:
        events = Notifier(redis)
        keyed = Access(redis, AuthSettings(pepper=SecretStr(PEPPER)), events)
        open_ = Access(redis, AuthSettings(enabled=False), events)
        events.start()
        await asyncio.wait_for(events.connected.wait(), 5)
        key = await create_key(redis_url)
        conn = HTTPConnection(
            {
                "type": "http",
                "headers": [(b"x-api-key", key.encode())],
                "client": ("127.0.0.1", 1),
                "state": {},
                "query_string": b"",
            }
        )

        async def one(access: Access) -> None:
            caller = await access.admit(conn, Scope.SYNTHESIZE)
            await access.charge_characters(conn, caller, 40)

        async def per_call_us(access: Access) -> float:
            for _ in range(200):  # remembered, leases warm
                await one(access)
            runs = []
            for _ in range(5):
                started = time.process_time()
                for _ in range(calls):
                    await one(access)
                runs.append((time.process_time() - started) / calls * 1e6)
            return statistics.median(runs)

        try:
            return await per_call_us(keyed), await per_call_us(open_)
        finally:
            await events.stop()


def report(
    cells: dict[tuple[int, str], cache_hit.Cell],
    guard: tuple[float, float],
    args: argparse.Namespace,
) -> None:
    print("# Auth benchmark: cache hits with API keys required against keys switched off")
    print()
    for line in machine_lines():
        print(line)
    print(
        f"- Workload: {len(cache_hit.TEXTS)} cached texts in turn, mp3_44100_128; "
        f"{args.requests} requests per level and round ({max(1, args.requests // 5)} at 1 "
        f"client), {args.rounds} rounds; raw HTTP/1.1 callers in this process; both servers "
        "on one private Redis"
    )
    print()
    cache_hit.print_cost_table(cells, ON, OFF, "auth", AIM_COST)
    single_on, single_off = cells[(1, ON)], cells[(1, OFF)]
    added = single_on.latency(0.5) - single_off.latency(0.5)
    met = "met" if added <= AIM_P50_MS else "NOT met"
    print(f"Aim: auth adds ≤ {AIM_P50_MS} ms to the p50 at 1 client: {met} ({added:+.2f} ms).")
    not_hits = sum(cells[(c, n)].not_hits for c in cache_hit.LEVELS for n in (ON, OFF))
    print(f"Responses that were not `X-Cache: hit`: {not_hits}.")
    print()
    keyed_us, open_us = guard
    print(
        f"The guard alone, in process ({args.calls} calls × 5, median): a remembered key's "
        f"admit + characters charge {keyed_us:.1f} µs CPU per request, keys off {open_us:.1f} "
        f"µs: {keyed_us - open_us:+.1f} µs per request, against the app's "
        f"{cells[(1, OFF)].server_cpu_us:,.0f} µs per cache hit at 1 client "
        f"({(keyed_us - open_us) / cells[(1, OFF)].server_cpu_us:.1%})."
    )


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every level")
    parser.add_argument(
        "--requests", type=int, default=1500, help="requests per level and round (÷5 at 1 client)"
    )
    parser.add_argument("--calls", type=int, default=5000, help="guard calls per timed run")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < 5:
        parser.error("--rounds must be at least 1 and --requests at least 5")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cells = measure(args)
    with (
        tempfile.TemporaryDirectory(prefix="bench-auth-guard-") as tmp,
        private_redis(Path(tmp) / "redis") as redis_url,
    ):
        guard = asyncio.run(guard_cost_us(redis_url, args.calls))
    report(cells, guard, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
