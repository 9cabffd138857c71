"""WS /streaming/stream/{session_id}: the bidirectional session of DESIGN §5."""

import asyncio
import re
import time

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect

from app.auth.access import Access, Caller
from app.auth.scopes import Scope
from app.config import StreamingSettings
from app.deps import (
    ServicesDep,
    SessionRegistryDep,
    SettingsDep,
    StreamWatchDep,
    SynthesizerDep,
)
from app.errors import AppError, OverloadedError, error_body, request_id_of
from app.observability import metrics
from app.ops.loop_lag import lag_ms
from app.services import Services
from app.streaming import protocol
from app.streaming.session import Session, Throttle

router = APIRouter(prefix="/streaming", tags=["streaming"])

_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_POLICY_VIOLATION = 1008


@router.websocket("/stream/{session_id}", name="stream_session")
async def stream_session(
    websocket: WebSocket,
    session_id: str,
    synthesizer: SynthesizerDep,
    settings: SettingsDep,
    registry: SessionRegistryDep,
    streams: StreamWatchDep,
    services: ServicesDep,
) -> None:
    try:
        caller = await services.access.admit(websocket, Scope.STREAM, allow_query=True)
        _refuse_if_overloaded(services, settings.streaming, registry.local)
    except AppError as exc:
        # Refused on the handshake itself, with the status and JSON body an HTTP route gives.
        body = error_body(exc.code, exc.message, request_id_of(websocket), exc.details)
        await websocket.send_denial_response(
            JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
        )
        return
    await websocket.accept()
    if not _SESSION_ID.match(session_id):
        await websocket.send_json(
            protocol.error(
                "invalid_session_id", "Session ids are 1-64 of A-Z a-z 0-9 _ . : -.", False
            )
        )
        await websocket.close(_POLICY_VIOLATION, "invalid session id")
        return
    session = Session(
        session_id,
        synthesizer,
        websocket.send_text,
        settings.streaming,
        settings.synthesis.min_segment_chars,
        settings.synthesis.max_segment_chars,
        streams,
        _throttle(services.access, websocket, caller),
        settings.server.max_json_depth,
    )
    registry.opened()
    receiving = asyncio.create_task(_receive(websocket, session, settings.streaming))
    ended = asyncio.create_task(session.finished.wait())
    try:
        done, _ = await asyncio.wait({receiving, ended}, return_when=asyncio.FIRST_COMPLETED)
        if ended in done:
            await websocket.close(1000, "session ended")
        else:
            close_reason = receiving.result()
            if close_reason is not None:
                await websocket.close(1000, close_reason)
    except (WebSocketDisconnect, RuntimeError):
        pass  # the client is gone; nothing to close
    finally:
        for task in (receiving, ended):
            task.cancel()
        await asyncio.gather(receiving, ended, return_exceptions=True)
        await session.close()
        registry.closed()


def _refuse_if_overloaded(services: Services, limits: StreamingSettings, open_here: int) -> None:
    """Raises OverloadedError while the loop lags: the caller is better served elsewhere."""
    threshold_ms = limits.refuse_sessions_above_lag_ms
    if threshold_ms is None:
        return
    lag = lag_ms(services.loop_lag, limits.overload_window_s)
    if lag < threshold_ms:
        return
    metrics.WEBSOCKET_SESSIONS_REFUSED.inc()
    raise OverloadedError(
        "This process is overloaded and cannot take another session without making the "
        "calls it has late; try again, or another instance.",
        details={"event_loop_lag_ms": round(lag), "sessions_here": open_here},
        headers={"Retry-After": "1"},
    )


def _throttle(access: Access, websocket: WebSocket, caller: Caller) -> Throttle:
    """The key's characters-per-minute budget for the session's text: None, or the wait."""

    async def charge(characters: int) -> float | None:
        try:
            await access.charge_characters(websocket, caller, characters)
        except AppError as exc:
            return float(exc.headers.get("Retry-After", "1"))
        return None

    return charge


async def _receive(websocket: WebSocket, session: Session, limits: StreamingSettings) -> str | None:
    """Handle messages until the client leaves (None) or the session idles out (a reason)."""
    bucket = _Throttle(limits.messages_per_second)
    while True:
        try:
            # A timeout scope, not wait_for: no task per message, none waiting per session.
            async with asyncio.timeout(limits.idle_timeout_s):
                message = await websocket.receive()
        except TimeoutError:
            if session.busy:
                continue
            return "idle timeout"
        if message["type"] == "websocket.disconnect":
            return None
        if await bucket.wait() and not bucket.warned:
            bucket.warned = True
            await session.send(
                protocol.error("rate_limited", "Too many messages: they are being slowed down.")
            )
        if message.get("text") is not None:
            await session.handle_text(message["text"])
        elif message.get("bytes") is not None:
            await session.handle_binary()


class _Throttle:
    """A token bucket: bursts of twice the rate, then one message per 1/rate seconds."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = rate * 2
        self._tokens = self._capacity
        self._stamp = time.monotonic()
        self.warned = False

    async def wait(self) -> bool:
        """Take a token, sleeping for one if needed; True when the caller had to wait."""
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            if self._tokens >= self._capacity / 2:
                self.warned = False
            return False
        delay = (1 - self._tokens) / self._rate
        await asyncio.sleep(delay)
        self._tokens = 0.0
        self._stamp = time.monotonic()
        return True
