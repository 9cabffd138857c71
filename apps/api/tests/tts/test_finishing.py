"""Finishing segments (clean audio, duration, score) in the scoring process, and without one."""

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from app.audio.formats import OutputFormat, spec_of
from app.tts.finishing import SegmentFinisher, finish_segment, shared_finisher
from tests.fakes.synthetic_audio import render_audio
from tests.processes import running

TEXT = "The home at 1418 Birchwood Lane is listed at four hundred eighty-five thousand."


@pytest.fixture
def finisher() -> Iterator[SegmentFinisher]:
    finisher = SegmentFinisher(use_process=True)
    yield finisher
    finisher.close()


@pytest.mark.parametrize("fmt", [OutputFormat.ULAW_8000, OutputFormat.MP3_44100_128])
async def test_the_scoring_process_answers_what_this_process_would(
    finisher: SegmentFinisher, fmt: OutputFormat
) -> None:
    wire = spec_of(fmt)
    audio = render_audio(TEXT, fmt.value)
    # Once the process has answered, segments go to it.
    assert await finisher.worker_pid() != os.getpid()
    there = await finisher.finish(audio, TEXT, wire)

    assert there == finish_segment(audio, TEXT, wire)
    assert there.score > 0.5
    assert there.duration_ms > 1000


async def test_a_killed_scoring_process_loses_no_segment_and_is_replaced(
    finisher: SegmentFinisher,
) -> None:
    wire = spec_of(OutputFormat.ULAW_8000)
    audio = render_audio(TEXT, OutputFormat.ULAW_8000.value)
    first = await finisher.worker_pid()
    os.kill(first, signal.SIGKILL)
    # The pool learns of the death when its process's pipe closes; a call then fails
    # over, whichever comes first.
    finished = await asyncio.gather(*(finisher.finish(audio, TEXT, wire) for _ in range(4)))
    assert all(f == finish_segment(audio, TEXT, wire) for f in finished)
    second = await finisher.worker_pid()
    assert second not in (first, os.getpid())


def _report_worker_pid(answer: Connection) -> None:
    finisher = shared_finisher()
    answer.send((os.getpid(), asyncio.run(finisher.worker_pid())))


def test_in_a_daemonic_process_like_a_celery_child_segments_are_finished_in_a_thread() -> None:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_report_worker_pid, args=(sending,), daemon=True)
    child.start()
    try:
        assert receiving.poll(60)
        own_pid, worker_pid = receiving.recv()
    finally:
        child.join(10)
    assert own_pid == worker_pid == child.pid


def _hold_a_scoring_process(answer: Connection) -> None:
    finisher = SegmentFinisher(use_process=True)
    answer.send(asyncio.run(finisher.worker_pid()))
    time.sleep(60)  # until the test kills this process


def test_the_scoring_process_exits_when_its_api_process_is_killed() -> None:
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    api = context.Process(target=_hold_a_scoring_process, args=(sending,))
    api.start()
    try:
        assert receiving.poll(60)
        scorer = receiving.recv()
        assert running(scorer)
    finally:
        os.kill(api.pid or 0, signal.SIGKILL)
        api.join(10)
    for _ in range(50):
        if not running(scorer):
            break
        time.sleep(0.1)
    assert not running(scorer)
