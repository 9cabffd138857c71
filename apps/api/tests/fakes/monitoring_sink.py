"""A fake monitoring sink (an Alertmanager-style webhook) over real HTTP on 127.0.0.1.

It runs uvicorn in its own thread and event loop, as the fake ElevenLabs does, and records
every POST (headers and parsed JSON). `status` and `delay_s` make it fail or answer slowly.
Only tests import it.
"""

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.threaded_server import ThreadedServer


@dataclass(frozen=True, slots=True)
class SinkRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON; None when it was not JSON
    raw: str
    status: int  # what the sink answered


class FakeMonitoringSink:
    """POST anything to http://127.0.0.1:<port>/...; each request is recorded, then answered."""

    def __init__(self) -> None:
        self.status = 200
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._requests: list[SinkRequest] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        self._serving = ThreadedServer(self.app, "fake-sink")

    @property
    def url(self) -> str:
        """The webhook URL (Alertmanager's v2 path, though any path is accepted)."""
        if self._serving.port is None:
            raise RuntimeError("FakeMonitoringSink is not started")
        return f"http://127.0.0.1:{self._serving.port}/api/v2/alerts"

    def start(self) -> "FakeMonitoringSink":
        self._serving.start()
        return self

    def stop(self) -> None:
        self._serving.stop()

    def __enter__(self) -> "FakeMonitoringSink":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def requests(self) -> list[SinkRequest]:
        with self._lock:
            return list(self._requests)

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert the sink accepted (v2 bodies are lists), in order."""
        return [
            alert
            for r in self.requests
            if isinstance(r.body, list) and r.status < 300
            for alert in r.body
        ]

    def summaries(self) -> list[SinkRequest]:
        return [
            r
            for r in self.requests
            if isinstance(r.body, dict) and r.body.get("type") == "metrics_summary"
        ]

    def clear(self) -> None:
        with self._lock:
            self._requests = []

    async def _receive(self, request: Request) -> Response:
        raw = (await request.body()).decode(errors="replace")
        with contextlib.suppress(ValueError):
            body: Any = None
            body = json.loads(raw)
        with self._lock:
            self._requests.append(
                SinkRequest(request.url.path, dict(request.headers.items()), body, raw, self.status)
            )
            status, delay_s = self.status, self.delay_s
        if delay_s:
            await asyncio.sleep(delay_s)
        return Response(status_code=status)
