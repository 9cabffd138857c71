"""Circuit breakers: shared through real Redis, opened by failures, closed by background probes."""

import asyncio

import httpx
import pytest
import redis.asyncio as aioredis

from app.config import CircuitSettings
from app.tts.circuit import ACCOUNT, Circuits, CircuitState, CircuitView
from app.tts.errors import (
    ProviderError,
    UpstreamAuthError,
    UpstreamBusyError,
    UpstreamRateLimitedError,
    UpstreamServerError,
)
from app.tts.models import Provider
from tests.asgi import app_client
from tests.conftest import SettingsFactory
from tests.fakes.elevenlabs_server import FakeElevenLabs

EL = Provider.ELEVENLABS
SETTINGS = CircuitSettings(failure_threshold=3, open_s=0.2, max_open_s=1.0, refresh_s=0.05)


def _server_error() -> ProviderError:
    return UpstreamServerError(EL, "upstream answered 500", status=500)


def _state(circuits: Circuits, voice: str) -> CircuitView:
    [view] = [v for v in circuits.views() if v.voice == voice]
    return view


async def test_consecutive_failures_from_two_processes_open_a_voice_for_both(
    redis_client: aioredis.Redis,
) -> None:
    one, two = Circuits(redis_client, SETTINGS), Circuits(redis_client, SETTINGS)
    await one.failed(EL, "v1", _server_error())
    await two.failed(EL, "v1", _server_error())
    assert one.allows(EL, "v1")
    await one.failed(EL, "v1", _server_error())

    await two.refresh()

    assert not one.allows(EL, "v1")
    assert not two.allows(EL, "v1")
    assert two.allows(EL, "v2")  # other voices are not concerned
    view = _state(two, "v1")
    assert view.state is CircuitState.OPEN
    assert (view.last_error_code, view.failures) == ("upstream_server_error", 3)


async def test_a_success_in_between_resets_the_count(redis_client: aioredis.Redis) -> None:
    circuits = Circuits(redis_client, SETTINGS)
    for _ in range(2):
        await circuits.failed(EL, "v1", _server_error())
    await circuits.succeeded(EL, "v1")
    for _ in range(2):
        await circuits.failed(EL, "v1", _server_error())

    assert circuits.allows(EL, "v1")


async def test_an_invalid_key_opens_every_voice_at_once_and_rate_limits_count_for_nothing(
    redis_client: aioredis.Redis,
) -> None:
    circuits = Circuits(redis_client, SETTINGS)
    for _ in range(10):
        await circuits.failed(EL, "v1", UpstreamRateLimitedError(EL, "429", retry_after_s=1))
        await circuits.failed(EL, "v1", UpstreamBusyError(EL, "no slot"))
    assert circuits.allows(EL, "v1")

    await circuits.failed(EL, "v1", UpstreamAuthError(EL, "invalid api key", status=401))

    assert not circuits.allows(EL, "v1")
    assert not circuits.allows(EL, "any-other-voice")
    assert _state(circuits, ACCOUNT).state is CircuitState.OPEN


async def test_a_failure_rate_over_the_window_opens_without_consecutive_failures(
    redis_client: aioredis.Redis,
) -> None:
    rate = SETTINGS.model_copy(update={"failure_threshold": 100, "window_min_calls": 6})
    circuits = Circuits(redis_client, rate)
    for _ in range(3):
        await circuits.succeeded(EL, "v1")
        await circuits.failed(EL, "v1", _server_error())

    assert not circuits.allows(EL, "v1")


async def test_one_process_probes_a_due_circuit_and_success_closes_it_everywhere(
    redis_client: aioredis.Redis,
) -> None:
    probes: list[tuple[str, str]] = []

    async def speaks(provider: str, voice: str) -> None:
        probes.append((provider, voice))
        await asyncio.sleep(0.05)

    one, two = Circuits(redis_client, SETTINGS), Circuits(redis_client, SETTINGS)
    for _ in range(3):
        await one.failed(EL, "v1", _server_error())
    one.start(probe=speaks)
    two.start(probe=speaks)
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if one.allows(EL, "v1") and two.allows(EL, "v1"):
                break
    finally:
        await one.stop()
        await two.stop()

    assert probes == [(EL, "v1")]
    assert _state(two, "v1").state is CircuitState.CLOSED


