"""GET /streaming/health/detailed without workers or beat, with upstream faults, Redis away."""

import shutil
import time
from pathlib import Path

import espeakng_loader
import httpx
import pytest

from app.ops.local_redis import free_port
from tests.asgi import app_client
from tests.conftest import SettingsFactory
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.processes import ApiProcess, api_env

URL = "/api/v1/voice/streaming/health/detailed"


async def test_without_workers_or_beat_the_service_speaks_but_says_degraded(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(URL)

    assert response.status_code == 200
    body = response.json()
    deps = body["dependencies"]
    assert body["status"] == "degraded"
    assert deps["offline_engine"]["status"] == "ok"
    assert deps["offline_engine"]["latency_ms"] > 0
    assert deps["elevenlabs"]["status"] == "not_configured"
    assert deps["state_redis"]["status"] == "ok"
    assert deps["cache_redis"]["details"]["same_server_as_state"] is True
    assert deps["workers"]["status"] == "degraded"
    assert deps["beat"]["status"] == "degraded"
    assert deps["limiter"]["details"]["slots"] == 50
    assert deps["websocket_sessions"]["details"]["this_process"] == 0
    assert deps["process"]["details"]["asyncio_tasks"] > 0
    assert deps["process"]["details"]["open_fds"] > 0
    assert deps["process"]["details"]["rss_bytes"] > 10_000_000
    assert deps["process"]["details"]["event_loop_lag_ms"] < 250


async def test_a_lagging_event_loop_makes_the_process_degraded_with_the_lag(
    client: httpx.AsyncClient,
) -> None:
    time.sleep(0.4)  # noqa: ASYNC251 -- holds the app's loop, as a CPU-bound burst would
    held = (await client.get(URL)).json()["dependencies"]["process"]

    assert held["status"] == "degraded"
    assert held["details"]["event_loop_lag_ms"] >= 300
    assert "overloaded" in held["error"]


async def test_an_upstream_with_a_bad_key_is_down_while_the_service_still_speaks(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    settings = make_settings(elevenlabs={"api_key": "not-the-key", "base_url": elevenlabs.base_url})
    async with app_client(settings) as client:
        response = await client.get(URL)

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["dependencies"]["elevenlabs"]["status"] == "down"
    assert "invalid" in body["dependencies"]["elevenlabs"]["error"].lower()


async def test_a_healthy_upstream_reports_its_quota_and_is_probed_at_most_every_30_s(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs
) -> None:
    first = (await upstream_client.get(URL)).json()["dependencies"]["elevenlabs"]
    second = (await upstream_client.get(URL)).json()["dependencies"]["elevenlabs"]

    assert first["status"] == "ok"
    assert first["details"]["character_limit"] == 100_000
    probes = [r for r in elevenlabs.stats().requests if r.path == "/v1/user/subscription"]
    assert len(probes) == 1
    assert second["details"]["at"] == first["details"]["at"]


async def test_with_the_state_redis_away_health_says_which_and_still_answers(
    make_settings: SettingsFactory,
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with app_client(make_settings(redis={"url": dead, "cache_url": None})) as client:
        response = await client.get(URL)

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["dependencies"]["state_redis"]["status"] == "down"
    assert body["dependencies"]["offline_engine"]["status"] == "ok"
    assert body["dependencies"]["limiter"]["status"] == "degraded"


@pytest.mark.integration
def test_an_install_without_offline_voices_and_no_upstream_key_is_down_with_503(
    redis_url: str, tmp_path: Path
) -> None:
    # A real broken install: the espeakng-loader package with its library but no voice data.
    broken = tmp_path / "site" / "espeakng_loader"
    broken.mkdir(parents=True)
    real = Path(espeakng_loader.__file__).parent
    shutil.copy(real / "__init__.py", broken / "__init__.py")
    (broken / "libespeak-ng.so").symlink_to(real / "libespeak-ng.so")
    env = api_env(redis_url, PYTHONPATH=str(tmp_path / "site"))
    with ApiProcess(env, tmp_path) as api:
        detailed = httpx.get(api.base_url + URL, timeout=10)
        ready = httpx.get(api.base_url + "/ready", timeout=10)
        spoken = httpx.post(
            api.base_url + "/api/v1/voice/synthesize", json={"text": "Hello there."}, timeout=10
        )

    assert detailed.status_code == 503, detailed.text
    assert detailed.json()["status"] == "down"
    assert detailed.json()["dependencies"]["offline_engine"]["status"] == "down"
    assert ready.status_code == 503
    assert ready.json()["checks"]["offline_engine"]["ok"] is False
    assert spoken.status_code == 503
    assert spoken.json()["error"]["code"] == "synthesis_unavailable"
