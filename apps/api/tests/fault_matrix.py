"""The fault matrix (DESIGN §4.5-4.6): every upstream fault against every surface.

Shared by tests/test_fault_matrix.py, which asserts each cell, and bench/faults.py, which
prints the same matrix with its times. Each fault is set on the fake ElevenLabs (or points
the service at no server at all); each surface is driven as its real client drives it, over
real HTTP and WebSocket against the app on uvicorn. A cell records who spoke, the status,
the time to the first audio, the total time and whether the audio holds speech.
"""

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import websockets

from app.audio import codecs
from app.audio.formats import OutputFormat, spec_of
from app.ops.local_redis import free_port
from tests.fakes.elevenlabs_server import FakeElevenLabs

# One sentence, about 3 s of speech: the WebSocket surfaces play it in real time.
TEXT = "The kitchen at 42 Maple Street was remodeled last spring."
BUDGET_MS = 1000
# First audio may come this long after the budget: a stall waits out up to one budget after
# the first bytes, then the offline engine renders the segment.
FIRST_AUDIO_MARGIN_S = 1.2
TOTAL_LIMIT_S = 15.0

ELEVENLABS, ESPEAK = "elevenlabs", "espeak"
UPSTREAM, OFFLINE, EITHER = (
    frozenset({ELEVENLABS}),
    frozenset({ESPEAK}),
    frozenset({ELEVENLABS, ESPEAK}),
)


@dataclass(frozen=True)
class Fault:
    name: str
    behavior: dict[str, Any] = field(default_factory=dict)
    # "fake", or an upstream that is not there at all.
    upstream: str = "fake"
    # Who may speak the first audio: a whole answer (synthesize, bulk) / a stream (chunked,
    # WebSocket).
    whole: frozenset[str] = frozenset({ESPEAK})
    streamed: frozenset[str] = frozenset({ESPEAK})
    output_format: OutputFormat | None = None  # for the HTTP surfaces; None: mp3_44100_128


FAULTS: tuple[Fault, ...] = (
    Fault("none", whole=UPSTREAM, streamed=UPSTREAM),
    Fault("401 invalid key", {"status": 401, "error_status_text": "invalid_api_key"}),
    Fault("401 quota_exceeded", {"status": 401, "error_status_text": "quota_exceeded"}),
    Fault("422", {"status": 422}),
    Fault(
        "429 Retry-After 0.3 s, once",
        {"status": 429, "retry_after_s": 0.3, "fail_first_n": 1},
        whole=UPSTREAM,
        streamed=UPSTREAM,
    ),
    Fault("429 no Retry-After", {"status": 429}),
    Fault("500", {"status": 500}),
    Fault("503", {"status": 503}),
    Fault("connection refused", upstream="refused"),
    Fault("DNS failure", upstream="dns"),
    Fault("TTFB beyond budget", {"ttfb_s": 3 * BUDGET_MS / 1000}),
    # A stream's first bytes are ElevenLabs' and the offline engine says the rest, until the
    # failures open the circuit and the offline engine speaks from the start.
    Fault("stall mid-stream", {"stall_after_bytes": 6000, "stall_s": 10.0}, streamed=EITHER),
    Fault("truncated body", {"truncate_after_bytes": 6000}, streamed=EITHER),
    Fault("200 with JSON error body", {"non_audio_body": True}),
    Fault(
        "odd-length PCM",
        {"odd_length": True},
        whole=UPSTREAM,
        streamed=UPSTREAM,
        output_format=OutputFormat.PCM_16000,
    ),
    # Held back by the sound gate, as for every surface: nothing silent is ever passed on.
    Fault("body of silence", {"silent_audio": True}),
)


@dataclass(frozen=True)
class Cell:
    fault: str
    surface: str
    status: int
    provider: str
    first_audio_s: float | None
    total_s: float
    speech: bool  # the audio decodes and is not silent
    errors: tuple[str, ...] = ()

    def row(self) -> str:
        first = f"{self.first_audio_s:.2f}" if self.first_audio_s is not None else "—"
        return f"{self.provider} {self.status} {first}/{self.total_s:.2f}s" + (
            "" if self.speech else " SILENT"
        )


def service_env(fault: Fault, fake: FakeElevenLabs) -> dict[str, Any]:
    """Settings groups for the app under `fault`."""
    base_url = {
        "fake": fake.base_url,
        "refused": f"http://127.0.0.1:{free_port()}",
        "dns": "http://elevenlabs.invalid",
    }[fault.upstream]
    return {
        "elevenlabs": {"api_key": fake.api_key, "base_url": base_url},
        "synthesis": {"response_timeout_ms": BUDGET_MS},
        "jobs": {"bulk_budget_s": BUDGET_MS / 1000},
        "cache": {"enabled": False},
    }


