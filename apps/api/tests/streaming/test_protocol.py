"""The session's outbound messages: audio frames are built as text, and must be valid JSON."""

import base64
import json

import pytest

from app.streaming.protocol import FrameStyle, Outbound, Start

AUDIO = bytes(range(160))


@pytest.mark.parametrize("odd_id", ["u1", 'say "hi"\\', "话语-1", "tab\there"])
def test_json_audio_frames_parse_to_the_documented_message(odd_id: str) -> None:
    out = Outbound("call-1", Start(type="start"))

    message = json.loads(out.audio(odd_id, 7, AUDIO))

    assert message == {
        "type": "audio",
        "utterance_id": odd_id,
        "seq": 7,
        "audio": base64.b64encode(AUDIO).decode(),
    }


def test_twilio_media_frames_parse_to_twilios_message() -> None:
    out = Outbound("call-1", Start(type="start", frames=FrameStyle.TWILIO, stream_sid='MZ"1'))

    message = json.loads(out.audio("u1", 0, AUDIO))

    assert message == {
        "event": "media",
        "streamSid": 'MZ"1',
        "media": {"payload": base64.b64encode(AUDIO).decode()},
    }
