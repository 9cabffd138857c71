"""An ASGI app under uvicorn in a thread and event loop of its own, on a free loopback port.

The fakes (ElevenLabs, the monitoring sink) serve this way, so a test talks to them over real
HTTP while its own loop stays free. Only tests and benchmarks import it.
"""

import asyncio
import contextlib
import threading
import time

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT_S = 10.0


class ThreadedServer:
    """Serves `app` from start() to stop(); `stopping` is set (on the server's loop) first,
    so responses that stall on purpose can end before uvicorn's graceful wait."""

    def __init__(self, app: ASGIApp, name: str, grace_s: int = 1) -> None:
        self._app = app
        self._name = name
        self._grace_s = grace_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self.stopping: asyncio.Event | None = None
        self.port: int | None = None

    def start(self) -> int:
        """Serve in the background; returns the bound port once it listens."""
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already started")
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            log_config=None,  # leave the process's logging set-up alone
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=self._grace_s,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self._name} did not start: {self._failure!r}")
            time.sleep(0.005)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self.port

    def stop(self) -> None:
        """Stop serving: `stopping` is set, stalled responses are cut off, the thread joined."""
        server, thread, loop, stopping = self._server, self._thread, self._loop, self.stopping
        if server is None or thread is None:
            return
        server.should_exit = True
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=self._grace_s + 5)
        self._server = self._thread = self._loop = self.stopping = None
        self.port = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(): a thread must not raise
            self._failure = exc

    async def _serve(self) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        await self._server.serve()
