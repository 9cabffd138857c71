"""Print the fault matrix: every upstream fault against every surface, with its times.

What it measures
----------------
The matrix tests/test_fault_matrix.py asserts (tests/fault_matrix.py defines it): for each
fault on the fake ElevenLabs (or no upstream at all), the app on uvicorn in this process,
with a fresh database of a private redis-server and `VOICE_RESPONSE_TIMEOUT_MS` of
`BUDGET_MS`, and every surface driven at once as its client drives it: `POST /synthesize`,
the chunked stream, the WebSocket in json and in twilio frames, and a foreground bulk item.

Each cell: who spoke the first audio, the status (101: the WebSocket), the time to the
first audio / the total time in seconds, and SILENT if the audio decoded to no sound. The
row "none" is the baseline the faults are read against, measured in the same run.

How to run
----------
From the repository root, with the repo's requirements installed (redis-server too)::

    .venv/bin/python bench/faults.py

Nothing is hard-coded: every figure comes from the run.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "apps" / "api"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from bench.services import machine_lines, private_redis
from tests.asgi import served
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.fault_matrix import (
    BUDGET_MS,
    FAULTS,
    SURFACES,
    Cell,
    arrange,
    expected_speakers,
    run_fault,
    service_env,
)


async def run(redis_url: str, fake: FakeElevenLabs) -> list[list[Cell]]:
    rows = []
    for database, fault in enumerate(FAULTS, start=1):
        arrange(fake, fault)
        groups = service_env(fault, fake)
        url = redis_url.rsplit("/", 1)[0] + f"/{database}"
        settings = Settings(
            **groups,
            redis={"url": url, "cache_url": None},  # type: ignore[arg-type]
            monitoring={"webhook_url": None, "api_key": None},  # type: ignore[arg-type]
            analytics={"record_requests": False},  # type: ignore[arg-type]
        )
        async with served(settings) as base_url:
            rows.append(await run_fault(base_url, fault))
    return rows


def report(rows: list[list[Cell]]) -> None:
    print("# Fault matrix: who spoke, status, first audio / total seconds")
    print()
    for line in machine_lines():
        print(line)
    print(f"- VOICE_RESPONSE_TIMEOUT_MS={BUDGET_MS}; one fresh app and Redis database per fault")
    print()
    print("| fault | " + " | ".join(SURFACES) + " |")
    print("|---|" + "---|" * len(SURFACES))
    unexpected = []
    for fault, cells in zip(FAULTS, rows, strict=True):
        print(f"| {fault.name} | " + " | ".join(cell.row() for cell in cells) + " |")
        unexpected += [
            c
            for c in cells
            if not c.speech or c.provider not in expected_speakers(fault, c.surface)
        ]
    print()
    worst = max((c for cells in rows for c in cells), key=lambda c: c.first_audio_s or 1e9)
    print(
        f"Slowest first audio: {worst.first_audio_s:.2f} s ({worst.fault}, {worst.surface}); "
        f"silent answers: {sum(not c.speech for cells in rows for c in cells)}; "
        f"cells not as tests/fault_matrix.py expects: {len(unexpected)}."
    )


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp,
        FakeElevenLabs() as fake,
        private_redis(Path(tmp) / "redis") as redis_url,
    ):
        rows = asyncio.run(run(redis_url, fake))
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
