"""Bad input always gets a clear 4xx with the JSON error body, never a 500 or a traceback."""

from typing import Any

import httpx
import pytest

from tests.fakes.elevenlabs_server import FakeElevenLabs

URL = "/api/v1/voice/synthesize"


def assert_error_body(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return dict(error)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": ""}, "text"),
        ({"text": "   \n\t  "}, "text"),
        ({"text": "x" * 5001}, "text"),
        ({"text": "Hello\x00world"}, "text"),
        ({"text": "Hello\x07there"}, "text"),
        ({"text": "Hello", "persona": "pirate"}, "persona"),
        ({"text": "Hello", "language": "fr"}, "language"),
        ({"text": "Hello", "output_format": "flac_44100"}, "output_format"),
        ({"text": 42}, "text"),
        ({"text": ["Hello"]}, "text"),
        ({"text": "Hello", "cache": "sometimes"}, "cache"),
        ({"text": "Hello", "voice_agent_id": "../../etc/passwd"}, "voice_agent_id"),
        ({"text": "Hello", "volume": 11}, "volume"),
        ({}, "text"),
    ],
)
async def test_invalid_fields_get_422_naming_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await client.post(URL, json=body)

    error = assert_error_body(response, 422, "validation_error")
    assert any(field in detail["loc"] for detail in error["details"])


async def test_text_of_exactly_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json={"text": "a" * 5000, "output_format": "ulaw_8000"})

    assert response.status_code == 200


async def test_malformed_json_gets_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        URL, content=b'{"text": "Hello"', headers={"content-type": "application/json"}
    )

    assert_error_body(response, 422, "validation_error")


async def test_a_json_array_instead_of_an_object_gets_422(client: httpx.AsyncClient) -> None:
    response = await client.post(URL, json=["Hello"])

    assert_error_body(response, 422, "validation_error")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
async def test_a_body_that_is_not_json_gets_415(
    client: httpx.AsyncClient, content_type: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post(URL, content=b"text=Hello", headers=headers)

    assert_error_body(response, 415, "unsupported_media_type")


async def test_an_oversized_body_gets_413_before_it_is_parsed(client: httpx.AsyncClient) -> None:
    body = b'{"text": "' + b"a" * 2_000_000 + b'"}'

    response = await client.post(URL, content=body, headers={"content-type": "application/json"})

    assert_error_body(response, 413, "payload_too_large")


async def test_an_oversized_chunked_body_gets_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        yield b'{"text": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    response = await client.post(
        URL, content=chunks(), headers={"content-type": "application/json"}
    )

    assert_error_body(response, 413, "payload_too_large")


async def test_an_unknown_route_gets_a_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/voice/nothing-here")

    assert_error_body(response, 404, "not_found")


async def test_a_wrong_method_gets_a_json_405(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)

    assert_error_body(response, 405, "method_not_allowed")


async def test_the_session_goes_on_after_bad_requests(client: httpx.AsyncClient) -> None:
    await client.post(URL, content=b"{", headers={"content-type": "application/json"})
    await client.post(URL, json={"text": ""})

    response = await client.post(URL, json={"text": "Still here and speaking."})

    assert response.status_code == 200


@pytest.mark.parametrize("text", ["\u200b\u200b", "...", "\u3000\u200b", "—", "\ufeff", "?!"])
async def test_text_with_nothing_to_say_is_a_422_and_never_reaches_a_provider(
    upstream_client: httpx.AsyncClient, elevenlabs: FakeElevenLabs, text: str
) -> None:
    response = await upstream_client.post("/api/v1/voice/synthesize", json={"text": text})

    assert_error_body(response, 422, "validation_error")
    assert "nothing to say" in response.json()["error"]["message"]
    assert elevenlabs.stats().total_requests == 0
