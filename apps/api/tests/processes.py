"""Real API processes for tests and benchmarks, started with the same command as `make run`."""

import abc
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from app.ops.local_redis import free_port

API_DIR = Path(__file__).resolve().parents[1]


REPO_DIR = API_DIR.parents[1]


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name; None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie has exited; only its parent's reaping is left)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` right now."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


class ChildProcess(abc.ABC):
    """A command in its own session, its output in a log file; `ready()` says it is serving.

    Signals go to the whole session: make, its shell and Celery's pool children alike.
    """

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self._command = command
        self._cwd = cwd
        self._env = {**os.environ, **env}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def ready(self) -> bool:
        """Whether the process serves now."""

    def start(self) -> Self:
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._command,
                cwd=self._cwd,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> Self:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"{self._command} exited:\n{self.log()}")
            if self.ready():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"{self._command} not ready in {timeout_s:.0f} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def wait(self, timeout_s: float) -> int:
        """The exit status once the process has ended (negative: the signal that ended it)."""
        assert self._process is not None, "not started"
        return self._process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is acknowledged, as when a machine dies."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: signal.Signals) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace") if self._log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start().wait_ready()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class ApiProcess(ChildProcess):
    """`python -m app.serve` (as `make run` starts it) on a free port, with its own env."""

    def __init__(self, env: dict[str, str], log_dir: Path, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"  # 0.0.0.0 answers on loopback too
        command = [
            sys.executable, "-m", "app.serve",
            "--host", host, "--port", str(self.port), "--no-access-log",
        ]  # fmt: skip
        super().__init__(command, API_DIR, env, log_dir / f"uvicorn-{self.port}.log")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False


class MakeProcess(ChildProcess):
    """`make worker` or `make beat`, exactly as an operator starts it."""

    def __init__(self, target: str, env: dict[str, str], log_dir: Path, ready_line: str) -> None:
        self.target = target
        self._ready_line = ready_line
        command = ["make", "-s", "--no-print-directory", target]
        super().__init__(command, REPO_DIR, env, log_dir / f"{target}-{free_port()}.log")

    def ready(self) -> bool:
        return self._ready_line in self.log()


def api_env(redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a test API process: our Redis, no key from a developer's .env."""
    return {"REDIS_URL": redis_url, "ELEVENLABS__API_KEY": "", **extra}


def upstream_env(redis_url: str, base_url: str, api_key: str, **extra: str) -> dict[str, str]:
    """`api_env`, speaking through an ElevenLabs at `base_url` (the fake, in tests)."""
    return api_env(redis_url, ELEVENLABS__API_KEY=api_key, ELEVEN_LABS_BASE_URL=base_url, **extra)


def worker(env: dict[str, str], log_dir: Path) -> MakeProcess:
    return MakeProcess("worker", env, log_dir, ready_line=" ready.")


def beat(env: dict[str, str], log_dir: Path) -> MakeProcess:
    return MakeProcess("beat", env, log_dir, ready_line="beat: Starting...")
