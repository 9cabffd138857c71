"""Detailed health with a real worker and beat running: every dependency ok."""

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.jobs.conftest import WorkerFactory
from tests.processes import beat

pytestmark = pytest.mark.integration

URL = "/api/v1/voice/streaming/health/detailed"


@pytest.mark.usefixtures("empty_broker")
async def test_with_a_worker_and_beat_running_every_dependency_is_ok(
    jobs_client: httpx.AsyncClient,
    start_worker: WorkerFactory,
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    worker = start_worker(JOBS__EVALUATE_EVERY_S="1")
    with beat({**worker_env, "JOBS__EVALUATE_EVERY_S": "1"}, tmp_path):
        deadline = time.monotonic() + 20
        while True:
            body = (await jobs_client.get(URL)).json()
            if body["status"] == "ok" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    worker.stop()
    after_stop = (await jobs_client.get(URL)).json()["dependencies"]["workers"]

    deps = body["dependencies"]
    assert body["status"] == "ok", {k: (v["status"], v["error"]) for k, v in deps.items()}
    (alive,) = deps["workers"]["details"]["alive"]
    assert alive["concurrency"] == 2
    assert "analytics.evaluate" in deps["beat"]["details"]
    assert deps["elevenlabs"]["status"] == "ok"
    # A worker that stops cleanly takes its heartbeat with it.
    assert after_stop["status"] == "degraded"
    assert after_stop["details"]["alive"] == []
