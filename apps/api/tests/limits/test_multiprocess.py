"""The global upstream limit and the shared cache across real API processes.

Every test starts `uvicorn` processes the way `make run` does and talks to them over loopback
HTTP; ElevenLabs is the fake server (it counts what it sees) and Redis is a real redis-server.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from redis.asyncio import Redis

from app.limits.upstream import HOLDERS
from app.ops import local_redis
from tests.fakes.elevenlabs_server import Behavior, FakeElevenLabs
from tests.processes import ApiProcess, upstream_env

SYNTHESIZE = "/api/v1/voice/synthesize"
HOLDERS_KEY = HOLDERS.format(upstream="elevenlabs")
SLOTS = 50


def _upstream_env(redis_url: str, fake: FakeElevenLabs, **extra: str) -> dict[str, str]:
    """Speak through the fake; wait (up to 30 s) for a slot rather than fall back."""
    return upstream_env(
        redis_url, fake.base_url, fake.api_key, VOICE_RESPONSE_TIMEOUT_MS="30000", **extra
    )


def _start_all(envs: list[dict[str, str]], log_dir: Path) -> list[ApiProcess]:
    """Start the processes side by side (start-up is mostly CPU), then wait for each."""
    processes = [ApiProcess(env, log_dir) for env in envs]
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
    except BaseException:
        _stop_all(processes)
        raise
    return processes


def _stop_all(processes: list[ApiProcess]) -> None:
    for process in processes:
        process.stop()


@pytest.fixture(scope="module")
def fleet(
    redis_url: str, fake_elevenlabs: FakeElevenLabs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ApiProcess]]:
    """Four API processes sharing the session's Redis, with the default settings."""
    env = _upstream_env(redis_url, fake_elevenlabs)
    processes = _start_all([env] * 4, tmp_path_factory.mktemp("fleet"))
    try:
        yield processes
    finally:
        _stop_all(processes)


def _client(connections: int = 256) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


async def _synthesize(client: httpx.AsyncClient, base_url: str, text: str) -> httpx.Response:
    return await client.post(
        base_url + SYNTHESIZE,
        json={"text": text, "language": "en", "output_format": "ulaw_8000"},
    )


