"""A fake ElevenLabs that speaks the documented REST API over real HTTP on 127.0.0.1.

It runs uvicorn in its own thread and event loop, so a pytest session, several API processes
and the bench scripts can share it like a remote server. `Behavior` says what the next
text-to-speech requests get (latency, chunking, faults); `stats()` says what the fake saw.
The audio is real and decodable (`synthetic_audio`); what the API accepts and how it refuses
is `elevenlabs_api`. Only tests and benchmarks import these modules.
"""

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from tests.fakes import elevenlabs_api as api
from tests.fakes.synthetic_audio import (
    CHARS_PER_SECOND,
    RENDERED,
    SYNTH_RATE,
    content_type,
    expected_duration_s,
    render_audio,
    speech_pcm,
)
from tests.fakes.threaded_server import ThreadedServer

__all__ = [
    "CHARS_PER_SECOND",
    "SYNTH_RATE",
    "Behavior",
    "FakeElevenLabs",
    "RecordedRequest",
    "Stats",
    "expected_duration_s",
    "render_audio",
    "speech_pcm",
]

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_STOP_GRACE_S = 1  # seconds uvicorn waits for running responses when stopping

# -- Public state ----------------------------------------------------------------------------------


@dataclass
class Behavior:
    """What the next text-to-speech requests get. Tests replace or mutate it."""

    ttfb_s: float = 0.0
    chunk_sizes: tuple[int, ...] = (1024,)
    chunk_delay_s: float = 0.0
    status: int = 200
    error_status_text: str | None = None
    retry_after_s: float | None = None
    stall_after_bytes: int | None = None
    stall_s: float = 30.0
    truncate_after_bytes: int | None = None
    non_audio_body: bool = False
    odd_length: bool = False
    silent_audio: bool = False
    fail_first_n: int = 0
    max_concurrent_requests: int = 10
    enforce_concurrency: bool = False
    # Speak every request as this text (load benchmarks: one clip, rendered once, keeps the
    # fake's own synthesis out of what they measure); None speaks the request's text.
    spoken_text: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any  # the parsed body; None when there was none or it was not JSON


@dataclass(frozen=True)
class Stats:
    """A snapshot. The counters cover text-to-speech requests; `requests` lists every request."""

    total_requests: int
    concurrent_now: int
    peak_concurrent: int
    characters_billed: int
    requests: list[RecordedRequest]


@dataclass
class _Epoch:
    """Counters since the last reset; a request still running from before counts in its own."""

    total: int = 0
    concurrent: int = 0
    peak: int = 0
    billed: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)


class _DroppedConnection(Exception):
    """Raised on purpose so uvicorn closes the socket mid-body (truncation, shutdown)."""


class _ClientGone(Exception):
    pass


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, _DroppedConnection)


def _new_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


# -- The server ------------------------------------------------------------------------------------


class _SpeechEndpoint:
    """POST /v1/text-to-speech/{voice_id}[/stream] as a plain ASGI app: it owns every byte."""

    def __init__(self, fake: "FakeElevenLabs") -> None:
        self._fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._fake._speak(scope, receive, send)


