"""Upstream requests dealt over several small connection pools, within the connection limit."""

import asyncio

import httpx
import pytest

from app.tts.providers.base import ProviderUsage
from app.tts.providers.elevenlabs import ElevenLabsProvider
from app.tts.providers.pools import PooledTransport, pooled_transport
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.tts.test_elevenlabs_provider import _request


async def test_requests_go_to_each_pool_in_turn_and_closing_closes_every_pool() -> None:
    handled: list[int] = []
    closed: list[int] = []

    class Recording(httpx.AsyncBaseTransport):
        def __init__(self, number: int) -> None:
            self._number = number

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            handled.append(self._number)
            return httpx.Response(200, text=str(self._number))

        async def aclose(self) -> None:
            closed.append(self._number)

    async with httpx.AsyncClient(transport=PooledTransport([Recording(n) for n in range(3)])) as c:
        answers = [(await c.get("http://upstream.test/")).text for _ in range(7)]

    assert handled == [0, 1, 2, 0, 1, 2, 0]
    assert answers == ["0", "1", "2", "0", "1", "2", "0"]
    assert closed == [0, 1, 2]


@pytest.mark.parametrize(("connections", "pools"), [(6, 3), (5, 4), (2, 4)])
async def test_the_pools_together_hold_the_configured_connections_and_use_them_all(
    elevenlabs: FakeElevenLabs, connections: int, pools: int
) -> None:
    elevenlabs.behavior.ttfb_s = 0.2
    transport = pooled_transport(connections, pools=pools)
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        provider = ElevenLabsProvider(client, elevenlabs.base_url, elevenlabs.api_key)

        async def speak(n: int) -> bytes:
            request = _request(text=f"Listing number {n} has a new price today.")
            return b"".join([chunk async for chunk in provider.stream(request, ProviderUsage())])

        audio = await asyncio.gather(*(speak(n) for n in range(4 * connections)))

    assert all(audio)
    stats = elevenlabs.stats()
    assert stats.total_requests == 4 * connections
    # The pools share the connections out: never more at once, and every one of them used.
    assert stats.peak_concurrent == connections