def _holders(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return int(client.zcard(HOLDERS_KEY))


async def _live_leases(client: Redis) -> int:
    """Holders whose lease has not run out, by Redis' clock (as the limiter's script counts)."""
    seconds, micros = await client.time()
    now_ms = seconds * 1000 + micros // 1000
    return int(await client.zcount(HOLDERS_KEY, f"({now_ms}", "+inf"))


async def _answered(
    calls: Sequence[Awaitable[httpx.Response]], redis_url: str, timeout_s: float = 20.0
) -> list[httpx.Response]:
    """Every call's response, or a failure that says how many hung and what Redis holds."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    if pending:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        pytest.fail(
            f"{len(pending)} of {len(tasks)} requests unanswered after {timeout_s} s; "
            f"slots held in Redis: {_holders(redis_url)}"
        )
    return [task.result() for task in tasks]


async def _poll(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> float:
    """Seconds until `check()` holds; fails the test past the deadline."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.integration
async def test_four_processes_keep_elevenlabs_at_fifty_requests_and_use_all_fifty(
    fleet: list[ApiProcess], elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    elevenlabs.behavior = Behavior(ttfb_s=0.5, chunk_delay_s=0.01, max_concurrent_requests=SLOTS)
    texts = [f"Listing number {n} has a sunny kitchen and a garden." for n in range(200)]

    async with _client() as client:
        calls = [_synthesize(client, fleet[n % 4].base_url, t) for n, t in enumerate(texts)]
        responses = await _answered(calls, fresh_redis)

    stats = elevenlabs.stats()
    assert [r.status_code for r in responses] == [200] * 200
    assert {r.headers["x-provider"] for r in responses} == {"elevenlabs"}
    assert stats.total_requests == 200
    assert 45 <= stats.peak_concurrent <= SLOTS
    assert _holders(fresh_redis) == 0


@pytest.mark.integration
async def test_twenty_identical_requests_on_two_processes_cost_one_upstream_call(
    fleet: list[ApiProcess], elevenlabs: FakeElevenLabs, fresh_redis: str
) -> None:
    elevenlabs.behavior = Behavior(ttfb_s=1.0)
    text = "The open house starts at noon on Saturday."

    async with _client() as client:
        calls = [_synthesize(client, fleet[n % 2].base_url, text) for n in range(20)]
        responses = await _answered(calls, fresh_redis)

    assert [r.status_code for r in responses] == [200] * 20
    assert elevenlabs.stats().total_requests == 1
    assert len({r.content for r in responses}) == 1
    assert Counter(r.headers["x-cache"] for r in responses) == {"miss": 1, "hit": 19}


@pytest.mark.integration
async def test_slots_of_a_killed_process_come_back_within_the_lease(
    fleet: list[ApiProcess],
    elevenlabs: FakeElevenLabs,
    fresh_redis: str,
    tmp_path: Path,
) -> None:
    survivor = fleet[0]
    elevenlabs.behavior = Behavior(ttfb_s=5.0)
    victim = ApiProcess(_upstream_env(fresh_redis, elevenlabs, LIMITER__LEASE_S="1"), tmp_path)
    state = Redis.from_url(fresh_redis)
    try:
        victim.start().wait_ready()
        async with _client() as client:
            held = [
                asyncio.create_task(_synthesize(client, victim.base_url, f"Held call {n}."))
                for n in range(10)
            ]

            async def ten_held() -> bool:
                return await _live_leases(state) == 10

            await _poll(ten_held, 5.0, "the victim holding ten slots")
            victim.kill()

            async def none_held() -> bool:
                return await _live_leases(state) == 0

            freed_after_s = await _poll(none_held, 3.0, "the killed process's slots freed")
            lost = await asyncio.gather(*held, return_exceptions=True)
            assert all(isinstance(outcome, httpx.TransportError) for outcome in lost)
            assert freed_after_s < 2.0

            elevenlabs.reset()
            elevenlabs.behavior = Behavior(ttfb_s=2.0, max_concurrent_requests=SLOTS)
            texts = [f"After the crash, caller {n} asks about parking." for n in range(55)]
            calls = [_synthesize(client, survivor.base_url, t) for t in texts]
            responses = await _answered(calls, fresh_redis)
    finally:
        victim.stop()
        await state.aclose()

    assert [r.status_code for r in responses] == [200] * 55
    assert {r.headers["x-provider"] for r in responses} == {"elevenlabs"}
    assert elevenlabs.stats().peak_concurrent == SLOTS
    assert _holders(fresh_redis) == 0


class _RedisServer:
    """A redis-server of the test's own, which it may kill and start again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._process, self.port = local_redis.start_private(data_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self._process.kill()
        self._process.wait(timeout=10)

    def restart(self) -> None:
        """A new, empty server where the old one was."""
        self._process, _ = local_redis.start_private(self._data_dir, self.port)


@dataclass(frozen=True, slots=True)
class _Outcome:
    started_s: float
    finished_s: float
    status: int
    cache: str | None
    content_type: str | None
    size: int


REPEATED = (
    "Thank you for calling Maple Realty.",
    "Please hold while I check the calendar.",
    "The property has three bedrooms.",
)


async def _steady_load(
    client: httpx.AsyncClient, base_urls: list[str], began: float, duration_s: float
) -> list[_Outcome]:
    """Eight callers in a loop, half new texts and half a few repeated ones, round-robin."""
    outcomes: list[_Outcome] = []
    numbers = iter(range(1_000_000))

    async def caller(base_url: str) -> None:
        while time.monotonic() - began < duration_s:
            n = next(numbers)
            text = REPEATED[n % 3] if n % 2 else f"Steady caller {n} wants a viewing."
            started_s = time.monotonic() - began
            response = await _synthesize(client, base_url, text)
            outcomes.append(
                _Outcome(
                    started_s=started_s,
                    finished_s=time.monotonic() - began,
                    status=response.status_code,
                    cache=response.headers.get("x-cache"),
                    content_type=response.headers.get("content-type"),
                    size=len(response.content),
                )
            )

    async with asyncio.TaskGroup() as group:
        for n in range(8):
            group.create_task(caller(base_urls[n % len(base_urls)]))
    return outcomes


@pytest.mark.integration
async def test_requests_survive_a_redis_restart_and_caching_and_the_limit_come_back(
    elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    elevenlabs.behavior = Behavior(ttfb_s=0.02, max_concurrent_requests=SLOTS)
    server = _RedisServer(tmp_path / "redis")
    state = Redis.from_url(server.url)
    processes: list[ApiProcess] = []
    try:
        # A follower whose leader's notice died with Redis waits this long, then speaks itself.
        env = _upstream_env(server.url, elevenlabs, CACHE__FLIGHT_WAIT_S="3")
        processes = _start_all([env] * 2, tmp_path)
        base_urls = [p.base_url for p in processes]
        async with _client() as client:
            began = time.monotonic()
            load = asyncio.create_task(_steady_load(client, base_urls, began, duration_s=4.0))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.kill)
            killed_s = time.monotonic() - began
            await asyncio.sleep(2.0)
            await asyncio.to_thread(server.restart)
            restarted_s = time.monotonic() - began
            outcomes = await load

            assert len(outcomes) > 40
            assert [o.status for o in outcomes] == [200] * len(outcomes)
            assert all(o.content_type == "audio/basic" and o.size > 800 for o in outcomes)
            assert all(o.cache in ("hit", "miss") for o in outcomes if o.finished_s < killed_s)
            assert any(
                o.cache == "bypass" for o in outcomes if killed_s <= o.started_s < restarted_s
            )

            async def ready_again() -> bool:
                answers = [await client.get(url + "/ready") for url in base_urls]
                return all(r.status_code == 200 for r in answers)

            await _poll(ready_again, 5.0, "/ready on both processes")

            text = "Caching is back after the restart."

            async def cached_again() -> bool:
                response = await _synthesize(client, base_urls[0], text)
                assert response.status_code == 200
                return response.headers["x-cache"] == "hit"

            await _poll(cached_again, 5.0, "a repeated text answered from the cache")
            assert (await _synthesize(client, base_urls[1], text)).headers["x-cache"] == "hit"

            elevenlabs.behavior = Behavior(ttfb_s=1.0, max_concurrent_requests=SLOTS)
            calls = [
                asyncio.create_task(_synthesize(client, base_urls[n % 2], f"Global, caller {n}."))
                for n in range(6)
            ]

            async def six_held_in_redis() -> bool:
                return await _live_leases(state) == 6

            await _poll(six_held_in_redis, 3.0, "both processes holding slots in Redis again")
            assert [r.status_code for r in await asyncio.gather(*calls)] == [200] * 6
    finally:
        _stop_all(processes)
        await state.aclose()
        server.kill()
