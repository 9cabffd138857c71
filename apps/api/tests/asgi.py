"""The app in-process: through httpx's ASGI transport, or on a real uvicorn in this loop."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from asgi_lifespan import LifespanManager

from app.config import Settings
from app.main import create_app
from app.serve import SERVER_OPTIONS


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with `settings`, its lifespan run, behind an httpx client."""
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[str]:
    """The app on a real uvicorn on a free port, in this loop; yields its http:// base URL.

    In this loop, so a test can count the app's asyncio tasks and read its state.
    """
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=0, log_level="warning", **SERVER_OPTIONS
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no event for "listening"
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
