"""Pacing: real time with a bounded lead, frames sent in bursts rather than one by one."""

import asyncio
import time

from app.streaming.pacing import Pacer

FRAME_S = 0.01


async def _send_frames(pacer: Pacer, count: int) -> list[tuple[float, float]]:
    """(send time since the first frame, lead after sending) for each frame."""
    sent: list[tuple[float, float]] = []
    start = time.monotonic()
    for _ in range(count):
        await pacer.wait_to_send(FRAME_S)
        elapsed = time.monotonic() - start
        sent.append((elapsed, pacer.sent_s - elapsed))
    return sent


async def test_the_lead_is_never_exceeded_and_never_runs_dry() -> None:
    pacer = Pacer(max_lead_s=0.1, quantum_s=0.04)

    sent = await _send_frames(pacer, 60)  # 0.6 s of audio

    leads = [lead for _, lead in sent]
    assert max(leads) <= 0.1 + 0.002  # within the lead (timer resolution aside)
    assert min(leads[10:]) >= 0.1 - 0.04 - FRAME_S - 0.02  # topped up before it empties
    assert sent[-1][0] >= 0.6 - 0.1 - 0.02  # real time: no faster than the audio, less lead


async def test_once_the_lead_is_full_frames_go_in_bursts_of_a_quantum() -> None:
    pacer = Pacer(max_lead_s=0.1, quantum_s=0.04)

    sent = await _send_frames(pacer, 60)

    wake_ups = 1 + sum(b - a > 0.005 for (a, _), (b, _) in zip(sent, sent[1:], strict=False))
    assert wake_ups <= 60 / 4 + 2  # about one per 40 ms of audio, not one per 10 ms frame


async def test_after_silence_playback_restarts_with_a_full_lead() -> None:
    pacer = Pacer(max_lead_s=0.1, quantum_s=0.04)
    await _send_frames(pacer, 5)
    await asyncio.sleep(0.08)  # everything sent has played

    burst = await _send_frames(pacer, 10)

    assert burst[-1][0] < 0.01  # 100 ms of audio goes at once: the listener's buffer was empty
