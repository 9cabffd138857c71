"""LeanRoute answers as FastAPI's own handler does, and refuses what it cannot serve."""

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from app.api import synthesize
from app.api.lean_route import LeanRoute, UnsupportedRouteError
from app.errors import AppError, install_error_handlers
from app.main import create_app


class Order(BaseModel):
    text: str = Field(min_length=1, max_length=20)
    copies: int = 1


class RefusedError(AppError):
    status_code = 403
    code = "refused"


async def gate(conn: HTTPConnection) -> None:
    if conn.headers.get("x-refuse"):
        raise RefusedError("refused by the gate")
    conn.state.trail = ["gate"]


async def route_check(request: Request) -> None:
    request.state.trail.append("route_check")


async def service(conn: HTTPConnection) -> str:
    conn.state.trail.append("service")
    return "the service"


async def place(order: Order, request: Request, svc: Annotated[str, Depends(service)]) -> Response:
    return JSONResponse({"order": order.model_dump(), "svc": svc, "trail": request.state.trail})


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    for prefix, route_class in (("/fastapi", None), ("/lean", LeanRoute)):
        router = APIRouter() if route_class is None else APIRouter(route_class=route_class)
        router.add_api_route(
            "/orders", place, methods=["POST"], dependencies=[Depends(route_check)]
        )
        app.include_router(router, prefix=prefix, dependencies=[Depends(gate)])
    return app


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("valid", {"json": {"text": "hello", "copies": 2}}),
    ("invalid field", {"json": {"text": "", "copies": "many"}}),
    ("unknown shape", {"json": ["a", "list"]}),
    ("json null", {"content": b"null", "headers": {"content-type": "application/json"}}),
    ("undecodable", {"content": b'{"text": ', "headers": {"content-type": "application/json"}}),
    ("empty body", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("not json", {"content": b"text=hello", "headers": {"content-type": "text/plain"}}),
    ("no content type", {"content": b'{"text": "hi"}'}),
    ("json suffix", {"content": b'{"text": "hi"}', "headers": {"content-type": "x/y+json"}}),
    (
        "vendor json",
        {"content": b'{"text": "hi"}', "headers": {"content-type": "application/vnd.a+json"}},
    ),
    ("refused", {"json": {"text": "hello"}, "headers": {"x-refuse": "1"}}),
    ("refused and invalid", {"json": {"text": ""}, "headers": {"x-refuse": "1"}}),
    ("refused and undecodable", {"content": b"{", "headers": {
        "content-type": "application/json", "x-refuse": "1"}}),
]  # fmt: skip


@pytest.mark.parametrize(("what", "request_args"), REQUESTS, ids=[r[0] for r in REQUESTS])
async def test_a_lean_route_answers_exactly_as_fastapi_does(
    what: str, request_args: dict[str, Any]
) -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        usual = await client.post("/fastapi/orders", **request_args)
        lean = await client.post("/lean/orders", **request_args)

    assert lean.status_code == usual.status_code
    assert lean.json() == usual.json()


async def test_the_dependencies_run_in_order_router_first_each_once() -> None:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.post("/lean/orders", json={"text": "hello"})

    assert answer.json() == {
        "order": {"text": "hello", "copies": 1},
        "svc": "the service",
        "trail": ["gate", "route_check", "service"],
    }


async def with_query(order: Order, page: Annotated[int, Query()] = 1) -> Response:
    return Response()


async def needs_service(conn: HTTPConnection, svc: Annotated[str, Depends(service)]) -> None:
    return None


async def needs_nested(order: Order, _: Annotated[None, Depends(needs_service)]) -> Response:
    return Response()


def sync_endpoint(order: Order) -> Response:
    return Response()


async def two_bodies(order: Order, other: Order) -> Response:
    return Response()


async def twice(
    order: Order, a: Annotated[str, Depends(service)], b: Annotated[str, Depends(service)]
) -> Response:
    return Response()


@pytest.mark.parametrize(
    "endpoint",
    [with_query, needs_nested, sync_endpoint, two_bodies, twice],
    ids=["query parameter", "nested dependency", "sync endpoint", "two bodies", "twice"],
)
def test_a_shape_it_cannot_serve_is_refused_when_the_app_is_built(endpoint: Any) -> None:
    router = APIRouter(route_class=LeanRoute)
    with pytest.raises(UnsupportedRouteError):
        router.add_api_route("/x", endpoint, methods=["POST"])


def test_the_synthesize_route_is_lean_and_still_documented() -> None:
    (route,) = synthesize.router.routes
    schema = create_app().openapi()

    assert isinstance(route, LeanRoute)
    operation = schema["paths"]["/api/v1/voice/synthesize"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SynthesizeRequest"
    )
