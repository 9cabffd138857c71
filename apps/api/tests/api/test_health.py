"""GET /health and GET /ready."""

from collections.abc import Callable

import httpx
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.main import create_app
from app.ops.local_redis import free_port


async def test_health_answers_while_the_process_lives(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "x-request-id" in response.headers


async def test_ready_when_redis_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["redis"]["ok"] is True


async def test_degraded_but_still_speaking_when_redis_is_down_at_start(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(redis={"url": f"redis://127.0.0.1:{free_port()}/0"})
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            ready = await client.get("/ready")
            spoken = await client.post(
                "/api/v1/voice/synthesize", json={"text": "The garage fits two cars."}
            )

    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"]["ok"] is False
    assert spoken.status_code == 200
    assert spoken.headers["x-cache"] == "bypass"
