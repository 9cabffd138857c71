"""The ElevenLabs and monitoring keys never leave the process: not in any answer, header, log
line, metric, error message or the OpenAPI document, whatever the traffic and its faults."""

import json
from pathlib import Path

import httpx
import pytest
import websockets

from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.fakes.monitoring_sink import FakeMonitoringSink
from tests.processes import ApiProcess, upstream_env

pytestmark = pytest.mark.integration

UPSTREAM_KEY = "sk_el_9f3c1d0be7a24c55ab61-upstream-secret"
MONITORING_KEY = "mon_7d2e90c4f1b8-monitoring-secret"
SECRETS = (UPSTREAM_KEY, MONITORING_KEY)


def _exchange(response: httpx.Response) -> str:
    headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text if _textual(response) else ''}"


def _textual(response: httpx.Response) -> bool:
    kind: str = response.headers.get("content-type", "")
    return kind.startswith(("application/json", "text/"))


async def test_no_secret_is_ever_sent_logged_exported_or_documented(
    fresh_redis: str, tmp_path: Path
) -> None:
    seen: list[str] = []
    providers: list[str] = []
    with FakeElevenLabs(api_key=UPSTREAM_KEY) as fake, FakeMonitoringSink() as sink:
        env = upstream_env(
            fresh_redis, fake.base_url, UPSTREAM_KEY, MONITORING_WEBHOOK_URL=sink.url,
            TWENTYONEDEV_API_KEY=MONITORING_KEY,
        )  # fmt: skip
        with ApiProcess(env, tmp_path) as api:
            http = httpx.AsyncClient(base_url=api.base_url, timeout=30)
            voice = "/api/v1/voice"
            texts = ["Welcome to 42 Maple Street.", "Bienvenidos a la casa.", "欢迎光临。"]
            for text in texts:
                answer = await http.post(f"{voice}/synthesize", json={"text": text})
                providers.append(answer.headers["x-provider"])
                seen.append(_exchange(answer))
            for status in (401, 422, 429, 500, 503):
                fake.behavior.status = status
                answer = await http.post(f"{voice}/synthesize", json={"text": f"Fault {status}."})
                seen.append(_exchange(answer))
            fake.behavior.status = 200
            fake.behavior.non_audio_body = True
            seen.append(_exchange(await http.post(f"{voice}/synthesize", json={"text": "Odd."})))
            fake.reset()
            streamed = await http.post(
                f"{voice}/streaming/synthesize/streaming", json={"text": "A streamed reply."}
            )
            seen.append(_exchange(streamed))
            for path in (
                "/openapi.json",
                "/metrics",
                "/health",
                "/ready",
                f"{voice}/streaming/health/detailed",
                f"{voice}/performance",
                f"{voice}/analytics/summary",
                f"{voice}/profiles",
                f"{voice}/nowhere",
            ):
                seen.append(_exchange(await http.get(path)))
            seen.append(_exchange(await http.post(f"{voice}/synthesize", content=b"{bad")))
            ws_url = api.base_url.replace("http://", "ws://") + f"{voice}/streaming/stream/s1"
            async with websockets.connect(ws_url) as ws:
                await ws.send(json.dumps({"type": "start", "output_format": "pcm_16000"}))
                await ws.send(json.dumps({"type": "text", "utterance_id": "u", "text": "Hi.",
                                          "flush": True}))  # fmt: skip
                await ws.send("not json")
                while (message := json.loads(await ws.recv())).get("type") != "metrics":
                    seen.append(json.dumps(message))
            await http.aclose()
            log = api.log()

    assert providers == ["elevenlabs"] * 3  # the upstream key was really in use
    assert "upstream_auth_failed" in log  # and the faults were really met
    haystack = "\n".join([*seen, log])
    for secret in SECRETS:
        assert secret not in haystack
        assert secret[:12] not in haystack  # not even a prefix
