"""Resident memory handed back after a burst: glibc's malloc_trim, run by the API's lifespan."""

import asyncio
import json
import subprocess
import sys
import textwrap

from app.ops import memory
from tests.asgi import app_client
from tests.conftest import SettingsFactory

# A burst's leftovers: freed blocks below malloc's mmap threshold stay resident, pinned by a
# block allocated after them, until malloc_trim hands their pages back.
_BURST = textwrap.dedent(
    """
    import json
    from app.ops import memory

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 2**20

    base = rss_mib()
    blocks = [bytes(100_000) + bytes([i % 256]) for i in range(400)]  # ~40 MB, 100 kB each
    pin = bytes(100_000) + b"pin"
    del blocks
    freed = rss_mib()
    trimmed = memory.trim()
    after = rss_mib()
    print(json.dumps({"base": base, "freed": freed, "after": after, "trimmed": trimmed}))
    """
)


def test_trim_returns_a_bursts_freed_heap_to_the_kernel() -> None:
    run = subprocess.run(
        [sys.executable, "-c", _BURST], capture_output=True, text=True, check=True, timeout=60
    )
    figures = json.loads(run.stdout)

    assert figures["freed"] - figures["base"] > 30  # freed, yet still resident
    assert figures["trimmed"] is True
    assert figures["freed"] - figures["after"] > 30  # back to the kernel


def test_arenas_can_be_limited_on_this_glibc() -> None:
    assert memory.limit_arenas(2) is True


async def test_the_api_trims_in_the_background_while_it_runs(
    make_settings: SettingsFactory,
) -> None:
    async with app_client(make_settings()):
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert "malloc-trim" in names
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert "malloc-trim" not in names
