"""Security headers, CORS, /metrics behind a key, slow bodies and oversized headers."""

import asyncio
import time

import httpx
import pytest

from tests.asgi import app_client, served
from tests.auth.conftest import BOOTSTRAP_KEY, PEPPER
from tests.conftest import SettingsFactory

SYNTHESIZE = "/api/v1/voice/synthesize"
ORIGIN = "https://app.maple-realty.example"


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient) -> None:
    answers = [
        await client.post(SYNTHESIZE, json={"text": "Hello there."}),
        await client.get("/api/v1/voice/nowhere"),
        await client.post(SYNTHESIZE, json={"text": ""}),
        await client.get("/health"),
    ]

    assert [a.status_code for a in answers] == [200, 404, 422, 200]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"


async def test_cors_answers_only_the_configured_origins(make_settings: SettingsFactory) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with app_client(make_settings(auth={"cors_origins": [ORIGIN]})) as client:
        allowed = await client.options(SYNTHESIZE, headers={"Origin": ORIGIN, **preflight})
        other = await client.options(
            SYNTHESIZE, headers={"Origin": "https://evil.example", **preflight}
        )
        spoken = await client.post(
            SYNTHESIZE, json={"text": "Hi there."}, headers={"Origin": ORIGIN}
        )
    async with app_client(make_settings()) as client:
        by_default = await client.post(
            SYNTHESIZE, json={"text": "Hi there."}, headers={"Origin": ORIGIN}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    assert spoken.headers["access-control-allow-origin"] == ORIGIN
    assert "x-cache" in spoken.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in by_default.headers


async def test_metrics_can_be_put_behind_the_analytics_scope(
    make_settings: SettingsFactory,
) -> None:
    auth = {"pepper": PEPPER, "bootstrap_admin_key": BOOTSTRAP_KEY}
    async with app_client(make_settings(auth={**auth, "allow_metrics_without_key": False})) as c:
        closed = await c.get("/metrics")
        keyed = await c.get("/metrics", headers={"X-API-Key": BOOTSTRAP_KEY})
    async with app_client(make_settings(auth=auth)) as c:
        by_default = await c.get("/metrics")

    assert closed.status_code == 401
    assert keyed.status_code == 200
    assert by_default.status_code == 200


async def _raw(port: int, request: bytes, trickle: bytes = b"", every_s: float = 0.0) -> bytes:
    """Sends `request`, then `trickle` a byte every `every_s` until the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = asyncio.ensure_future(reader.read(65536))
        for byte in trickle:
            await asyncio.sleep(every_s)
            if answer.done():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break  # the server answered and closed
        return await asyncio.wait_for(answer, 10)
    finally:
        writer.close()


@pytest.mark.integration
async def test_a_body_that_trickles_is_cut_off_with_408_and_the_server_goes_on(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(server={"body_timeout_s": 0.5})
    body = b'{"text": "Hello there, this body arrives a byte at a time."}'
    head = (
        f"POST {SYNTHESIZE} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    async with served(settings) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        started = time.monotonic()
        answer = await _raw(port, head, trickle=body, every_s=0.1)
        elapsed = time.monotonic() - started
        async with httpx.AsyncClient(base_url=base_url) as http:
            after = await http.post(SYNTHESIZE, json={"text": "Still here."})

    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"request_timeout"' in answer
    assert elapsed < 3
    assert after.status_code == 200


@pytest.mark.integration
async def test_oversized_headers_are_refused_and_the_server_goes_on(
    make_settings: SettingsFactory,
) -> None:
    huge = "x" * 200_000
    async with served(make_settings()) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        answer = await _raw(
            port, f"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: {huge}\r\n\r\n".encode()
        )
        async with httpx.AsyncClient(base_url=base_url) as http:
            after = await http.get("/health")

    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500
    assert after.status_code == 200
