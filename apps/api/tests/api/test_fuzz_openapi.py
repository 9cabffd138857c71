"""Schemathesis fuzzes every operation of the app's own /openapi.json, in process over ASGI.

Each operation gets valid and invalid requests (schemathesis' positive and negative modes) and
every response must be no 5xx, a documented status code, a documented content type, and match
the documented body and header schemas. The operations are read from the app's OpenAPI at
collection, so a new route is fuzzed without touching this file.

Schemathesis runs the app's lifespan itself, and requests and lifespan share one event loop (a
portal thread of schemathesis'), so the loop-bound Redis and httpx clients work. In process, an
unhandled exception reaches the test instead of becoming a 500. The WebSocket is not in the
OpenAPI document: tests/streaming/test_ws_fuzz.py fuzzes it.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.config import Settings
from app.main import create_app
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.integration

# Every request carries it (both ways a key can come, so a generated header cannot displace
# it): the routes need a key once one exists, and admin holds every scope.
ADMIN_KEY = "sv_fuzzfuzzfuzz_" + "f" * 40
KEY_HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "X-API-Key": ADMIN_KEY}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]

# 25 operations x 60 requests ran in ~40 s here: the generated texts are short, so the offline
# engine speaks little. derandomize: the same requests on every run, so CI cannot flake.
FUZZ_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _collection_settings() -> Settings:
    # Only to read the routes at collection: no lifespan runs, nothing connects.
    return Settings(
        elevenlabs={"api_key": None},  # type: ignore[arg-type]
        redis={"url": "redis://127.0.0.1:1/0", "cache_url": None},  # type: ignore[arg-type]
    )


def _documented_operations() -> list[str]:
    spec = create_app(_collection_settings()).openapi()
    return [f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "label" in metafunc.fixturenames:
        labels = _documented_operations()
        metafunc.parametrize("label", labels, ids=labels)


@pytest.fixture
def api_schema(make_settings: SettingsFactory) -> Iterator[OpenApiSchema]:
    """The schema as the app serves it; loading it starts the app's lifespan."""
    app = create_app(make_settings(auth={"bootstrap_admin_key": ADMIN_KEY}))
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()


def test_operation_answers_every_request_as_documented(
    api_schema: OpenApiSchema, label: str
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the served /openapi.json"
    requests = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @FUZZ_SETTINGS
    @given(case=requests)
    def answers_as_documented(case: Case[Any]) -> None:
        response = case.call(headers=KEY_HEADERS)
        case.validate_response(response, checks=CHECKS, headers=KEY_HEADERS)

    answers_as_documented()


# Two defects this fuzzing found, kept as regression tests.
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/voice/synthesize"),
        ("POST", "/api/v1/voice/streaming/synthesize/streaming"),
        ("POST", "/api/v1/voice/streaming/synthesize/bulk"),
        ("POST", "/api/v1/voice/streaming/pregenerate"),
        ("PUT", "/api/v1/voice/agents/agent_1"),
    ],
)
async def test_a_json_body_that_is_not_utf8_is_a_validation_error(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(
        method, path, content=b"\xff", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    assert "UTF-8" in response.json()["error"]["message"]


async def test_json_nested_past_the_limit_is_a_422_before_parsing(
    client: httpx.AsyncClient,
) -> None:
    deep = '{"text": "Hello there.", "x": ' + "[" * 40 + "]" * 40 + "}"
    in_strings = '{"text": "' + "[" * 100 + ' is not nesting."}'

    refused = await client.post(
        "/api/v1/voice/synthesize", content=deep, headers={"Content-Type": "application/json"}
    )
    spoken = await client.post(
        "/api/v1/voice/synthesize", content=in_strings, headers={"Content-Type": "application/json"}
    )

    assert refused.status_code == 422
    assert "nested deeper than 32" in refused.json()["error"]["message"]
    assert spoken.status_code == 200


async def test_a_very_short_upload_is_analysed_or_refused(client: httpx.AsyncClient) -> None:
    ten_samples = (np.arange(10, dtype=np.int16) * 1000).tobytes()

    response = await client.post(
        "/api/v1/voice/streaming/quality/analyze",
        files={"file": ("clip.raw", ten_samples, "application/octet-stream")},
        data={"output_format": "pcm_22050"},
    )

    assert response.status_code == 200
    assert response.json()["duration_s"] > 0
