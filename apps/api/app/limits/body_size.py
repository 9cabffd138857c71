"""Request bodies over the limit, too slow to arrive, or JSON that is not UTF-8 or nests too
deep, are refused before any of them is parsed."""

import asyncio
import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from app.limits.json_body import DEFAULT_MAX_DEPTH, deeper_than


class BodySizeLimitMiddleware:
    """413 for bodies over `max_bytes`, whether announced by Content-Length or streamed; 408
    for a body still arriving `timeout_s` after the request came.

    The body is read here (it is small by construction) and replayed to the app, so an
    oversized chunked body is refused with a clean 413 instead of failing mid-parse, and a
    client trickling its body a byte at a time holds a connection for `timeout_s`, no longer.
    A JSON body (by its Content-Type) that is not UTF-8 or nests deeper than `max_json_depth`
    is a 422 `validation_error` here, the answer FastAPI gives any other JSON it cannot read.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        timeout_s: float = 30.0,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.app = app
        self.max_json_depth = max_json_depth
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        # Routes whose bodies are legitimately larger (bulk: up to 1000 texts), by exact path.
        self.path_limits = dict(path_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.max_bytes)
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await self._too_large(scope, send, max_bytes)
            return
        messages: list[Message] = []
        try:
            async with asyncio.timeout(self.timeout_s):
                too_large = await _read_body(receive, messages, max_bytes)
        except TimeoutError:
            await _refuse(
                scope,
                send,
                408,
                "request_timeout",
                f"The request body did not arrive within {self.timeout_s:g} s.",
                {"timeout_s": self.timeout_s},
            )
            return
        if too_large:
            await self._too_large(scope, send, max_bytes)
            return
        if _is_json(scope):
            problem = self._unreadable_json(b"".join(m.get("body", b"") for m in messages))
            if problem is not None:
                details = [{"loc": ["body"], "msg": problem, "type": "json_invalid"}]
                message = f"Invalid request: {problem}"
                await _refuse(scope, send, 422, "validation_error", message, details)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    def _unreadable_json(self, body: bytes) -> str | None:
        if deeper_than(body, self.max_json_depth):
            return f"JSON nested deeper than {self.max_json_depth} levels"
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return "the JSON body is not UTF-8 text"
        return None

    async def _too_large(self, scope: Scope, send: Send, max_bytes: int) -> None:
        message = f"The request body is larger than {max_bytes} bytes."
        await _refuse(scope, send, 413, "payload_too_large", message, {"max_bytes": max_bytes})


async def _read_body(receive: Receive, messages: list[Message], max_bytes: int) -> bool:
    """Reads the body's messages into `messages`; True as soon as it passes max_bytes."""
    received = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return False
        received += len(message.get("body", b""))
        if received > max_bytes:
            return True
        if not message.get("more_body", False):
            return False


async def _refuse(
    scope: Scope, send: Send, status: int, code: str, message: str, details: object
) -> None:
    request_id = scope.get("state", {}).get("request_id")
    body = json.dumps(error_body(code, message, request_id, details)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"content-type":
            kind: bytes = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
