"""The bridge service: AMI client -> CallTracker + QueueTracker -> bus, with counters for /metrics.

The socket reader only parses, tracks and enqueues; one publisher task drains the queue
to the bus in order, so a slow bus never stalls the AMI session (Asterisk drops a
session whose socket blocks for more than 100 ms).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ami_bridge.client import AmiClient, AmiCommands
from ami_bridge.events import CallEvent, QueueEvent
from ami_bridge.frames import AmiMessage
from ami_bridge.leader import NotLeading, takeover_endings
from ami_bridge.queue_tracker import QUEUE_EVENTS, QueueTracker
from ami_bridge.tracker import CALL_EVENTS, CallTracker, normalize_interface
from callcard.bus import CALLS_TOPIC, QUEUES_TOPIC, Bus
from callcard.settings import Settings

log = logging.getLogger(__name__)

EventHook = Callable[[CallEvent], object]
# Writes a batch of CallEvents durably before they are published (the leader's stream), or raises
# NotLeading when this bridge may no longer write.
Journal = Callable[[list[CallEvent]], Awaitable[None]]
PUBLISH_BATCH = 200  # events taken off the outbox per journal write
# What the bridge asks Asterisk for: the trackers' events and the session's own.
BRIDGE_EVENTS = CALL_EVENTS | QUEUE_EVENTS | {"FullyBooted", "Shutdown"}


@dataclass
class BridgeCounters:
    events_in: int = 0
    call_events_out: int = 0
    queue_events_out: int = 0
    parse_errors: int = 0
    publish_errors: int = 0
    resyncs: int = 0


class CallNotLive(LookupError):
    """A command named a call the bridge does not see (ended, or never queued)."""


class CallNotAnswered(CallNotLive):
    """An attended transfer needs the operator's leg in the call, and nobody has answered yet."""


