"""The simulator's FastAGI client: connects to the IVR like Asterisk's AGI(agi://...) does.

Sends the environment, answers each command through `Pbx.agi_command` (all logic and timing
are there), waits the simulated time the command takes, then hands the call back to the
dialplan (`Pbx.agi_done`) when the IVR closes the socket, or at once if nobody listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from callcard.pbx_sim.agi import AgiLeg, AgiStep
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import Pbx

log = logging.getLogger(__name__)

Apply = Callable[[Callable[[float], list[Message]]], None]


async def drive_agi(pbx: Pbx, apply: Apply, now: Callable[[], float], time_scale: float,
                    address: tuple[str, int], linkedid: str, leg: AgiLeg) -> None:
    """One AGI() run of the call `linkedid`, until the IVR closes the connection."""
    status = "SUCCESS"
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await asyncio.open_connection(*address)
        call = pbx.calls.get(linkedid)
        if call is None:
            return
        writer.write(leg.environment(call.inner))
        while True:
            raw = await reader.readline()
            if not raw.endswith(b"\n"):
                return
            command = raw.decode("utf-8", "replace").strip()
            if command:
                writer.write(await _run(pbx, apply, now, time_scale, linkedid, leg, command))
    except OSError as exc:
        status = "FAILURE"
        log.warning("pbx-sim: FastAGI %s:%s for call %s: %s", *address, linkedid, exc)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        apply(lambda t: pbx.agi_done(t, linkedid, leg, status))


async def _run(pbx: Pbx, apply: Apply, now: Callable[[], float], time_scale: float, linkedid: str,
               leg: AgiLeg, command: str) -> bytes:
    """AGIExecStart now, the reply and AGIExecEnd when the command is over in simulated time."""
    steps: list[AgiStep] = []

    def begin(t: float) -> list[Message]:
        steps.append(pbx.agi_command(t, linkedid, leg, command))
        return steps[0].start_events

    apply(begin)
    step = steps[0]
    await asyncio.sleep(max(0.0, (step.at - now()) / time_scale))
    apply(lambda t: pbx.agi_finish(t, linkedid, step))
    lines = list(step.reply)
    call = pbx.calls.get(linkedid)
    left = call is None or call.agi is not leg  # hung up, or taken out of AGI() by a Redirect
    if left and not leg.hangup_sent:  # Asterisk tells a FastAGI script at once
        leg.hangup_sent = True
        lines.append("HANGUP")
    return "".join(f"{line}\n" for line in lines).encode()