def arrange(fake: FakeElevenLabs, fault: Fault) -> None:
    fake.reset()
    for name, value in fault.behavior.items():
        setattr(fake.behavior, name, value)


def _has_speech(audio: bytes, output_format: OutputFormat) -> bool:
    if not audio:
        return False
    pcm = codecs.decode(audio, spec_of(output_format))
    return pcm.size > 0 and int(np.abs(pcm.astype(np.int32)).max()) > 1000


async def _http(base_url: str, fault: Fault, path: str, surface: str) -> Cell:
    """A POST of the synthesize body, read as it streams in: first byte and whole body."""
    fmt = fault.output_format or OutputFormat.MP3_44100_128
    started = time.monotonic()
    first: float | None = None
    body = bytearray()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        request = {"text": TEXT, "output_format": fmt.value}
        async with http.stream("POST", path, json=request) as response:
            async for chunk in response.aiter_bytes():
                if first is None and chunk:
                    first = time.monotonic() - started
                body += chunk
    return Cell(
        fault.name,
        surface,
        response.status_code,
        response.headers.get("x-provider", "—"),
        first,
        time.monotonic() - started,
        response.status_code == 200 and _has_speech(bytes(body), fmt),
    )


async def _websocket(base_url: str, fault: Fault, frames: str) -> Cell:
    fmt = OutputFormat.ULAW_8000 if frames == "twilio" else OutputFormat.PCM_16000
    url = base_url.replace("http://", "ws://") + f"/api/v1/voice/streaming/stream/m-{frames}"
    start = {"type": "start", "output_format": fmt.value, "frames": frames}
    if frames == "twilio":
        start["stream_sid"] = "MZfault"
    audio = bytearray()
    errors: list[str] = []
    provider = "—"
    first: float | None = None
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps(start))
        await ws.recv()
        started = time.monotonic()
        await ws.send(
            json.dumps({"type": "text", "utterance_id": "u", "text": TEXT, "flush": True})
        )
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), TOTAL_LIMIT_S))
            kind = message.get("type") or message.get("event")
            if kind in ("audio", "media"):
                payload = message["audio"] if kind == "audio" else message["media"]["payload"]
                audio += base64.b64decode(payload)
                if first is None:
                    first = time.monotonic() - started
            elif kind == "error":
                errors.append(message["code"])
            elif kind == "metrics":
                provider = message["provider"]
                break
            elif kind == "mark" and frames == "twilio":
                continue
    return Cell(
        fault.name,
        f"WebSocket {frames}",
        101,
        provider,
        first,
        time.monotonic() - started,
        _has_speech(bytes(audio), fmt),
        tuple(errors),
    )


async def _bulk(base_url: str, fault: Fault) -> Cell:
    fmt = fault.output_format or OutputFormat.MP3_44100_128
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post(
            "/api/v1/voice/streaming/synthesize/bulk",
            json={"items": [{"text": TEXT, "output_format": fmt.value}]},
        )
    total = time.monotonic() - started
    if response.status_code != 200:
        return Cell(fault.name, "bulk", response.status_code, "—", None, total, False)
    [item] = response.json()["items"]
    audio = base64.b64decode(item.get("audio_base64") or "")
    return Cell(
        fault.name,
        "bulk",
        response.status_code,
        item.get("provider") or "—",
        total,  # a bulk answer comes whole
        total,
        item["status"] == "done" and _has_speech(audio, fmt),
    )


Surface = Callable[[str, Fault], Awaitable[Cell]]
SURFACES: dict[str, Surface] = {
    "synthesize": lambda url, fault: _http(url, fault, "/api/v1/voice/synthesize", "synthesize"),
    "chunked stream": lambda url, fault: _http(
        url, fault, "/api/v1/voice/streaming/synthesize/streaming", "chunked stream"
    ),
    "WebSocket json": lambda url, fault: _websocket(url, fault, "json"),
    "WebSocket twilio": lambda url, fault: _websocket(url, fault, "twilio"),
    "bulk": _bulk,
}
STREAMED = frozenset({"chunked stream", "WebSocket json", "WebSocket twilio"})


async def run_fault(base_url: str, fault: Fault) -> list[Cell]:
    """Every surface under `fault`, all at once, as callers would come."""
    return list(await asyncio.gather(*(surface(base_url, fault) for surface in SURFACES.values())))


def expected_speakers(fault: Fault, surface: str) -> frozenset[str]:
    return fault.streamed if surface in STREAMED else fault.whole
