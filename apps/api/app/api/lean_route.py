"""LeanRoute: a route FastAPI documents as usual but serves without its generic request handler.

On a cached synthesis FastAPI's handler cost more than the synthesis (bench/cache_hit.py: about
120 µs of 650 per hit): per request it parses the Content-Type with `email.message`, builds
error context, opens telemetry scopes and walks the dependency tree generically. A LeanRoute
runs what its route declares and nothing else, for the one shape it supports: dependencies that
are async functions of the connection alone (key checks, services), an optional JSON body model
and the Request. Any other shape is refused when the app is built, so a dependency added later
is never skipped silently.

Kept as FastAPI does it: JSON is decoded only under a JSON Content-Type (otherwise the body
stays bytes and fails validation), undecodable JSON and a body that fails validation give the
same 422 errors (located under "body"), and the dependencies run in declared order, the
router's first, once each.
"""

import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _effective_route_context_var
from pydantic_core import PydanticUndefined
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Step = tuple[str | None, str, Callable[..., Coroutine[Any, Any, Any]]]


class UnsupportedRouteError(TypeError):
    """The route needs something only FastAPI's own handler does."""


class LeanRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        # An included route is served with its inclusion's dependencies (the router's key check),
        # which FastAPI hands to this method through a context variable while it builds them.
        context = _effective_route_context_var.get()
        if context is not None and context.original_route is self:
            return lean_handler(context.dependant, self.path)
        return lean_handler(self.dependant, self.path)


def lean_handler(dependant: Dependant, path: str) -> Handler:
    """The request handler for `dependant`, or UnsupportedRouteError naming what is not."""
    endpoint = dependant.call
    if endpoint is None or not inspect.iscoroutinefunction(endpoint):
        raise UnsupportedRouteError(f"{path}: the endpoint must be an async function")
    _refuse_parameters(dependant, path, "the endpoint", allow_body=True)
    steps = [_step(sub, path) for sub in dependant.dependencies]
    if len({id(call) for _, _, call in steps}) != len(steps):
        raise UnsupportedRouteError(f"{path}: a dependency is declared twice")
    body_fields = dependant.body_params
    if len(body_fields) > 1 or any(getattr(f.field_info, "embed", False) for f in body_fields):
        raise UnsupportedRouteError(f"{path}: only one body model, not embedded")
    request_name = dependant.request_param_name

    async def handle(request: Request) -> Response:
        received = await _json_body(request) if body_fields else PydanticUndefined
        values: dict[str, Any] = {}
        for name, connection_name, call in steps:
            value = await call(**{connection_name: request})
            if name is not None:
                values[name] = value
        if body_fields:
            parsed, errors = await request_body_to_args(body_fields, received, False)
            if errors:
                raise RequestValidationError(errors, body=received)
            values.update(parsed)
        if request_name is not None:
            values[request_name] = request
        response = await endpoint(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{path}: a LeanRoute endpoint returns a Response")
        return response

    return handle


def _step(sub: Dependant, path: str) -> Step:
    call = sub.call
    what = f"dependency {getattr(call, '__qualname__', call)!r}"
    if call is None or not inspect.iscoroutinefunction(call) or sub.dependencies:
        raise UnsupportedRouteError(f"{path}: {what} must be an async function of the connection")
    _refuse_parameters(sub, path, what, allow_body=False)
    connection_name = sub.request_param_name or sub.http_connection_param_name
    if connection_name is None:
        raise UnsupportedRouteError(f"{path}: {what} must take the connection")
    if sub.request_param_name and sub.http_connection_param_name:
        raise UnsupportedRouteError(f"{path}: {what} takes the connection twice")
    return sub.name, connection_name, call


def _refuse_parameters(dependant: Dependant, path: str, what: str, *, allow_body: bool) -> None:
    if (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or (dependant.body_params and not allow_body)
        or dependant.websocket_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        raise UnsupportedRouteError(f"{path}: {what} takes parameters a LeanRoute does not give")


async def _json_body(request: Request) -> Any:
    """The decoded body under a JSON Content-Type; the bytes otherwise; "missing" when empty."""
    body = await request.body()
    if not body:
        return PydanticUndefined
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    main, _, subtype = media.partition("/")
    if main != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc
