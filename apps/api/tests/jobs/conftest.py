"""A real Celery worker (started by `make worker`) on the session's private Redis.

The broker lives in database 1 so that the per-test flush of database 0 (job records, cache,
limiter) never removes kombu's queue bindings from under a running worker.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.config import Settings
from app.jobs.celery_config import REDBEAT_PREFIX
from tests.asgi import app_client
from tests.conftest import SettingsFactory
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import MakeProcess, upstream_env, worker

WORKER_SETTINGS = {
    # Short enough that a chunk left by a killed worker comes back within a test.
    "JOBS__VISIBILITY_TIMEOUT_S": "20",
    "JOBS__TASK_TIME_LIMIT_S": "10",
    # A killed worker's flights are waited for this long before another process computes.
    "CACHE__FLIGHT_WAIT_S": "2",
    "JOBS__CHUNK_ITEMS": "10",
    "WORKER_CONCURRENCY": "2",
}


@pytest.fixture(scope="session")
def broker_url(redis_url: str) -> str:
    url = redis_url.rsplit("/", 1)[0] + "/1"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture(scope="session")
def worker_env(redis_url: str, broker_url: str, fake_elevenlabs: FakeElevenLabs) -> dict[str, str]:
    return upstream_env(
        redis_url,
        fake_elevenlabs.base_url,
        fake_elevenlabs.api_key,
        CELERY_BROKER_URL=broker_url,
        **WORKER_SETTINGS,
    )


WorkerFactory = Callable[..., MakeProcess]

QUEUE = "seiketsu-voice"
# The job queue and kombu's bookkeeping of delivered, unacknowledged tasks.
QUEUE_KEYS = (QUEUE, "unacked", "unacked_index", "unacked_mutex")


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start `make worker` processes (env overrides as keyword arguments); all stop after."""
    started: list[MakeProcess] = []

    def start(**env: str) -> MakeProcess:
        process = worker({**worker_env, **env}, tmp_path).start().wait_ready()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def shared_worker(
    worker_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MakeProcess]:
    """One worker for a whole module of tests that do not kill it.

    Without the memory tier: the tests empty Redis to start uncached, which it would outlive.
    """
    env = {**worker_env, "CACHE__MEMORY_BYTES": "0"}
    with worker(env, tmp_path_factory.mktemp("worker")) as process:
        yield process


@pytest.fixture
def jobs_settings(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs, broker_url: str
) -> Settings:
    """The API's settings: the fake ElevenLabs, the test Redis, the worker's broker."""
    return make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url},
        jobs={"broker_url": broker_url, "chunk_items": int(WORKER_SETTINGS["JOBS__CHUNK_ITEMS"])},
    )


@pytest.fixture
async def jobs_client(jobs_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(jobs_settings) as client:
        yield client


@pytest.fixture
def empty_broker(broker_url: str) -> Iterator[str]:
    """The broker database with no queued task and no RedBeat schedule or lock, before and
    after the test (an earlier test's beat may have queued tasks that no worker took)."""

    def wipe() -> None:
        with redis.Redis.from_url(broker_url) as client:
            keys = list(client.scan_iter(match=REDBEAT_PREFIX + "*"))
            client.delete(*keys, *QUEUE_KEYS)

    wipe()
    yield broker_url
    wipe()
