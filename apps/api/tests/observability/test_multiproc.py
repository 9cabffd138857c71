"""The multiprocess directory: a fresh start clears it, a running process's counts stay."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.observability import multiproc


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait()


@pytest.fixture(autouse=True)
def _keep_the_sessions_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    # prepare_directory exports its folder; the session's is put back after each test.
    monkeypatch.setenv(multiproc.ENV, os.environ.get(multiproc.ENV, ""))


def _files(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / name).write_bytes(b"")


def _names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def test_a_fresh_start_removes_every_value_file_but_its_own(tmp_path: Path, dead_pid: int) -> None:
    me = os.getpid()
    _files(
        tmp_path,
        f"counter_{dead_pid}.db",
        f"gauge_livesum_{dead_pid}.db",
        f"histogram_{me}.db",
        "notes.txt",
    )

    prepared = multiproc.prepare_directory(tmp_path)

    assert prepared == tmp_path
    assert os.environ[multiproc.ENV] == str(tmp_path)
    assert _names(tmp_path) == {f"histogram_{me}.db", "notes.txt"}


def test_next_to_a_running_process_counts_stay_and_dead_live_gauges_go(
    tmp_path: Path, dead_pid: int, live_pid: int
) -> None:
    _files(
        tmp_path,
        f"counter_{live_pid}.db",
        f"gauge_livesum_{live_pid}.db",
        f"counter_{dead_pid}.db",
        f"histogram_{dead_pid}.db",
        f"gauge_livesum_{dead_pid}.db",
        f"gauge_max_{dead_pid}.db",
    )

    multiproc.prepare_directory(tmp_path)

    assert _names(tmp_path) == {
        f"counter_{live_pid}.db",
        f"gauge_livesum_{live_pid}.db",
        f"counter_{dead_pid}.db",
        f"histogram_{dead_pid}.db",
        f"gauge_max_{dead_pid}.db",
    }


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"

    multiproc.prepare_directory(directory)

    assert directory.is_dir()


_CHILD_CACHE_SCRIPT = """
import sys
from pathlib import Path
from app.observability import metrics

lookups = metrics.ChildCache(metrics.CACHE_LOOKUPS)
before = lookups("hit")
before.inc()  # in memory: the directory is not chosen yet
metrics.prepare_multiprocess(Path(sys.argv[1]))
after = lookups("hit")
after.inc()
print(after is not before, after is lookups("hit"))
print(metrics.exposition().decode())
"""


def test_a_child_cache_forgets_the_children_made_before_the_directory_was_chosen(
    tmp_path: Path,
) -> None:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD_CACHE_SCRIPT, str(tmp_path / "metrics")],
        cwd=Path(__file__).resolve().parents[2],
        env={k: v for k, v in os.environ.items() if k != multiproc.ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    identities, *exposition = run.stdout.splitlines()
    assert identities.split() == ["True", "True"]  # made again after the switch, then kept
    assert 'seiketsu_voice_cache_lookups_total{outcome="hit"} 1.0' in exposition
