"""Malformed WebSocket frames get a recoverable error each, and the session still speaks.

The app runs on a real uvicorn in this test's loop, so its asyncio tasks can be counted. The
frames come from Hypothesis (fixed: derandomize) and a hand-picked list, and are sent by the
sync `websockets` client from a worker thread, which leaves this loop free to serve.
"""

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from websockets.sync.client import ClientConnection, connect

from app.streaming import protocol
from tests.asgi import served
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.integration

PATH = "/api/v1/voice/streaming/stream/"
MAX_MESSAGE_BYTES = 4096
PING = json.dumps({"type": "ping"})
_ACCEPTED = TypeAdapter(protocol.ClientMessage)

FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

_MESSAGE_TYPES = ["start", "text", "barge_in", "mark_played", "ping", "end"]
_FIELDS = [
    "type", "persona", "voice_agent_id", "language", "output_format", "frame_ms", "frames",
    "stream_sid", "text", "utterance_id", "flush", "name",
]  # fmt: skip
_unicode = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _unicode,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_unicode, inner, max_size=4),
    max_leaves=12,
)
_objects = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(_MESSAGE_TYPES) | _json_values,
        **{field: _json_values for field in _FIELDS if field != "type"},
    },
) | st.dictionaries(st.sampled_from(_FIELDS) | _unicode, _json_values, max_size=6)

# A frame is text (str) or binary (bytes).
FRAMES: st.SearchStrategy[str | bytes] = st.one_of(
    st.binary(max_size=256),
    _unicode,
    _json_values.map(json.dumps),
    _objects.map(json.dumps),
)


def _is_accepted(frame: str | bytes) -> bool:
    """Whether the protocol takes `frame` as a message: such frames are not fuzz."""
    if isinstance(frame, bytes):
        return False
    try:
        _ACCEPTED.validate_json(frame)
    except ValidationError:
        return False
    return True


def _nested(depth: int) -> str:
    return '{"type":' * depth + "1" + "}" * depth


def _hand_picked(started: bool) -> list[str | bytes]:
    frames: list[str | bytes] = [
        b"\xff\xfe\xfd\x00",  # not UTF-8: only a binary frame can carry it
        b"",
        "",
        "not json",
        "null",
        "[]",
        "42",
        '"start"',
        "{}",
        '{"type": 1}',
        '{"type": "unknown"}',
        '{"type": "ping", "extra": 1}',
        '{"type": "text"}',
        '{"type": "text", "text": 5, "utterance_id": "u"}',
        '{"type": "start", "frame_ms": 5}',
        '{"type": "mark_played", "name": ""}',
        json.dumps({"type": "text", "utterance_id": "u", "text": "x" * MAX_MESSAGE_BYTES}),
        "[" * (MAX_MESSAGE_BYTES // 2 - 1) + "]" * (MAX_MESSAGE_BYTES // 2 - 1),
        _nested(MAX_MESSAGE_BYTES // 10),
    ]
    if started:
        frames.append(json.dumps({"type": "start"}))  # a second start
    else:
        frames.append(json.dumps({"type": "text", "utterance_id": "u", "text": "Hi."}))
        frames.append(json.dumps({"type": "barge_in"}))
        frames.append(json.dumps({"type": "start", "frames": "twilio"}))  # no stream_sid
    return frames


def _recv(ws: ClientConnection) -> dict[str, Any]:
    return dict(json.loads(ws.recv(timeout=10)))


def _assert_refused(ws: ClientConnection, frame: str | bytes) -> None:
    """`frame`, then a ping: everything before the pong is a recoverable error, one at least."""
    ws.send(frame)
    ws.send(PING)
    replies = []
    while (reply := _recv(ws)) != {"type": "pong"}:
        replies.append(reply)
    assert replies, f"no error for {frame!r:.200}"
    for reply in replies:
        assert reply["type"] == "error", reply
        assert isinstance(reply["code"], str), reply
        assert isinstance(reply["message"], str), reply
        assert reply["recoverable"] is True, reply


def _fuzz(ws: ClientConnection, started: bool) -> None:
    for frame in _hand_picked(started):
        _assert_refused(ws, frame)

    @FUZZ_SETTINGS
    @given(frame=FRAMES)
    def refused(frame: str | bytes) -> None:
        assume(not _is_accepted(frame))
        _assert_refused(ws, frame)

    refused()


def _speaks(ws: ClientConnection) -> None:
    """A short utterance gets audio and then its mark."""
    ws.send(json.dumps({"type": "text", "utterance_id": "after", "text": "Hello.", "flush": True}))
    kinds = []
    while (reply := _recv(ws))["type"] != "mark":
        kinds.append(reply["type"])
    assert reply["name"] == "after"
    assert "audio" in kinds


def _session(url: str) -> None:
    """Fuzz a session before and after its start, then have it speak (runs in a thread)."""
    with connect(url + "fuzz-1", max_size=None) as ws:
        _fuzz(ws, started=False)
        ws.send(json.dumps({"type": "start", "frames": "json"}))
        assert _recv(ws)["type"] == "ready"
        _fuzz(ws, started=True)
        _speaks(ws)
    with connect(url + "fuzz-2", max_size=None) as ws:  # a new session works too
        ws.send(json.dumps({"type": "start"}))
        assert _recv(ws)["type"] == "ready"
        _speaks(ws)


async def test_malformed_frames_get_recoverable_errors_and_leave_nothing_running(
    make_settings: SettingsFactory,
) -> None:
    settings_ = make_settings(
        # A high message rate: the fuzzing is not throttled (the flood test covers that).
        streaming={"max_message_bytes": MAX_MESSAGE_BYTES, "messages_per_second": 10_000.0}
    )
    async with served(settings_) as base_url:
        await asyncio.sleep(0.2)  # background loops of the app settle
        before = len(asyncio.all_tasks())

        await asyncio.to_thread(_session, base_url.replace("http://", "ws://") + PATH)

        for _ in range(100):
            if len(asyncio.all_tasks()) <= before:
                break
            await asyncio.sleep(0.05)
        assert len(asyncio.all_tasks()) <= before
