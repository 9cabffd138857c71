"""Set to, an overloaded process refuses new sessions on the handshake, and takes them after."""

import asyncio
import json
import time

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.asgi import served
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.integration

PATH = "/api/v1/voice/streaming/stream/"


async def test_a_session_asked_for_while_the_loop_lags_gets_503_and_a_later_one_is_taken(
    make_settings: SettingsFactory,
) -> None:
    settings = make_settings(
        streaming={"refuse_sessions_above_lag_ms": 200, "overload_window_s": 0.5}
    )
    async with served(settings) as base_url:
        ws_url = base_url.replace("http://", "ws://") + PATH
        async with websockets.connect(ws_url + "before") as before:
            await before.send(json.dumps({"type": "start", "output_format": "ulaw_8000"}))
            ready = json.loads(await before.recv())

            time.sleep(0.4)  # noqa: ASYNC251 -- holds the server's loop, as a CPU burst would
            with pytest.raises(InvalidStatus) as refused:
                async with websockets.connect(ws_url + "during"):
                    pass

            await asyncio.sleep(0.6)  # the lag is older than the window now
            async with websockets.connect(ws_url + "after") as after:
                await after.send(json.dumps({"type": "start", "output_format": "ulaw_8000"}))
                taken = json.loads(await after.recv())
            await before.send(json.dumps({"type": "ping"}))
            still_served = json.loads(await before.recv())

    response = refused.value.response
    body = json.loads(response.body or b"{}")
    assert ready["type"] == "ready"
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert body["error"]["code"] == "overloaded"
    assert body["error"]["details"]["event_loop_lag_ms"] >= 200
    assert body["error"]["details"]["sessions_here"] == 1
    assert taken["type"] == "ready"
    assert still_served["type"] == "pong"  # the sessions it had were not touched


async def test_by_default_a_lagging_process_still_takes_every_session(
    make_settings: SettingsFactory,
) -> None:
    async with served(make_settings()) as base_url:
        ws_url = base_url.replace("http://", "ws://") + PATH
        time.sleep(0.4)  # noqa: ASYNC251 -- holds the server's loop, as a CPU burst would
        async with websockets.connect(ws_url + "taken") as taken:
            await taken.send(json.dumps({"type": "start", "output_format": "ulaw_8000"}))
            ready = json.loads(await taken.recv())

    assert ready["type"] == "ready"
