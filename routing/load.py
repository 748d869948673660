"""Live queue load for routing: what Asterisk's QueueSummary says right now, per queue.

Asked once per routed call through the bridge's AMI session, so overflow judges the figures
of this very moment (agents logged in, callers waiting, longest wait) with no counters of our
own to drift. When the PBX cannot answer, routing gets no figures and overflow stays quiet
rather than sending every caller to a callback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from ami_bridge.client import AmiDisconnected, AmiError
from ami_bridge.frames import AmiMessage
from routing.rules import QueueLoad

log = logging.getLogger(__name__)

SummarySource = Callable[[], Awaitable[list[AmiMessage]]]


def _int(msg: AmiMessage, header: str) -> int:
    value = msg.get(header)
    return int(value) if value.isdigit() else 0


def queue_loads(items: Iterable[AmiMessage]) -> dict[str, QueueLoad]:
    """QueueSummary items -> QueueLoad by queue name."""
    return {
        msg.get("Queue"): QueueLoad(_int(msg, "LoggedIn"), _int(msg, "Callers"), _int(msg, "LongestHoldTime"))
        for msg in items
        if msg.event == "QueueSummary" and msg.get("Queue")
    }


class LiveQueueLoad:
    """Callable the IVR awaits per call: the queues' load now, or {} when the PBX does not answer."""

    def __init__(self, source: SummarySource) -> None:
        self._source = source

    async def __call__(self) -> dict[str, QueueLoad]:
        try:
            return queue_loads(await self._source())
        except (AmiError, AmiDisconnected, OSError) as exc:
            log.warning("routing: no queue figures from the PBX (%s); overflow is not judged", exc)
            return {}
