"""app.ops.local_redis: what `make run` uses to make sure a Redis answers."""

import os
import signal
from pathlib import Path

import pytest

from app.ops import local_redis


def test_a_closed_port_does_not_answer() -> None:
    assert local_redis.answers("127.0.0.1", local_redis.free_port()) is False


def test_the_session_redis_answers(redis_url: str) -> None:
    host, port = local_redis.host_port(redis_url)

    assert local_redis.answers(host, port) is True
    assert local_redis.ensure(redis_url).startswith("redis already answers")


def test_ensure_starts_a_local_redis_when_none_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_redis, "REPO_ROOT", tmp_path)
    port = local_redis.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    try:
        message = local_redis.ensure(url)

        assert message.startswith("started redis-server")
        assert local_redis.answers("127.0.0.1", port)
        assert local_redis.ensure(url).startswith("redis already answers")
    finally:
        pidfile = tmp_path / "var" / f"redis-{port}" / "redis.pid"
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
