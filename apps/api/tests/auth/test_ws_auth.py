"""The WebSocket's key: refused on the handshake with the JSON error body, throttled not killed."""

import json
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.asgi import served
from tests.auth.conftest import BOOTSTRAP_KEY, PEPPER
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.integration

PATH = "/api/v1/voice/streaming/stream/call-1"
START = {"type": "start", "output_format": "ulaw_8000"}


async def _key(base_url: str, scopes: list[str], **limits: int) -> str:
    async with httpx.AsyncClient(base_url=base_url) as http:
        created = await http.post(
            "/api/v1/keys",
            json={"name": "bridge", "scopes": scopes, **limits},
            headers={"X-API-Key": BOOTSTRAP_KEY},
        )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


async def _refusal(url: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, **kwargs):
            pass
    response = refused.value.response
    return response.status_code, json.loads(response.body or b"{}")


async def _until(ws: websockets.ClientConnection, kind: str) -> list[dict[str, Any]]:
    seen = []
    while True:
        message = json.loads(await ws.recv())
        seen.append(message)
        if message.get("type") == kind:
            return seen


async def test_a_session_needs_a_stream_key_by_header_or_token(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(auth={"pepper": PEPPER, "bootstrap_admin_key": BOOTSTRAP_KEY})
    async with served(settings) as base_url:
        ws_url = base_url.replace("http://", "ws://") + PATH
        stream_key = await _key(base_url, ["stream"])
        other_key = await _key(base_url, ["synthesize"])

        missing = await _refusal(ws_url)
        wrong_scope = await _refusal(ws_url, additional_headers={"X-API-Key": other_key})
        forged = await _refusal(ws_url + "?token=sv_aaaaaaaaaaaa_" + "D" * 43)
        async with websockets.connect(ws_url + f"?token={stream_key}") as ws:
            await ws.send(json.dumps(START))
            by_token = json.loads(await ws.recv())
        headers = {"Authorization": f"Bearer {stream_key}"}
        async with websockets.connect(ws_url, additional_headers=headers) as ws:
            await ws.send(json.dumps(START))
            by_header = json.loads(await ws.recv())

    assert missing[0] == 401
    assert missing[1]["error"]["code"] == "missing_api_key"
    assert wrong_scope[0] == 403
    assert wrong_scope[1]["error"]["code"] == "insufficient_scope"
    assert forged[0] == 401
    assert forged[1]["error"]["code"] == "invalid_api_key"
    assert by_token["type"] == by_header["type"] == "ready"


async def test_over_its_character_budget_a_session_is_slowed_down_and_goes_on(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(auth={"pepper": PEPPER, "bootstrap_admin_key": BOOTSTRAP_KEY})
    async with served(settings) as base_url:
        key = await _key(base_url, ["stream"], characters_per_minute=60)
        ws_url = base_url.replace("http://", "ws://") + PATH + f"?token={key}"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps(START))
            await ws.recv()
            first = "The kitchen was remodeled last year and the roof is new."
            assert len(first) <= 58
            await ws.send(json.dumps({"type": "text", "utterance_id": "u1", "text": first,
                                      "flush": True}))  # fmt: skip
            await ws.send(json.dumps({"type": "text", "utterance_id": "u2", "text": "Yes, indeed.",
                                      "flush": True}))  # fmt: skip
            seen = await _until(ws, "error")
            later = await _until(ws, "mark")
            later += [] if later[-1].get("name") == "u2" else await _until(ws, "mark")

    error = seen[-1]
    assert error["code"] == "rate_limited"
    assert error["recoverable"] is True
    assert later[-1]["name"] == "u2"  # the throttled text was spoken, not dropped
