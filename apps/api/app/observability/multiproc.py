"""PROMETHEUS_MULTIPROC_DIR: the folder where every process of the service keeps its metric values.

prometheus_client reads the variable when it is first imported, so `python -m app.serve` runs
`prepare_directory` before that. This module does not import prometheus_client at module level.
Files are named by process id, so the processes sharing a folder must share one host (one pid
namespace): a folder shared between containers would mix up their processes.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"

# prometheus_client's value files: <type>_<pid>.db, gauges as gauge_<mode>_<pid>.db.
_VALUE_FILE = re.compile(r"^(?:counter|histogram|summary|gauge_(?P<mode>[a-z]+))_(?P<pid>\d+)\.db$")


def prepare_directory(path: Path) -> Path:
    """Create `path`, export it as PROMETHEUS_MULTIPROC_DIR, clear what ended processes left.

    If no other live process writes there, this is a fresh start and every file goes, as the
    prometheus_client docs ask: otherwise a previous run's counts would be added to this one's.
    If another process is running (the API restarted next to a running worker), every count
    stays, so totals never go down. Only the live gauges of processes that ended are dropped.
    """
    path = path.absolute()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(path)
    me = os.getpid()
    others = {file: pid for file, pid, _ in _value_files(path) if pid != me}
    if any(_alive(pid) for pid in set(others.values())):
        sweep_ended_processes(path)
    else:
        for file in others:
            file.unlink(missing_ok=True)
    return path


def sweep_ended_processes(path: Path) -> None:
    """Drop the live gauges (slots in use, sessions open) of processes that have ended.

    A process manager's exit hook would call mark_process_dead. uvicorn has none (after a
    graceful shutdown it re-raises SIGTERM, so no code runs after `uvicorn.run`), and a killed
    or crashed process runs no hook at all, so every scrape calls it for the ones that ended.
    """
    from prometheus_client import multiprocess  # only once ENV is set (module docstring)

    for pid in {pid for _, pid, live in _value_files(path) if live}:
        if not _alive(pid):
            multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]


def forget_process(pid: int) -> None:
    """Remove the live gauges of `pid` (a process shutting down cleanly calls it for itself)."""
    from prometheus_client import multiprocess  # only once ENV is set (module docstring)

    if path := os.environ.get(ENV):
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def _value_files(path: Path) -> Iterator[tuple[Path, int, bool]]:
    """Each value file with the process it belongs to, and whether it holds live gauges."""
    for file in path.iterdir():
        if match := _VALUE_FILE.match(file.name):
            mode = match["mode"] or ""
            yield file, int(match["pid"]), mode.startswith("live")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
