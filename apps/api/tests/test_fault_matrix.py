"""The fault matrix: for every upstream fault, every surface answers with speech in time.

One app (real uvicorn, a fresh Redis database) per fault, so a circuit opened by one fault
does not decide the next; the surfaces of a fault are driven at once, as callers come. The
printed table is bench/faults.py's.
"""

import pytest

from tests.asgi import served
from tests.conftest import SettingsFactory
from tests.fakes.elevenlabs_server import FakeElevenLabs
from tests.fault_matrix import (
    BUDGET_MS,
    FAULTS,
    FIRST_AUDIO_MARGIN_S,
    TOTAL_LIMIT_S,
    Fault,
    arrange,
    expected_speakers,
    run_fault,
    service_env,
)

# Serial: its deadlines are the service's, not those of a machine shared with other tests.
pytestmark = [pytest.mark.integration, pytest.mark.serial]


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_every_surface_speaks_in_time_under(
    fault: Fault, make_settings: SettingsFactory, elevenlabs: FakeElevenLabs
) -> None:
    arrange(elevenlabs, fault)
    async with served(make_settings(**service_env(fault, elevenlabs))) as base_url:
        cells = await run_fault(base_url, fault)

    for cell in cells:
        where = f"{fault.name} / {cell.surface}: {cell}"
        assert cell.status in (200, 101), where
        assert cell.speech, where  # decodes, and is not silence
        assert cell.provider in expected_speakers(fault, cell.surface), where
        assert cell.first_audio_s is not None, where
        assert cell.first_audio_s <= BUDGET_MS / 1000 + FIRST_AUDIO_MARGIN_S, where
        assert cell.total_s <= TOTAL_LIMIT_S, where
