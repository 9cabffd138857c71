"""`python -m app.serve`: the API under uvicorn with the server options it is built for.

`make run`, the Dockerfile, docker-compose and the tests' API processes all start the service
this way, so a server option is set once.
"""

import argparse
import ipaddress
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis
import uvicorn
from redis.exceptions import RedisError
from uvicorn.config import STARTUP_FAILURE

from app.auth.store import KEY_IDS
from app.config import Settings, get_settings
from app.observability import multiproc
from app.streaming.transport import CoalescingWebSocketProtocol

# For every server that runs the app (tests and benchmarks too).
SERVER_OPTIONS: dict[str, Any] = {
    # Audio frames are base64 that deflate barely shrinks; compressing each of the 50 frames
    # a second of every call cost more CPU than anything else on a session. Twilio does not
    # negotiate it either.
    "ws_per_message_deflate": False,
    # A burst of frames leaves in one socket write, not one write per frame.
    "ws": CoalescingWebSocketProtocol,
}


class _Server(uvicorn.Server):
    """uvicorn's server, stopping the scoring process before uvicorn re-raises its stop signal.

    After a graceful shutdown uvicorn raises the SIGTERM (or SIGINT) it caught once more, so
    the process ends by that signal and no atexit handler runs: the scoring process's queues
    were left to the resource tracker, which warned of leaked semaphores at every stop.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # Imported here: app.tts pulls in prometheus_client, which must come after
                # multiproc.prepare_directory.
                from app.tts.finishing import shared_finisher

                shared_finisher().close()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_refusal(host: str, settings: Settings) -> str | None:
    """Why the service must not listen on `host`: only loopback is open without API keys."""
    if is_loopback(host):
        return None
    auth = settings.auth
    if not auth.enabled:
        return f"AUTH__ENABLED=false and --host {host} is not a loopback address"
    if auth.bootstrap_admin_key is not None:
        return None
    try:
        with redis.Redis.from_url(settings.redis.url, socket_timeout=2) as client:
            if client.scard(KEY_IDS):
                return None
    except (RedisError, OSError) as exc:
        return (
            f"--host {host} is not a loopback address and no API key could be found "
            f"(the state Redis is unreachable: {type(exc).__name__}); set "
            "AUTH__BOOTSTRAP_ADMIN_KEY or start Redis"
        )
    return (
        f"--host {host} is not a loopback address and no API key exists: every route would "
        'be open to the network. Create one (make keys ARGS="create --name admin --scopes '
        'admin") or set AUTH__BOOTSTRAP_ADMIN_KEY, or bind to 127.0.0.1'
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args(argv)
    refusal = exposure_refusal(args.host, get_settings())
    if refusal is not None:
        parser.exit(2, f"{parser.prog}: refusing to start: {refusal}\n")
    # Before uvicorn imports the app, and with it prometheus_client, which reads it then.
    multiproc.prepare_directory(get_settings().metrics.multiproc_dir)
    server = _Server(
        uvicorn.Config(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            access_log=args.access_log,
            **SERVER_OPTIONS,
        )
    )
    # Ctrl-C: uvicorn re-raises the SIGINT after its graceful shutdown (uvicorn.run ignores it).
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
