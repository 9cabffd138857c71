"""Real API processes for tests and benchmarks, started with the same command as `make run`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from app.ops.local_redis import free_port

API_DIR = Path(__file__).resolve().parents[1]


class ApiProcess:
    """`python -m app.serve` (as `make run` starts it) on a free loopback port, with its own env."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **env}
        self._log_path = log_dir / f"uvicorn-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> "ApiProcess":
        command = [
            sys.executable, "-m", "app.serve",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log",
        ]  # fmt: skip
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, cwd=API_DIR, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(self, timeout_s: float = 30.0) -> "ApiProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"the API process exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the API process did not answer in {timeout_s:.0f} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine dies."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def __enter__(self) -> "ApiProcess":
        return self.start().wait_ready()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def api_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test API process: our Redis, no key from a developer's .env."""
    return {"REDIS_URL": redis_url, "ELEVENLABS__API_KEY": "", **extra}


def upstream_env(redis_url: str, base_url: str, api_key: str, **extra: str) -> dict[str, str]:
    """`api_env`, speaking through an ElevenLabs at `base_url` (the fake, in tests)."""
    return api_env(redis_url, ELEVENLABS__API_KEY=api_key, ELEVEN_LABS_BASE_URL=base_url, **extra)


REPO_DIR = API_DIR.parents[1]


class MakeProcess:
    """`make worker` or `make beat`, exactly as an operator starts it, in its own session.

    The whole process group is signalled: make, the shell and Celery with its pool children.
    """

    def __init__(self, target: str, env: dict[str, str], log_dir: Path, ready_line: str) -> None:
        self.target = target
        self._env = {**os.environ, **env}
        self._ready_line = ready_line
        self._log_path = log_dir / f"{target}-{free_port()}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> "MakeProcess":
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                ["make", "-s", "--no-print-directory", self.target],
                cwd=REPO_DIR,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> "MakeProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"make {self.target} exited:\n{self.log()}")
            if self._ready_line in self.log():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"make {self.target} not ready in {timeout_s:.0f} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL to the whole group: nothing acknowledges, nothing cleans up."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def __enter__(self) -> "MakeProcess":
        return self.start().wait_ready()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def worker(env: dict[str, str], log_dir: Path) -> MakeProcess:
    return MakeProcess("worker", env, log_dir, ready_line=" ready.")


def beat(env: dict[str, str], log_dir: Path) -> MakeProcess:
    return MakeProcess("beat", env, log_dir, ready_line="beat: Starting...")
