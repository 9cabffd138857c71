"""CoalescingTransport: one write per turn of the loop, in order, flushed before closing.

The sessions' own tests run through it on a real uvicorn (SERVER_OPTIONS); these pin what it
does to the writes, against a transport that records them.
"""

import asyncio

from app.serve import SERVER_OPTIONS
from app.streaming.transport import CoalescingTransport, CoalescingWebSocketProtocol


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_write_buffer_size(self) -> int:
        return 0  # everything written has been sent


async def _next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_writes_of_one_turn_leave_as_one_write_in_order() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)

    for frame in (b"one", b"two", b"three"):
        transport.write(frame)
    assert inner.writes == []
    assert transport.get_write_buffer_size() == len(b"onetwothree")
    await _next_turn()
    transport.write(b"four")
    await _next_turn()

    assert inner.writes == [b"onetwothree", b"four"]


async def test_closing_writes_what_is_buffered_first_and_aborting_drops_it() -> None:
    inner = RecordingTransport()
    transport = CoalescingTransport(inner)
    transport.write(b"last frame")
    transport.write(b"close frame")
    transport.close()
    assert inner.writes == [b"last frameclose frame"]
    assert inner.closed

    other = RecordingTransport()
    aborted = CoalescingTransport(other)
    aborted.write(b"never sent")
    aborted.abort()
    await _next_turn()
    assert other.writes == []
    assert other.aborted


def test_every_server_of_the_app_uses_it() -> None:
    assert SERVER_OPTIONS["ws"] is CoalescingWebSocketProtocol