async def test_a_failed_probe_keeps_it_open_twice_as_long(redis_client: aioredis.Redis) -> None:
    async def still_failing(provider: str, voice: str) -> None:
        raise _server_error()

    circuits = Circuits(redis_client, SETTINGS)
    for _ in range(3):
        await circuits.failed(EL, "v1", _server_error())
    first = _state(circuits, "v1")
    assert first.retry_at is not None
    await asyncio.sleep(SETTINGS.open_s)
    circuits.start(probe=still_failing)
    await asyncio.sleep(0.15)
    await circuits.stop()

    later = _state(circuits, "v1")
    assert later.state is CircuitState.OPEN
    assert later.retry_at is not None
    assert later.retry_at - first.retry_at >= 2 * SETTINGS.open_s - 0.1


@pytest.mark.integration
async def test_a_failing_voice_is_skipped_once_open_and_spoken_again_after_the_probe(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    settings = make_settings(
        elevenlabs={"api_key": elevenlabs.api_key, "base_url": elevenlabs.base_url},
        circuit={"failure_threshold": 2, "open_s": 0.3, "refresh_s": 0.05},
        cache={"enabled": False},
    )
    url = "/api/v1/voice/synthesize"
    health = "/api/v1/voice/streaming/health/detailed"
    elevenlabs.behavior.status = 500
    async with app_client(settings) as client:
        for n in range(2):
            spoken = await client.post(url, json={"text": f"Failing request number {n}."})
            assert spoken.headers["x-provider"] == "espeak"
        skipped = await client.post(url, json={"text": "The circuit is open now."})
        asked_for_it = _asked(elevenlabs, "The circuit is open now.")
        upstream = (await client.get(health)).json()["dependencies"]["elevenlabs"]

        elevenlabs.behavior.status = 200
        for _ in range(100):
            await asyncio.sleep(0.05)
            probed = (await client.get(health)).json()["dependencies"]["elevenlabs"]
            if probed["status"] == "ok":
                break
        recovered = await client.post(url, json={"text": "The voice is back."})

    assert skipped.status_code == 200
    assert skipped.headers["x-provider"] == "espeak"
    assert asked_for_it == 0  # neither voice was asked: both circuits were open
    assert upstream["status"] == "degraded"
    assert {c["state"] for c in upstream["details"]["circuits"]} == {"open"}
    assert upstream["details"]["last_error"]["code"] == "upstream_server_error"
    assert probed["status"] == "ok"
    assert recovered.headers["x-provider"] == "elevenlabs"


def _asked(fake: FakeElevenLabs, text: str) -> int:
    """Requests for `text` upstream saw (background probes say something else)."""
    return sum(
        1 for r in fake.stats().requests if isinstance(r.json, dict) and r.json.get("text") == text
    )


async def _post(client: httpx.AsyncClient, text: str) -> httpx.Response:
    return await client.post("/api/v1/voice/synthesize", json={"text": text})


@pytest.mark.integration
async def test_an_invalid_upstream_key_stops_all_upstream_calls_at_once(
    make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    settings = make_settings(
        elevenlabs={"api_key": "sk-wrong", "base_url": elevenlabs.base_url},
        cache={"enabled": False},
    )
    async with app_client(settings) as client:
        first = await _post(client, "The first caller of the day.")
        asked = elevenlabs.stats().total_requests
        second = await _post(client, "The second caller of the day.")

    assert first.headers["x-provider"] == second.headers["x-provider"] == "espeak"
    assert asked == 1  # the 401 opened the account circuit: not even the fallback voice
    assert elevenlabs.stats().total_requests == asked
