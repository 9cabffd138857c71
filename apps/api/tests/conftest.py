"""Shared fixtures: a private redis-server, the fake ElevenLabs, settings and app clients."""

import os
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from app.config import Settings
from app.observability import metrics
from app.ops import local_redis
from tests.asgi import app_client
from tests.fakes.elevenlabs_server import FakeElevenLabs

SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="session", autouse=True)
def metrics_dir() -> Iterator[Path]:
    """This session's own PROMETHEUS_MULTIPROC_DIR, deleted when the session ends.

    It is exported (METRICS__MULTIPROC_DIR, PROMETHEUS_MULTIPROC_DIR) to every API, worker and
    beat process a test starts, so none writes to the default folder in /tmp. This process
    imported prometheus_client at collection, before the directory existed, so its values
    would stay in memory. `metrics.prepare_multiprocess` switches it to the directory: it swaps
    prometheus_client's value class and makes again the metrics made so far. In-process apps
    (the ASGI `client`) then write there too, and their GET /metrics adds up every process of
    the session. Tests compare counts before and after what they do.
    """
    saved = {
        name: os.environ.get(name)
        for name in ("METRICS__MULTIPROC_DIR", "PROMETHEUS_MULTIPROC_DIR")
    }
    with tempfile.TemporaryDirectory(prefix="seiketsu-voice-metrics-") as directory:
        os.environ["METRICS__MULTIPROC_DIR"] = directory
        try:
            yield metrics.prepare_multiprocess(Path(directory))
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free port; only this session uses (and may flush) it."""
    process: subprocess.Popen[bytes]
    process, port = local_redis.start_private(tmp_path_factory.mktemp("redis"))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def fake_elevenlabs() -> Iterator[FakeElevenLabs]:
    with FakeElevenLabs() as fake:
        yield fake


@pytest.fixture
def elevenlabs(fake_elevenlabs: FakeElevenLabs) -> FakeElevenLabs:
    fake_elevenlabs.reset()
    return fake_elevenlabs


@pytest.fixture
def fresh_redis(redis_url: str) -> str:
    """The session's private Redis, emptied for this test (ours: we may flush it)."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()
    return redis_url


@pytest.fixture
async def redis_client(fresh_redis: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the test's emptied Redis."""
    async with aioredis.Redis.from_url(fresh_redis) as client:
        yield client


@pytest.fixture
def make_settings(fresh_redis: str) -> SettingsFactory:
    """Settings for a test: our Redis, no upstream key unless given, nothing from .env."""
    redis_url = fresh_redis

    def build(**groups: dict[str, Any]) -> Settings:
        values: dict[str, dict[str, Any]] = {
            "elevenlabs": {"api_key": None},
            "redis": {"url": redis_url, "cache_url": None},
            "monitoring": {"webhook_url": None, "api_key": None},
        }
        for group, fields in groups.items():
            values.setdefault(group, {}).update(fields)
        return Settings(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
def upstream_settings(make_settings: SettingsFactory, elevenlabs: FakeElevenLabs) -> Settings:
    """Settings that point the service at the fake ElevenLabs with its valid key."""
    return make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url}
    )


@pytest.fixture
async def client(make_settings: SettingsFactory) -> AsyncIterator[httpx.AsyncClient]:
    """The app with no ElevenLabs key: the offline engine speaks."""
    async with app_client(make_settings()) as c:
        yield c


@pytest.fixture
async def upstream_client(upstream_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app speaking through the fake ElevenLabs."""
    async with app_client(upstream_settings) as c:
        yield c


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return Path(__file__).parent / "data"


class DisposableRedis:
    """A redis-server this test may kill and bring back on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = data_dir
        self.process, self.port = local_redis.start_private(data_dir)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)

    def restart(self) -> None:
        self.process, _ = local_redis.start_private(self._dir, self.port)


@pytest.fixture
def disposable_redis(tmp_path: Path) -> Iterator[DisposableRedis]:
    server = DisposableRedis(tmp_path)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.kill()
