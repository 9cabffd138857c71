"""`python -m app.serve`: the API under uvicorn with the server options it is built for.

`make run`, the Dockerfile, docker-compose and the tests' API processes all start the service
this way, so a server option is set once.
"""

import argparse
from typing import Any

import uvicorn

from app.config import get_settings
from app.observability import multiproc

# For every server that runs the app (tests and benchmarks too).
SERVER_OPTIONS: dict[str, Any] = {
    # Audio frames are base64 that deflate barely shrinks; compressing each of the 50 frames
    # a second of every call cost more CPU than anything else on a session. Twilio does not
    # negotiate it either.
    "ws_per_message_deflate": False,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.serve", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    args = parser.parse_args(argv)
    # Before uvicorn imports the app, and with it prometheus_client, which reads it then.
    multiproc.prepare_directory(get_settings().metrics.multiproc_dir)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        access_log=args.access_log,
        **SERVER_OPTIONS,
    )


if __name__ == "__main__":
    main()
