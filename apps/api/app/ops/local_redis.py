"""A local redis-server when none answers: for `make run` and for the test session.

`python -m app.ops.local_redis ensure` pings the configured REDIS_URL; if nothing answers and
the URL points at this machine, it installs Debian's redis-server when missing and starts one
on that port (data under var/redis-<port> in the repo). The test session uses `start_private`
for a throwaway server on a free port.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[4]
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class LocalRedisError(RuntimeError):
    pass


def host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379


def answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether a Redis server answers PING there (RESP over a plain socket)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    # "-NOAUTH" also proves a Redis is there; it just wants a password.
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def redis_server_binary() -> str:
    """The redis-server executable, installing Debian's package when it is missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    if not shutil.which("apt-get"):
        raise LocalRedisError("redis-server is not installed and apt-get is not available")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print("redis-server is missing: installing Debian's package", file=sys.stderr)
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
        check=True,
        env=env,
    )
    found = shutil.which("redis-server")
    if not found:
        raise LocalRedisError("installing redis-server did not provide the binary")
    return found


def wait_until_answering(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(host, port):
            return
        time.sleep(0.05)
    raise LocalRedisError(f"redis-server did not answer on {host}:{port} in {timeout_s:.0f} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_private(data_dir: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway redis-server on loopback (a free port unless given), as a child process.

    Giving the port of one that was killed brings "the same server" back, for outage tests.
    """
    binary = redis_server_binary()
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    process = subprocess.Popen(
        [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(data_dir),
            "--logfile", str(data_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_answering("127.0.0.1", port)
    except LocalRedisError:
        process.kill()
        raise
    return process, port


def ensure(url: str) -> str:
    """Make sure a Redis answers at `url`; start a daemonized local one if it may."""
    host, port = host_port(url)
    if answers(host, port):
        return f"redis already answers on {host}:{port}"
    if host not in _LOCAL_HOSTS:
        raise LocalRedisError(f"no Redis answers at {host}:{port}, and it is not this machine")
    binary = redis_server_binary()
    data_dir = REPO_ROOT / "var" / f"redis-{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            binary,
            "--daemonize", "yes",
            "--bind", "127.0.0.1" if host != "::1" else "::1",
            "--port", str(port),
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--maxmemory-policy", "noeviction",
            "--logfile", str(data_dir / "redis.log"),
            "--pidfile", str(data_dir / "redis.pid"),
        ],
        check=True,
    )  # fmt: skip
    wait_until_answering(host, port)
    return f"started redis-server on {host}:{port} (data in {data_dir})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["ensure", "install"])
    parser.add_argument("--url", help="Redis URL (default: the service's configured REDIS_URL)")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(redis_server_binary())
            return 0
        if args.url:
            urls = [args.url]
        else:
            from app.config import get_settings

            redis = get_settings().redis
            urls = list(dict.fromkeys([redis.url, redis.effective_cache_url]))
        for url in urls:
            print(ensure(url))
    except (LocalRedisError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
