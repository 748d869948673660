"""The bridge's command door for other processes: the same methods, over the bus.

The bridge process serves `bridge_methods` on BRIDGE_COMMANDS_TOPIC (`callcard.commands`);
a web worker, the IVR or the dialler holds a `RemoteBridge`, which is a Dialer, a Transferrer,
a SupervisorDoor and a queue-summary source like the in-process bridge is. Asterisk's errors
arrive as the same exception classes; a bridge that does not answer within the timeout is an
`AmiTimeout`, so every route answers 503 "PBX unavailable" as it does for a silent Asterisk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ami_bridge.client import AmiDisconnected, AmiError, AmiLoginFailed, AmiTimeout
from ami_bridge.frames import AmiMessage
from ami_bridge.service import Bridge, CallNotAnswered, CallNotLive
from callcard.bus import Bus
from callcard.commands import CommandClient, serve_commands

BRIDGE_COMMANDS_TOPIC = "bridge.commands"
COMMAND_MARGIN = 2.0  # seconds a remote command may take beyond the AMI action timeout (bus round trips)
ERRORS = {cls.__name__: cls for cls in (AmiError, AmiTimeout, AmiLoginFailed, AmiDisconnected, CallNotLive,
                                        CallNotAnswered, ValueError)}

ClickToCall = Callable[[str, str], Awaitable[str]]


def bridge_methods(bridge: Bridge, click_to_call: ClickToCall) -> dict[str, Callable[..., Any]]:
    """What other processes may ask of the bridge: its doors and the AmiCommands, nothing else."""
    commands = bridge.commands

    async def queue_summary() -> list[list[tuple[str, str]]]:
        return [msg.headers for msg in await bridge.queue_summary()]

    return {
        "click_to_call": click_to_call,
        "transfer_to_queue": bridge.transfer_to_queue,
        "transfer_to_interface": bridge.transfer_to_interface,
        "attended_transfer": bridge.attended_transfer,
        "operator_on_line": bridge.operator_on_line,
        "on_phone": bridge.on_phone,
        "spy": bridge.spy,
        "queue_summary": queue_summary,
        "originate": commands.originate,
        "redirect": commands.redirect,
        "hangup": commands.hangup,
        "queue_pause": commands.queue_pause,
        "queue_add": commands.queue_add,
        "queue_remove": commands.queue_remove,
    }


async def serve_bridge_commands(bridge: Bridge, click_to_call: ClickToCall, bus: Bus, stop: asyncio.Event) -> None:
    await serve_commands(bus, BRIDGE_COMMANDS_TOPIC, bridge_methods(bridge, click_to_call), stop, ERRORS)


class RemoteCommands:
    """AmiCommands sent to the bridge process."""

    def __init__(self, client: CommandClient) -> None:
        self._client = client

    async def originate(self, channel: str, *, variables: Mapping[str, str] | None = None, **options: Any) -> str:
        if variables is not None:
            options["variables"] = dict(variables)
        return str(await self._client.call("originate", channel, **options))

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None:
        await self._client.call("redirect", channel, context, exten, priority)

    async def hangup(self, channel: str) -> None:
        await self._client.call("hangup", channel)

    async def queue_pause(self, interface: str, paused: bool, queue: str | None = None, reason: str = "") -> None:
        await self._client.call("queue_pause", interface, paused, queue, reason)

    async def queue_add(self, queue: str, interface: str, **options: Any) -> None:
        await self._client.call("queue_add", queue, interface, **options)

    async def queue_remove(self, queue: str, interface: str) -> None:
        await self._client.call("queue_remove", queue, interface)


class RemoteBridge:
    """The bridge as seen from a process without it; `close()` when done."""

    def __init__(self, bus: Bus, timeout: float) -> None:
        self._client = CommandClient(bus, BRIDGE_COMMANDS_TOPIC, timeout=timeout, errors=ERRORS, fallback=AmiError,
                                     timeout_error=AmiTimeout)
        self._commands = RemoteCommands(self._client)

    @property
    def commands(self) -> RemoteCommands:
        return self._commands

    async def click_to_call(self, operator_interface: str, number_e164: str) -> str:
        return str(await self._client.call("click_to_call", operator_interface, number_e164))

    async def transfer_to_queue(self, linkedid: str, queue: str) -> None:
        await self._client.call("transfer_to_queue", linkedid, queue)

    async def transfer_to_interface(self, linkedid: str, interface: str) -> None:
        await self._client.call("transfer_to_interface", linkedid, interface)

    async def attended_transfer(self, linkedid: str, interface: str) -> None:
        await self._client.call("attended_transfer", linkedid, interface)

    async def operator_on_line(self, linkedid: str) -> bool:
        return bool(await self._client.call("operator_on_line", linkedid))

    async def on_phone(self, interface: str) -> bool:
        return bool(await self._client.call("on_phone", interface))

    async def spy(self, supervisor_interface: str, target: str, options: str) -> str:
        return str(await self._client.call("spy", supervisor_interface, target, options))

    async def queue_summary(self) -> list[AmiMessage]:
        return [AmiMessage([(str(n), str(v)) for n, v in headers]) for headers in
                await self._client.call("queue_summary")]

    async def close(self) -> None:
        await self._client.close()
