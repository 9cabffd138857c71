"""Only a loopback address is served without API keys: `python -m app.serve` refuses the rest."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from app.auth import KeyStore
from app.auth.scopes import Scope
from app.ops.local_redis import free_port
from tests.auth.conftest import BOOTSTRAP_KEY, PEPPER
from tests.processes import API_DIR, ApiProcess, api_env

pytestmark = pytest.mark.integration


def _serve(env: dict[str, str], host: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "app.serve", "--host", host, "--port", str(free_port())]
    return subprocess.run(
        command, cwd=API_DIR, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _env(redis_url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, **api_env(redis_url, AUTH__PEPPER=PEPPER, **extra)}


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "my-host.example"])
def test_without_any_key_a_non_loopback_bind_is_refused_with_the_reason(
    fresh_redis: str, host: str
) -> None:
    refused = _serve(_env(fresh_redis), host)

    assert refused.returncode == 2
    assert "refusing to start" in refused.stderr
    assert "no API key exists" in refused.stderr
    assert "make keys" in refused.stderr


def test_keys_switched_off_are_refused_too(fresh_redis: str) -> None:
    refused = _serve(_env(fresh_redis, AUTH__ENABLED="false"), "0.0.0.0")

    assert refused.returncode == 2
    assert "AUTH__ENABLED=false" in refused.stderr


def test_an_unreachable_state_redis_without_a_bootstrap_key_is_refused() -> None:
    refused = _serve(_env(f"redis://127.0.0.1:{free_port()}/0"), "0.0.0.0")

    assert refused.returncode == 2
    assert "unreachable" in refused.stderr


def test_a_bootstrap_key_lets_it_listen_everywhere_behind_keys(
    fresh_redis: str, tmp_path: Path
) -> None:
    env = api_env(fresh_redis, AUTH__PEPPER=PEPPER, AUTH__BOOTSTRAP_ADMIN_KEY=BOOTSTRAP_KEY)
    with ApiProcess(env, tmp_path, host="0.0.0.0") as api:
        open_route = httpx.get(api.base_url + "/ready", timeout=10)
        guarded = httpx.get(api.base_url + "/api/v1/voice/profiles", timeout=10)

    assert open_route.status_code == 200
    assert guarded.status_code == 401


def test_a_key_in_the_store_lets_it_listen_everywhere(fresh_redis: str, tmp_path: Path) -> None:
    async def create() -> None:
        async with aioredis.Redis.from_url(fresh_redis) as client:
            await KeyStore(client, PEPPER).create("ops", [Scope.ADMIN])

    asyncio.run(create())

    with ApiProcess(api_env(fresh_redis, AUTH__PEPPER=PEPPER), tmp_path, host="0.0.0.0") as api:
        guarded = httpx.get(api.base_url + "/api/v1/voice/profiles", timeout=10)

    assert guarded.status_code == 401
