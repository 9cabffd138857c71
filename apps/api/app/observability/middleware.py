"""Pure ASGI middleware: a request id on every request and response; request durations."""

import os
import re
import time

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability import metrics

# A request-state entry: headers (name -> value) to add to the response, whatever it is.
RESPONSE_HEADERS = "response_headers"

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_RAW = REQUEST_ID_HEADER.lower().encode()
# A caller's id is kept only if it is short and plain, so it is safe in logs and headers.
_ACCEPTABLE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _encoded(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID or makes one; exposes it as `state.request_id`.

    Also adds `fixed_headers` to every response, and the headers a dependency left in
    `state.response_headers` (the RateLimit-* headers of the key check) to whatever response
    the route returns.
    """

    def __init__(self, app: ASGIApp, fixed_headers: dict[str, str] | None = None) -> None:
        self.app = app
        # Headers every HTTP response carries (the security headers), encoded once.
        self._fixed = _encoded(fixed_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, _REQUEST_ID_RAW)
        request_id = incoming if incoming and _ACCEPTABLE_ID.match(incoming) else _new_id()
        # A copy per request: some servers hand every request the same state mapping.
        scope["state"] = {**scope.get("state", {}), "request_id": request_id}

        header = (_REQUEST_ID_RAW, request_id.encode("latin-1"))

        state = scope["state"]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Appended, not set: no route sets it, and MutableHeaders rebuilds the list.
                extra = _encoded(state.get(RESPONSE_HEADERS))
                message["headers"] = [*message.get("headers", ()), header, *self._fixed, *extra]
            await send(message)

        await self.app(scope, receive, send_with_id)


# Any other method name a client sends is "other": label values stay a fixed set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class RequestMetricsMiddleware:
    """Observes each HTTP request's duration by method, route template and status class.

    The route is the template of the route that handled the request
    (`/api/v1/voice/streaming/jobs/{job_id}`), never the path. Requests that no route handled
    (unknown paths, bodies refused before routing) are "unmatched".
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The histogram's child by (id of the route, method, status // 100): one dict lookup
        # per request instead of prometheus_client's labels() (bench/cache_hit.py path).
        self._children: dict[tuple[int, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            # The router puts the route it chose in the scope it was given, which is this one.
            route = scope.get("route")
            key = (id(route), method if method in _METHODS else "other", status // 100)
            child = self._children.get(key)
            if child is None:
                template = _full_template(route, scope["path"]) if route else None
                child = metrics.HTTP_REQUEST_DURATION.labels(
                    key[1], template or UNMATCHED, f"{key[2]}xx"
                )
                self._children[key] = child
            child.observe(elapsed)


def _full_template(route: object, path: str) -> str | None:
    """The template of `route` from the root: `/api/v1/voice/streaming/jobs/{job_id}`.

    FastAPI 0.165 keeps the routes of an included router as they are: a route's template
    leaves out the prefixes it was included with (`/streaming/jobs/{job_id}`). They are the
    part of the path before the part the route matches. The first split that matches keeps
    parameter values out of the prefix.
    """
    template = getattr(route, "path_format", None)
    regex = getattr(route, "path_regex", None)
    if not isinstance(template, str) or not isinstance(regex, re.Pattern):
        return None
    for start, char in enumerate(path):
        if char == "/" and regex.match(path[start:]):
            return path[:start] + template
    return None


def _new_id() -> str:
    # 32 random hex digits, as uuid4().hex gave, without building a UUID object per request.
    return os.urandom(16).hex()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None