class FakeElevenLabs:
    """ElevenLabs' TTS REST API on 127.0.0.1:<free port>, served from a background thread."""

    def __init__(self, api_key: str = "test-eleven-key") -> None:
        self.api_key = api_key
        self.behavior = Behavior()
        self._lock = threading.Lock()
        self._epoch = _Epoch()
        self._reset_unix = int(time.time()) + 30 * 86400
        self.app = Starlette(
            routes=[
                Route("/v1/text-to-speech/{voice_id}", _SpeechEndpoint(self), methods=["POST"]),
                Route(
                    "/v1/text-to-speech/{voice_id}/stream", _SpeechEndpoint(self), methods=["POST"]
                ),
                Route("/v1/user/subscription", self._subscription, methods=["GET"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/voices", self._voices, methods=["GET"]),
            ]
        )
        self._serving = ThreadedServer(self.app, "fake-elevenlabs", grace_s=_STOP_GRACE_S)

    # -- lifecycle ----

    @property
    def base_url(self) -> str:
        if self._serving.port is None:
            raise RuntimeError("FakeElevenLabs is not started")
        return f"http://127.0.0.1:{self._serving.port}"

    def start(self) -> "FakeElevenLabs":
        """Serve in a background thread; returns once the port is bound."""
        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietDrops) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_QuietDrops())
        self._serving.start()
        return self

    def stop(self) -> None:
        """Stop serving: stalled responses are cut off, the thread is joined."""
        self._serving.stop()

    def __enter__(self) -> "FakeElevenLabs":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state ----

    def reset(self) -> None:
        """Default behaviour, zero counters, no recorded requests."""
        with self._lock:
            self.behavior = Behavior()
            self._epoch = _Epoch()

    def stats(self) -> Stats:
        with self._lock:
            epoch = self._epoch
            return Stats(
                total_requests=epoch.total,
                concurrent_now=epoch.concurrent,
                peak_concurrent=epoch.peak,
                characters_billed=epoch.billed,
                requests=list(epoch.requests),
            )

    def _record(self, request: Request, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers=dict(request.headers.items()),
            json=body,
        )
        with self._lock:
            self._epoch.requests.append(recorded)

    def _arrive(self) -> tuple[_Epoch, int]:
        with self._lock:
            epoch = self._epoch
            epoch.total += 1
            epoch.concurrent += 1
            epoch.peak = max(epoch.peak, epoch.concurrent)
            return epoch, epoch.total

    def _leave(self, epoch: _Epoch) -> None:
        with self._lock:
            epoch.concurrent -= 1

    def _bill(self, epoch: _Epoch, characters: int) -> None:
        with self._lock:
            epoch.billed += characters

    def _auth_error(self, request: Request) -> api.Reply | None:
        key = request.headers.get("xi-api-key")
        if key is None:
            return api.error_reply(401, dict(api.NEEDS_AUTH))
        if key != self.api_key:
            return api.error_reply(401, api.INVALID_KEY)
        return None

    # -- text to speech ----

    async def _speak(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            raw = await request.body()
        except ClientDisconnect:
            return
        self._record(request, raw)
        behavior = dataclasses.replace(self.behavior)
        epoch, number = self._arrive()
        assert self._serving.stopping is not None
        gone = asyncio.ensure_future(_wait_for_disconnect(receive))
        stopping = asyncio.ensure_future(self._serving.stopping.wait())
        try:
            reply = await self._answer(request, raw, behavior, epoch, number)
            await _pause(behavior.ttfb_s, gone, stopping)
            if not reply.audio:
                await _send_whole(send, reply)
                return
            headers = {
                **reply.headers,
                "current-concurrent-requests": str(epoch.concurrent),
                "maximum-concurrent-requests": str(behavior.max_concurrent_requests),
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
                }
            )
            self._bill(epoch, reply.billed)
            await _stream_body(send, reply.body, behavior, gone, stopping)
        except _ClientGone:
            return
        finally:
            gone.cancel()
            stopping.cancel()
            self._leave(epoch)

    async def _answer(
        self, request: Request, raw: bytes, behavior: Behavior, epoch: _Epoch, number: int
    ) -> api.Reply:
        body, fmt, errors = api.validate_speech(raw, request.query_params.get("output_format"))
        # Schema errors come before auth, as in a FastAPI app.
        if errors or body is None:
            return api.error_reply(422, errors)
        if (auth := self._auth_error(request)) is not None:
            return auth
        rejected = api.speech_error(request.path_params["voice_id"], body, fmt)
        if rejected is not None:
            return rejected
        model = api.MODELS[body.model_id]
        if behavior.enforce_concurrency and epoch.concurrent > behavior.max_concurrent_requests:
            return api.fault_reply(429, "too_many_concurrent_requests", behavior.retry_after_s)
        if behavior.status != 200 and (
            behavior.fail_first_n <= 0 or number <= behavior.fail_first_n
        ):
            return api.fault_reply(
                behavior.status, behavior.error_status_text, behavior.retry_after_s
            )
        if behavior.non_audio_body:
            detail = {"status": "internal_error", "message": "Audio generation failed."}
            return api.json_reply(200, {"detail": detail})
        started = time.perf_counter()
        audio = await asyncio.to_thread(
            RENDERED.render, behavior.spoken_text or body.text, fmt.value, behavior.silent_audio
        )
        if behavior.odd_length and fmt.value.startswith("pcm"):
            audio += b"\x00"
        billed = math.ceil(len(body.text) * model.cost_per_char)
        latency_ms = round((time.perf_counter() - started) * 1000)
        headers = {
            "content-type": content_type(fmt),
            "request-id": _new_id(),
            "history-item-id": _new_id(),
            "character-cost": str(billed),
            "x-character-count": str(billed),
            "tts-latency-ms": str(latency_ms),
            "access-control-expose-headers": (
                "request-id, history-item-id, character-cost, current-concurrent-requests, "
                "maximum-concurrent-requests"
            ),
        }
        return api.Reply(200, audio, headers, audio=True, billed=billed)

    # -- other endpoints ----

    async def _guarded(self, request: Request) -> Response | None:
        self._record(request, await request.body())
        auth = self._auth_error(request)
        if auth is None:
            return None
        return Response(auth.body, status_code=auth.status, headers=auth.headers)

    async def _subscription(self, request: Request) -> Response:
        if (denied := await self._guarded(request)) is not None:
            return denied
        limit = 100_000
        behavior = self.behavior
        out_of_quota = behavior.status == 401 and behavior.error_status_text == "quota_exceeded"
        with self._lock:
            used = limit if out_of_quota else min(limit, self._epoch.billed)
        return JSONResponse(
            {
                "tier": "creator",
                "character_count": used,
                "character_limit": limit,
                "can_extend_character_limit": False,
                "allowed_to_extend_character_limit": False,
                "next_character_count_reset_unix": self._reset_unix,
                "voice_limit": 30,
                "status": "active",
                "currency": "usd",
                "billing_period": "monthly_period",
            }
        )

    async def _models(self, request: Request) -> Response:
        if (denied := await self._guarded(request)) is not None:
            return denied
        return JSONResponse([model.as_json() for model in api.MODELS.values()])

    async def _voices(self, request: Request) -> Response:
        if (denied := await self._guarded(request)) is not None:
            return denied
        return JSONResponse({"voices": [api.voice_json(voice) for voice in api.VOICES.values()]})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pause(seconds: float, gone: asyncio.Future[None], stopping: asyncio.Future[Any]) -> None:
    """Sleep, but wake for a client that went away (_ClientGone) or a server stopping."""
    if seconds > 0 and not (gone.done() or stopping.done()):
        await asyncio.wait({gone, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    if stopping.done():
        raise _DroppedConnection("the fake is stopping")
    if gone.done():
        raise _ClientGone


async def _send_whole(send: Send, reply: api.Reply) -> None:
    headers = {**reply.headers, "content-length": str(len(reply.body))}
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _stream_body(
    send: Send,
    body: bytes,
    behavior: Behavior,
    gone: asyncio.Future[None],
    stopping: asyncio.Future[Any],
) -> None:
    """The audio as chunks of the behaviour's sizes, with its delays, stall and truncation."""
    sizes = itertools.cycle([max(1, size) for size in behavior.chunk_sizes] or [1024])
    stall_at, cut_at = behavior.stall_after_bytes, behavior.truncate_after_bytes
    offset, stalled, first = 0, False, True
    while True:
        if cut_at is not None and offset >= cut_at:
            raise _DroppedConnection("truncated on purpose")
        if stall_at is not None and not stalled and offset >= stall_at:
            stalled = True
            await _pause(behavior.stall_s, gone, stopping)
        if offset >= len(body):
            break
        await _pause(0.0 if first else behavior.chunk_delay_s, gone, stopping)
        first = False
        end = min(offset + next(sizes), len(body))
        for boundary in (stall_at, cut_at):
            if boundary is not None and offset < boundary < end:
                end = boundary
        await send({"type": "http.response.body", "body": body[offset:end], "more_body": True})
        offset = end
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def main() -> None:
    """`python -m tests.fakes.elevenlabs_server`: serve until interrupted, for manual runs."""
    with FakeElevenLabs() as fake:
        print(
            f"ELEVEN_LABS_BASE_URL={fake.base_url} ELEVEN_LABS_API_KEY={fake.api_key}", flush=True
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
