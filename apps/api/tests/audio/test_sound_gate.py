"""The sound gate finds speech in the first audio of a stream, in every wire encoding."""

import pytest

from app.audio.formats import OutputFormat, spec_of
from app.audio.sound_gate import SoundGate
from tests.fakes.synthetic_audio import render_audio

TEXT = "The kitchen was remodeled last spring."


def _chunks(data: bytes, size: int = 1500) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize(
    "fmt", [OutputFormat.PCM_16000, OutputFormat.ULAW_8000, OutputFormat.MP3_44100_128]
)
def test_speech_opens_the_gate_early_and_silence_exhausts_it(fmt: OutputFormat) -> None:
    spec = spec_of(fmt)
    speech_gate, silent_gate = SoundGate(spec, 0.5), SoundGate(spec, 0.5)

    opened = next(
        i
        for i, chunk in enumerate(_chunks(render_audio(TEXT, fmt.value)))
        if speech_gate.sound_in(chunk)
    )
    silent = [
        silent_gate.sound_in(chunk) for chunk in _chunks(render_audio(TEXT, fmt.value, silent=True))
    ]

    assert opened <= 3
    assert speech_gate.heard_s < 0.3  # the speech starts within the first chunks
    assert not any(silent)
    assert silent_gate.exhausted
