"""The simulator's MixMonitor: an answered call leaves a WAV file where Asterisk would put it.

Asterisk's `wav` format is 16-bit signed linear PCM, 8 kHz, mono; so is this. The sound is two
voices taking turns (a low and a higher tone, a pause between), so a supervisor who plays a demo
call hears something the length of the talk.
"""

from __future__ import annotations

import math
import wave
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from callcard.pbx_sim.model import Recording
from crm_core.recordings import relative_path

RATE = 8000


def _turn(freq: float, seconds: float) -> bytes:
    """A tone fading in and out over `seconds`, then a quarter-second pause."""
    n = int(RATE * seconds)
    samples = bytearray()
    for i in range(n):
        envelope = math.sin(math.pi * i / n)
        samples += int(6000 * envelope * math.sin(2 * math.pi * freq * i / RATE)).to_bytes(2, "little", signed=True)
    return bytes(samples) + bytes(2 * RATE // 4)


@cache
def _conversation() -> bytes:
    """2.5 s: the caller, then the operator; made on the first recording, not when the simulator loads."""
    return _turn(220.0, 1.25) + _turn(330.0, 0.75)


def write(root: Path, recording: Recording) -> Path:
    """Write the call's file under `root` (folders made as needed) and return its path."""
    path = root / relative_path(recording.linkedid, datetime.fromtimestamp(recording.started, UTC))
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = int(recording.seconds * RATE) * 2
    conversation = _conversation()
    repeats, rest = divmod(frames, len(conversation))
    partial = path.with_suffix(".part")  # the app never sees half a file
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for _ in range(repeats):
            out.writeframesraw(conversation)
        out.writeframes(conversation[:rest])
    partial.replace(path)
    return path
