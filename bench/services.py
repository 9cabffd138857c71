"""Shared by the service benchmarks: a private Redis, server processes, percentiles, headers."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.util
import math
import os
import platform
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis
from redis.asyncio import Redis

from app.config import Settings
from app.ops import local_redis
from app.services import redis_client
from bench.machine import cpu_model
from tests.processes import ApiProcess
from tests.processes import api_env as _test_env


@contextmanager
def private_redis(data_dir: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (never the machine's own); its URL."""
    process, port = local_redis.start_private(data_dir)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def api_env(redis_url: str, **extra: str) -> dict[str, str]:
    """An API process's environment: both Redis URLs pinned to ours, whatever the shell has."""
    return _test_env(redis_url, REDIS__URL=redis_url, REDIS__CACHE_URL=redis_url, **extra)


def app_redis_client(redis_url: str) -> Redis:
    """An asyncio client built by the app's own factory: the pool and options it runs with."""
    return redis_client(redis_url, Settings())


def flush(redis_url: str) -> None:
    """Empty a database of a private Redis started by this benchmark."""
    with redis.Redis.from_url(redis_url) as client:
        client.flushdb()


def redis_version(redis_url: str) -> str:
    with redis.Redis.from_url(redis_url) as client:
        return str(client.info("server").get("redis_version", "?"))


def redis_pid(redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return int(client.info("server")["process_id"])


def redis_command_calls(redis_url: str) -> dict[str, int]:
    """Calls per command so far (INFO commandstats), SUBSCRIBE and INFO itself left out.

    Commands run by Lua scripts are counted too, under their own names.
    """
    with redis.Redis.from_url(redis_url) as client:
        stats = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if isinstance(value, dict) and name not in ("cmdstat_info", "cmdstat_subscribe")
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def server_timing_ms(header: str | None, metric: str = "total") -> float | None:
    """The `dur` of one metric of a Server-Timing header, in milliseconds."""
    if not header:
        return None
    for entry in header.split(","):
        name, *params = (part.strip() for part in entry.split(";"))
        if name != metric:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "dur":
                try:
                    return float(value)
                except ValueError:
                    return None
    return None


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) a live process has used so far (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def api_pid(api: ApiProcess) -> int:
    """The uvicorn process behind an ApiProcess (it keeps its Popen private)."""
    process = api._process
    if process is None:
        raise RuntimeError("the API process is not started")
    return process.pid


def open_descriptors(pid: int, peers: dict[int, str]) -> Counter[str]:
    """A process's open descriptors by kind; TCP sockets by what they talk to.

    `peers` names ports: a socket whose local or remote port is one of them is counted under
    its name ("state Redis", "callers" for the process's own listening port, ...).
    """
    inodes: dict[str, tuple[int, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                inodes[fields[9]] = (local, remote)
    kinds: Counter[str] = Counter()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed while we looked
        if target.startswith("socket:["):
            ports = inodes.get(target[8:-1])
            if ports is None:
                kinds["other socket"] += 1
                continue
            named = [peers[p] for p in ports if p in peers]
            kinds[named[0] if named else f"TCP to port {ports[1]}"] += 1
        else:
            kinds[target.split(":", 1)[0] if ":" in target else "file"] += 1
    return kinds


def machine_lines() -> list[str]:
    """The header lines every service benchmark prints."""
    packages = ("fastapi", "starlette", "uvicorn", "httpx", "redis")
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in packages)
    extras = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name)]
    loop = f"uvicorn extras: {', '.join(extras)}" if extras else "asyncio loop + h11 (no uvloop)"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- Machine: {platform.platform()}; {cpu_model()}; {os.cpu_count()} CPUs; "
        f"load average {load} at the start (other work on the machine shows here)",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- Servers: uvicorn as `make run` starts it ({loop})",
    ]


class RawCaller:
    """HTTP/1.1 over asyncio streams, nothing else: keep-alive, Content-Length bodies only."""

    def __init__(self, url: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        parsed = httpx.URL(url)
        self._host, self._port = parsed.host, parsed.port or 80
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
        self._head = (
            f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}:{self._port}\r\n"
            f"{extra}Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes) -> tuple[int, dict[str, str]]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RuntimeError(f"no Content-Length in {head[0]!r}: this client reads no other")
        await reader.readexactly(int(headers["content-length"]))
        return int(head[0].split(" ", 2)[1]), headers

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            writer.close()
            await writer.wait_closed()