class Bridge:
    """Owns one AMI client and the trackers; publishes CallEvents on CALLS_TOPIC and QueueEvents
    on QUEUES_TOPIC, through one outbox so both keep the AMI order."""

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
        self._clock = clock
        self.tracker = CallTracker(clock)
        self.queue_tracker = QueueTracker(clock)
        self.journal: Journal | None = None
        self._open_calls: dict[str, CallEvent] = {}  # at takeover: calls the last leader left open
        self._open_calls_end: float | None = None  # when they ended, if not at the first resync
        self.client = AmiClient(
            settings,
            on_resync=self._on_resync,
            on_originate=self.tracker.expect_outbound,
            event_filter=BRIDGE_EVENTS,
            min_backoff=min_backoff,
        )
        self.client.register_event("*", self._on_ami_event)
        self._counters = BridgeCounters()
        self._outbox: asyncio.Queue[CallEvent | QueueEvent | None] = asyncio.Queue()  # None: stop

    def begin_term(self, journal: Journal, open_calls: dict[str, CallEvent]) -> None:
        """Lead anew (ami_bridge.leader): fresh trackers, since another bridge may have led meanwhile
        and this one's picture is stale; the first resync ends the `open_calls` Asterisk no longer has."""
        self.tracker = CallTracker(self._clock)
        self.queue_tracker = QueueTracker(self._clock)
        self.client.on_originate = self.tracker.expect_outbound
        self._outbox = asyncio.Queue()
        self.journal = journal
        self._open_calls = open_calls

    def resume(self, open_calls: dict[str, CallEvent], last_alive: float | None) -> None:
        """Calls a previous run left open (a bridge with no leader lock reads them from the call
        log): the first resync ends those Asterisk no longer has, as after a takeover, but at
        `last_alive` (when that run last logged anything): the time it was down is nobody's talk."""
        self._open_calls = dict(open_calls)
        self._open_calls_end = last_alive

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
        self.queue_tracker.expect_redirect(linkedid)
        try:
            await self.client.redirect(channel, "queues", queue)
        except Exception:
            self.tracker.cancel_redirect(linkedid)
            self.queue_tracker.cancel_redirect(linkedid)
            raise

    async def transfer_to_interface(self, linkedid: str, interface: str, context: str = "transfer") -> None:
        """Blind-transfer the caller of a live call to a colleague's phone: Setvar TRANSFER_TO on
        the caller's channel, then Redirect it to `[transfer] colleague`, which Dials ${TRANSFER_TO}
        (and back to Queue(${QUEUE}) when nobody answers). Told to the tracker as for a queue."""
        channel = self.tracker.caller_channel(linkedid)
        if channel is None:
            raise CallNotLive(f"call {linkedid!r} is not live or has no caller in a queue")
        self.tracker.expect_redirect(linkedid)
        self.queue_tracker.expect_redirect(linkedid)
        try:
            await self.client.send_action({"Action": "Setvar", "Channel": channel, "Variable": "TRANSFER_TO",
                                           "Value": interface})
            await self.client.redirect(channel, context, "colleague")
        except Exception:
            self.tracker.cancel_redirect(linkedid)
            self.queue_tracker.cancel_redirect(linkedid)
            raise

    async def attended_transfer(self, linkedid: str, interface: str) -> None:
        """Consult first: AMI Atxfer on the operator's own leg in the call dials the colleague's
        `Local/<exten>@<context>` (a `PJSIP/<exten>` phone is dialled as `<exten>@agents`). Asterisk
        holds the caller; the operator hanging up hands the caller over (AttendedTransfer), an
        unanswered colleague gives the caller back. The tracker reads all of it from the events."""
        channel = self.tracker.agent_channel(linkedid)
        if channel is None:
            raise CallNotAnswered(f"call {linkedid!r} has no operator on the line to consult from")
        target = normalize_interface(interface).split("/", 1)[-1]
        exten, _, context = target.partition("@")
        await self.client.send_action(
            {"Action": "Atxfer", "Channel": channel, "Exten": exten, "Context": context or "agents"}
        )

    async def operator_on_line(self, linkedid: str) -> bool:
        """Whether an operator talks to the caller now (a call still ringing cannot be handed over);
        async as every door is: the web app may ask it of a bridge in another process."""
        return self.tracker.agent_channel(linkedid) is not None

    async def on_phone(self, interface: str) -> bool:
        """Whether that phone rings or talks in a live call now (a transfer to it would find it busy)."""
        return self.tracker.on_phone(interface)

    async def spy(self, supervisor_interface: str, target: str, options: str) -> str:
        """Listen, whisper or barge: Originate the supervisor's phone into ChanSpy(`target`,`options`).
        The tracker is told first, so the supervisor's legs are never taken for a call."""
        channel_id = f"callcard-spy-{uuid.uuid4().hex}"
        self.tracker.expect_spy(channel_id)
        return await self.client.originate(
            supervisor_interface, application="ChanSpy", data=f"{target},{options}", channel_id=channel_id
        )

    async def queue_summary(self) -> list[AmiMessage]:
        """Asterisk's QueueSummary of every queue, as it is now (routing's live load)."""
        return await self.client.list_action({"Action": "QueueSummary"})

    @property
    def counters(self) -> BridgeCounters:
        self._counters.parse_errors = self.client.parse_errors
        return self._counters

    def _on_ami_event(self, msg: AmiMessage) -> None:
        self._counters.events_in += 1
        self._enqueue(self.tracker.feed(msg))
        self._enqueue(self.queue_tracker.feed(msg))

    def _on_resync(self, channels: list[AmiMessage], queues: list[AmiMessage]) -> None:
        self._counters.resyncs += 1
        events = self.tracker.resync(channels)
        if self._open_calls:
            ended_at = self._open_calls_end if self._open_calls_end is not None else self._clock()
            events += takeover_endings(self._open_calls, set(self.tracker.active_calls), ended_at)
            self._open_calls, self._open_calls_end = {}, None
        log.info(
            "AMI resync: %d live channels, %d queue items, %d call events",
            len(channels),
            len(queues),
            len(events),
        )
        self._enqueue(events)
        self._enqueue(self.queue_tracker.resync(queues, channels))

    def _enqueue(self, events: list[CallEvent] | list[QueueEvent]) -> None:
        for event in events:
            self._outbox.put_nowait(event)

    async def _publish_forever(self) -> None:
        """Publish in order until the end mark (None) that `run` queues when it stops."""
        while True:
            item = await self._outbox.get()
            batch: list[CallEvent | QueueEvent] = []
            while item is not None:
                batch.append(item)
                if len(batch) == PUBLISH_BATCH or self._outbox.empty():
                    break
                item = self._outbox.get_nowait()
            if batch:
                await self._publish_batch(batch)
            if item is None:
                return

    async def _publish_batch(self, batch: list[CallEvent | QueueEvent]) -> None:
        """Journal first (it waits out a Redis outage), then publish; a deposed bridge publishes nothing."""
        if self.journal is not None:
            calls = [e for e in batch if isinstance(e, CallEvent)]
            try:
                if calls:
                    await self.journal(calls)
            except NotLeading:
                log.warning("bridge: no longer leading; %d events left to the next leader", len(batch))
                return
            except Exception:  # a fault in the journal must not stop the publisher for good
                self._counters.publish_errors += len(batch)
                log.exception("bridge: %d events could not be journalled; dropped", len(batch))
                return
        for event in batch:
            await self._publish(event)

    async def _publish(self, event: CallEvent | QueueEvent) -> None:
        if isinstance(event, QueueEvent):
            await self._publish_queue_event(event)
            return
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

    async def _publish_queue_event(self, event: QueueEvent) -> None:
        try:
            await self.bus.publish(QUEUES_TOPIC, event.to_dict())
            self._counters.queue_events_out += 1
        except Exception:
            self._counters.publish_errors += 1
            log.exception("bridge: could not publish queue event %s", event.kind)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; events already tracked are still published."""
        publisher = asyncio.create_task(self._publish_forever())
        try:
            await self.client.run(stop)
        finally:
            self._outbox.put_nowait(None)
            await publisher


async def run_bridge(
    settings: Settings, bus: Bus, stop: asyncio.Event, *, on_event: EventHook | None = None
) -> None:
    """Connect to Asterisk and publish call events on the bus until `stop` is set."""
    await Bridge(settings, bus, on_event=on_event).run(stop)
