"""The service as `make run` starts it: a real uvicorn process, spoken to over real HTTP."""

import io
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from tests.processes import ApiProcess, api_env, children_of, running


@pytest.fixture(scope="module")
def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ApiProcess(api_env(redis_url), tmp_path_factory.mktemp("server")) as process:
        yield process.base_url


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


@pytest.mark.integration
def test_a_stop_signal_shuts_down_cleanly_leaving_no_process_or_semaphore(
    redis_url: str, tmp_path: Path
) -> None:
    process = ApiProcess(api_env(redis_url), tmp_path).start().wait_ready()
    children = children_of(process.pid)  # the scoring process and multiprocessing's tracker
    # SIGTERM to the API process alone, as `docker stop` sends it to the container's process.
    os.kill(process.pid, signal.SIGTERM)
    status = process.wait(timeout_s=30)

    assert status == -signal.SIGTERM  # uvicorn ends by the signal it caught, after shutdown
    assert children
    deadline = time.monotonic() + 10
    while (left := [pid for pid in children if running(pid)]) and (time.monotonic() < deadline):
        time.sleep(0.1)
    assert not left
    # Read once the children are gone: the tracker reports leaks as it exits.
    log = process.log()
    assert "Application shutdown complete" in log
    assert "leaked" not in log, log
