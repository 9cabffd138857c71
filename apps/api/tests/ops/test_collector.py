"""Full garbage collections on the API's schedule (app.ops.collector), in a fresh interpreter.

Each case runs in its own process: the collector changes the process's GC thresholds, which
the suite's own process must not inherit.
"""

import gc
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.asgi import app_client
from tests.conftest import SettingsFactory

# An unreachable cycle in the old generation, then enough surviving young objects that
# CPython's own rule would start a full collection; then the process goes quiet.
_SCRIPT = textwrap.dedent(
    """
    import asyncio, gc, json, sys, time, weakref
    from app.ops.collector import FullCollections

    mode = sys.argv[1]

    class Node:
        pass

    def old_cycle():
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        gc.collect()  # both survive it: they are in the old generation now
        return weakref.ref(a)

    async def main():
        quiet = False
        collector = FullCollections(
            lambda: quiet,
            quiet_every_s=0.2,
            max_interval_s=1.5 if mode == "overdue" else 60.0,
            check_every_s=0.05,
        )
        default = gc.get_threshold()
        started = time.monotonic()
        if mode != "control":
            collector.start()
        cycle = old_cycle()
        full_before = gc.get_stats()[2]["collections"]
        survivors = [[i] for i in range(300_000)]
        await asyncio.sleep(0.3)
        busy = {
            "cycle_alive": cycle() is not None,
            "full_collections": gc.get_stats()[2]["collections"] - full_before,
            "before_overdue": time.monotonic() - started < 1.5,
        }
        if mode == "quiet":
            quiet = True
        while cycle() is not None and time.monotonic() - started < 10:
            await asyncio.sleep(0.05)
        later = {"cycle_alive": cycle() is not None, "after_s": time.monotonic() - started}
        await collector.stop()
        print(json.dumps({
            "busy": busy,
            "later": later,
            "thresholds_restored": gc.get_threshold() == default,
            "kept": len(survivors),
        }))

    asyncio.run(main())
    """
)


def _run(mode: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_without_the_collector_cpython_runs_a_full_collection_under_the_same_load() -> None:
    # The control: the load below does make CPython collect the old cycle by itself.
    result = _run("control")
    assert result["busy"]["full_collections"] >= 1
    assert result["busy"]["cycle_alive"] is False


def test_no_full_collection_while_streams_are_open_then_one_when_quiet() -> None:
    result = _run("quiet")
    assert result["busy"]["cycle_alive"] is True
    assert result["busy"]["full_collections"] == 0
    assert result["later"]["cycle_alive"] is False
    assert result["thresholds_restored"] is True


def test_a_full_collection_runs_when_overdue_even_if_never_quiet() -> None:
    result = _run("overdue")
    assert result["busy"]["before_overdue"] is True, "the machine was too slow to tell"
    assert result["busy"]["cycle_alive"] is True
    assert result["later"]["cycle_alive"] is False
    assert result["later"]["after_s"] >= 1.5  # not before it was due
    assert result["thresholds_restored"] is True


async def test_the_api_takes_full_collections_over_while_it_runs(
    make_settings: SettingsFactory,
) -> None:
    before = gc.get_threshold()
    async with app_client(make_settings()) as client:
        during = gc.get_threshold()
        assert (await client.get("/health")).status_code == 200
    assert during[:2] == before[:2]
    assert during[2] > before[2]
    assert gc.get_threshold() == before
