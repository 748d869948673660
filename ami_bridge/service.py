"""The bridge service: AMI client -> CallTracker -> bus, with counters for /metrics.

The socket reader only parses, tracks and enqueues; one publisher task drains the queue
to the bus in order, so a slow bus never stalls the AMI session (Asterisk drops a
session whose socket blocks for more than 100 ms).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ami_bridge.client import AmiClient, AmiCommands
from ami_bridge.events import CallEvent
from ami_bridge.frames import AmiMessage
from ami_bridge.tracker import CallTracker
from callcard.bus import CALLS_TOPIC, Bus
from callcard.settings import Settings

log = logging.getLogger(__name__)

EventHook = Callable[[CallEvent], object]


@dataclass
class BridgeCounters:
    events_in: int = 0
    call_events_out: int = 0
    parse_errors: int = 0
    publish_errors: int = 0
    resyncs: int = 0


class CallNotLive(LookupError):
    """A command named a call the bridge does not see (ended, or never queued)."""


class Bridge:
    """Owns one AMI client and one tracker; publishes every CallEvent on CALLS_TOPIC."""

    def __init__(
        self,
        settings: Settings,
        bus: Bus,
        *,
        on_event: EventHook | None = None,
        clock: Callable[[], float] = time.time,
        min_backoff: float = 0.5,
    ) -> None:
        self.bus = bus
        self.on_event = on_event
        self.tracker = CallTracker(clock)
        self.client = AmiClient(
            settings,
            on_resync=self._on_resync,
            on_originate=self.tracker.expect_outbound,
            min_backoff=min_backoff,
        )
        self.client.register_event("*", self._on_ami_event)
        self._counters = BridgeCounters()
        self._outbox: asyncio.Queue[CallEvent] = asyncio.Queue()

    @property
    def commands(self) -> AmiCommands:
        """The narrow door for commands to Asterisk."""
        return self.client

    async def transfer_to_queue(self, linkedid: str, queue: str) -> None:
        """Blind-transfer the caller of a live call: Redirect their channel to `[queues] <queue>`.

        The tracker is told first (the Redirect reply comes before the events it causes), so
        the old queue's QueueCallerAbandon is read as a transfer; a refused Redirect undoes that.
        """
        channel = self.tracker.caller_channel(linkedid)
        if channel is None:
            raise CallNotLive(f"call {linkedid!r} is not live or has no caller in a queue")
        self.tracker.expect_redirect(linkedid)
        try:
            await self.client.redirect(channel, "queues", queue)
        except Exception:
            self.tracker.cancel_redirect(linkedid)
            raise

    @property
    def counters(self) -> BridgeCounters:
        self._counters.parse_errors = self.client.parse_errors
        return self._counters

    def _on_ami_event(self, msg: AmiMessage) -> None:
        self._counters.events_in += 1
        self._enqueue(self.tracker.feed(msg))

    def _on_resync(self, channels: list[AmiMessage], queues: list[AmiMessage]) -> None:
        self._counters.resyncs += 1
        events = self.tracker.resync(channels)
        log.info(
            "AMI resync: %d live channels, %d queue items, %d call events",
            len(channels),
            len(queues),
            len(events),
        )
        self._enqueue(events)

    def _enqueue(self, events: list[CallEvent]) -> None:
        for event in events:
            self._outbox.put_nowait(event)

    async def _publish_forever(self) -> None:
        while True:
            event = await self._outbox.get()
            await self._publish(event)

    async def _publish(self, event: CallEvent) -> None:
        try:
            await self.bus.publish(CALLS_TOPIC, event.to_dict())
            self._counters.call_events_out += 1
        except Exception:
            self._counters.publish_errors += 1
            log.exception("bridge: could not publish %s for call %s", event.kind, event.linkedid)
        if self.on_event is not None:
            try:
                result = self.on_event(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("bridge: on_event hook failed for %s", event.kind)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; events already tracked are still published."""
        publisher = asyncio.create_task(self._publish_forever())
        try:
            await self.client.run(stop)
        finally:
            publisher.cancel()
            while not self._outbox.empty():
                await self._publish(self._outbox.get_nowait())


async def run_bridge(
    settings: Settings, bus: Bus, stop: asyncio.Event, *, on_event: EventHook | None = None
) -> None:
    """Connect to Asterisk and publish call events on the bus until `stop` is set."""
    await Bridge(settings, bus, on_event=on_event).run(stop)
