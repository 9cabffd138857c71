"""JSON request bodies read strictly: UTF-8 only, nested no deeper than a limit (DESIGN §8).

FastAPI parses a body before any dependency runs, and answers a body it cannot decode (bytes
that are not UTF-8, nesting deep enough to exhaust the parser's recursion) with a bare 400.
This route class hands FastAPI a request whose `json()` refuses such bodies with a
JSONDecodeError instead, which FastAPI turns into the usual 422 `validation_error`, and
refuses nesting past `server.max_json_depth` before the parser sees it.
"""

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRUCTURE = frozenset(b'[]{}"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_QUOTE, _OPENERS = ord('"'), frozenset(b"[{")
DEFAULT_MAX_DEPTH = 32


def deeper_than(body: bytes, limit: int) -> bool:
    """Whether the JSON text `body` nests arrays and objects more than `limit` deep.

    Strings may hold any bracket, so escapes are dropped first (an escaped quote does not end
    a string), then everything but brackets and quotes; what is left is short and walked.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # not enough brackets to nest that deep: the common case, no scan
    depth = 0
    in_string = False
    for byte in _ESCAPED.sub(b"", body).translate(None, _NOT_STRUCTURE):
        if byte == _QUOTE:
            in_string = not in_string
        elif in_string:
            continue
        elif byte in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            settings = getattr(self.state, "settings", None)
            limit = settings.server.max_json_depth if settings is not None else DEFAULT_MAX_DEPTH
            if deeper_than(body, limit):
                raise json.JSONDecodeError(f"nested deeper than {limit} levels", "", 0)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise json.JSONDecodeError("the body is not UTF-8", "", exc.start) from exc
            self._json = json.loads(text)
        return self._json


class StrictJSONRoute(APIRoute):
    """An APIRoute whose JSON body is read by StrictJSONRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
