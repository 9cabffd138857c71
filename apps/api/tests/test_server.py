"""The service as `make run` starts it: a real uvicorn process, spoken to over real HTTP."""

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from app.ops.local_redis import free_port

API_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        # Nested names win over the seed's: no developer .env key can leak into this test.
        "ELEVENLABS__API_KEY": "",
    }
    # The same command as `make run`.
    command = [
        sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    log_path = tmp_path_factory.mktemp("server") / "uvicorn.log"
    log = log_path.open("wb")
    process = subprocess.Popen(command, cwd=API_DIR, env=env, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log_path.read_text()
            time.sleep(0.1)
        else:
            pytest.fail("the server did not become ready in 30 s")
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Welcome to the open house at 42 Maple Street.", "en"),
        ("¿Le gustaría agendar una visita?", "es"),
        ("欢迎参观这套房子。", "zh"),
    ],
)
def test_the_readme_curl_gives_a_playable_mp3_in_each_language(
    server: str, text: str, language: str
) -> None:
    response = httpx.post(
        f"{server}/api/v1/voice/synthesize",
        json={"text": text, "persona": "friendly"},
        timeout=30,
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"
    assert response.headers["x-language"] == language
    assert response.headers["x-provider"] == "espeak"
    samples, rate = sf.read(io.BytesIO(response.content), dtype="int16")
    assert rate == 44100
    assert len(samples) / rate > 1.0


@pytest.mark.integration
def test_errors_from_the_real_server_are_json(server: str) -> None:
    response = httpx.post(
        f"{server}/api/v1/voice/synthesize", content=b"{oops", timeout=10,
        headers={"content-type": "application/json"},
    )  # fmt: skip

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
