"""The desk pusher: turns call events into pops and call-state updates on each operator's topic.

A pop goes to `desk_topic(operator.id)` of the operator whose phone rings, and later
state changes go only to the operators that were rung for that call. Delivery is the
topic, so a desk never sees, and a browser never filters, another operator's calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk import live
from ami_bridge.events import CallEvent, CallEventKind
from callcard.bus import CALLS_TOPIC, Bus, desk_topic, until_stopped
from crm_core.cards import caller_card
from crm_core.db import make_reader, read
from crm_core.models import Operator
from crm_core.phones import caller_id_name, shown_number
from routing.campaigns.models import Campaign, DialAttempt

log = logging.getLogger(__name__)

Delivery = tuple[str, dict[str, Any]]
T = TypeVar("T")

_STATE_KINDS = {
    CallEventKind.RING_STOPPED,
    CallEventKind.ANSWERED,
    CallEventKind.ENDED,
    CallEventKind.ABANDONED,
    CallEventKind.TRANSFERRED,
}


MAX_CONCURRENT_LOOKUPS = 4  # card lookups in worker threads at once (PostgreSQL)
OPERATORS_REFRESH_SECONDS = 15.0  # how stale the interface -> operator map may get (deactivation, new interface)
STOP_GRACE_SECONDS = 5.0  # deliveries under way when stopping get this long to finish

_ACTIVE_OPERATORS = select(Operator.interface, Operator.id).where(Operator.active.is_(True))
_ACTIVE_OPERATOR = select(Operator.id).where(
    Operator.interface == bindparam("interface"), Operator.active.is_(True)
)
# A dialler call's Linkedid is its Originate's ChannelId (see routing.campaigns.models.DialAttempt).
_CAMPAIGN_CALL = (
    select(Campaign.id, Campaign.name, Campaign.script, DialAttempt.debt_id)
    .join(Campaign, DialAttempt.campaign_id == Campaign.id)
    .where(DialAttempt.channel_id == bindparam("linkedid"))
)


@dataclass
class _RungCall:
    """Who was rung for one call (interface -> operator id), the card they were shown and, for a
    dialler call, its campaign; `prefetch` builds both from the moment the caller joins a queue."""

    card: dict[str, Any] | None = None
    campaign: dict[str, Any] | None = None
    rung: dict[str, int] = field(default_factory=dict)
    prefetch: asyncio.Task[tuple[dict[str, Any], dict[str, Any] | None]] | None = None


class DeskPopper:
    """Consumes CALLS_TOPIC, publishes per-operator pops; remembers at most `max_calls` live calls."""

    def __init__(
        self, sessions: sessionmaker[Session], bus: Bus, region: str = "RU", max_calls: int = 2000
    ) -> None:
        self._reader = make_reader(sessions)  # it only reads
        self._reads_on_loop = self._reader.dialect.name == "sqlite"  # see _read
        self._bus = bus
        self._region = region
        self._max_calls = max_calls
        self._calls: OrderedDict[str, _RungCall] = OrderedDict()
        self._operators: dict[str, int] = {}  # active operators by interface, see _operator_id
        self._operators_loaded = -math.inf
        self._lookups = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)
        self._busy: dict[str, asyncio.Task[None]] = {}  # linkedid -> the task delivering its latest event

    async def run(self, stop: asyncio.Event) -> None:
        """Pop desks until `stop` is set; one bad event is logged and skipped, never fatal.

        A call whose pop waits for its card does not hold up other calls: each call's events are
        delivered in order by a chain of tasks, calls run side by side (see `_dispatch`).
        """
        sub = await self._bus.subscribe(CALLS_TOPIC)
        try:
            async for message in until_stopped(sub, stop):
                try:
                    event = CallEvent.from_dict(message)
                except Exception:
                    log.exception("desk popper: could not handle %r", message)
                    continue
                await self._dispatch(event)
                if event.kind is CallEventKind.RINGING:
                    await asyncio.sleep(0)  # the desk's writer sends this pop before the next event's card is built
        finally:
            if self._busy:
                await asyncio.wait(set(self._busy.values()), timeout=STOP_GRACE_SECONDS)
            for call in self._calls.values():
                _forget(call)
            await sub.close()
            self._reader.dispose()

    async def _dispatch(self, event: CallEvent) -> None:
        """Deliver at once when nothing of this call is pending and no database is read; otherwise
        in a task that first waits for the call's previous one, so a state never overtakes its pop."""
        previous = self._busy.get(event.linkedid)
        if previous is None and (event.kind is not CallEventKind.RINGING or self._ready(event)):
            await self._deliver(event, None)
            return
        task = asyncio.create_task(self._deliver(event, previous))
        self._busy[event.linkedid] = task
        task.add_done_callback(lambda done: self._forget_task(event.linkedid, done))

    def _forget_task(self, linkedid: str, task: asyncio.Task[None]) -> None:
        if self._busy.get(linkedid) is task:
            del self._busy[linkedid]

    async def _deliver(self, event: CallEvent, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            for topic, message in await self.handle(event):
                await live.remember(self._bus, topic, message)  # before publishing: see live.py
                await self._bus.publish(topic, message)
        except Exception:
            log.exception("desk popper: could not handle %r", event)

    async def handle(self, event: CallEvent) -> list[Delivery]:
        """The (topic, message) pairs one call event produces; only RINGING reads the database
        (OFFERED starts building the card, so that a caller who waits for a free agent pops at once)."""
        if event.kind is CallEventKind.RINGING:
            return await self._ringing(event)
        if event.kind is CallEventKind.OFFERED:
            self._prefetch(event)
            return []
        if event.kind in _STATE_KINDS:
            return self._state(event)
        return []

    def _ready(self, event: CallEvent) -> bool:
        """A ring that pops without reading the database: its card is built, its operator known."""
        call = self._calls.get(event.linkedid)
        return call is not None and call.card is not None and self._cached_operator(event.interface) is not None

    def _prefetch(self, event: CallEvent) -> None:
        """Build the caller's card (and campaign) once per call: on SQLite right now, since it runs
        on the loop anyway (see `_read`) and a task of its own only put two more turns of the loop
        between the card and its pop; elsewhere in the background."""
        call = self._remember(event.linkedid)
        if call.card is not None or call.prefetch is not None:
            return
        if self._reads_on_loop:
            call.card, call.campaign = self._card(event)
        else:
            call.prefetch = asyncio.create_task(self._card_off_loop(event))

    async def _card_off_loop(self, event: CallEvent) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return await self._read(self._card, event)

    async def _read(self, work: Callable[..., T], *args: Any) -> T:
        """`work(*args)`: on SQLite right here on the event loop, elsewhere in a worker thread.

        SQLite is a local file in WAL mode, where no writer blocks a reader, and a card is 0.1-0.5 ms
        of CPU wherever it runs; in a worker thread it also handed the GIL to and from the
        loop at every SQLite call, and the pop waited for those hand-offs (p99 17 ms for a 0.4 ms
        card; bench/RESULTS.md, session 4). A PostgreSQL read waits on the network: a thread.
        """
        if self._reads_on_loop:
            return work(*args)
        async with self._lookups:
            return await asyncio.to_thread(work, *args)

    async def _ringing(self, event: CallEvent) -> list[Delivery]:
        call = self._calls.get(event.linkedid)
        if call is not None and call.card is None and call.prefetch is not None:
            prefetch = call.prefetch
            await asyncio.wait({prefetch})
            if not prefetch.cancelled() and prefetch.exception() is None:  # else looked up below
                call.card, call.campaign = prefetch.result()
        known_card = call.card if call is not None else None
        campaign = call.campaign if call is not None else None
        operator_id = self._cached_operator(event.interface)
        if operator_id is None or known_card is None:
            operator_id, card, found = await self._read(self._lookup, event, known_card)
            campaign = campaign or found
        else:
            card = known_card
        if operator_id is None:
            log.info("desk popper: no active operator on %s for call %s", event.interface, event.linkedid)
            return []
        call = self._remember(event.linkedid)
        call.card = card
        call.campaign = campaign
        call.rung[event.interface] = operator_id
        message = {
            "type": "pop",
            "linkedid": event.linkedid,
            "queue": event.queue,
            "caller_num": event.caller_num,
            "caller_name": caller_id_name(event.caller_name, event.caller_num),
            "card": card,
            "at": event.at,
        }
        if campaign is not None:
            message["campaign"] = campaign
        return [(desk_topic(operator_id), message)]

    def _lookup(
        self, event: CallEvent, known_card: dict[str, Any] | None
    ) -> tuple[int | None, dict[str, Any], dict[str, Any] | None]:
        """Runs through `_read`: the rung operator, the caller's card and, for an outbound call
        the dialler placed, its campaign (both built once per call)."""
        operator_id = read(self._reader, lambda connection: self._operator_id(connection, event.interface))
        if operator_id is None:
            return None, {}, None
        if known_card is not None:
            return operator_id, known_card, None
        return operator_id, *self._card(event)

    def _card(self, event: CallEvent) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Runs through `_read`: the caller's card and, for an outbound call the dialler placed,
        its campaign; a failed lookup still gives a bare card, so the phone pops."""
        def lookup(connection: Connection) -> tuple[dict[str, Any], dict[str, Any] | None]:
            campaign = _campaign_call(connection, event.linkedid) if event.direction == "outbound" else None
            return caller_card(connection, event.caller_num, self._region), campaign

        try:
            return read(self._reader, lookup)
        except Exception:
            log.exception("desk popper: no card for caller %r", event.caller_num)
            return _bare_card(event.caller_num), None

    def _cached_operator(self, interface: str) -> int | None:
        """The operator on `interface` if the map is fresh and has it; None means ask `_operator_id`."""
        if time.monotonic() - self._operators_loaded > OPERATORS_REFRESH_SECONDS:
            return None
        return self._operators.get(interface)

    def _operator_id(self, connection: Connection, interface: str) -> int | None:
        """Active operator by interface from a map of all of them, reloaded every
        OPERATORS_REFRESH_SECONDS (operators change rarely); an interface the map lacks is asked
        for on its own, so a new operator pops at once."""
        now = time.monotonic()
        if now - self._operators_loaded > OPERATORS_REFRESH_SECONDS:
            self._operators = {iface: oid for iface, oid in connection.execute(_ACTIVE_OPERATORS)}
            self._operators_loaded = now
        operator_id = self._operators.get(interface)
        if operator_id is None:
            operator_id = connection.scalar(_ACTIVE_OPERATOR, {"interface": interface})
            if operator_id is not None:
                self._operators[interface] = operator_id
        return operator_id

    def _state(self, event: CallEvent) -> list[Delivery]:
        call = self._calls.get(event.linkedid)
        if event.kind is CallEventKind.ENDED:
            _forget(self._calls.pop(event.linkedid, None))
        if call is None:
            return []
        targets = call.rung
        if event.kind is CallEventKind.TRANSFERRED:
            call.rung = {}  # the call is the next queue's now; its card stays for their pop
        if event.kind is CallEventKind.RING_STOPPED and event.interface in call.rung:
            targets = {event.interface: call.rung[event.interface]}
        deliveries: list[Delivery] = []
        for interface, operator_id in targets.items():
            message = {
                "type": "call_state",
                "linkedid": event.linkedid,
                "state": event.kind.value,
                "outcome": event.outcome.value if event.outcome else None,
                "wait_seconds": event.wait_seconds,
                "talk_seconds": event.talk_seconds,
                "at": event.at,
                "mine": event.kind is not CallEventKind.ANSWERED or interface == event.interface,
            }
            deliveries.append((desk_topic(operator_id), message))
        return deliveries

    def _remember(self, linkedid: str) -> _RungCall:
        call = self._calls.get(linkedid)
        if call is None:
            call = self._calls[linkedid] = _RungCall()
            while len(self._calls) > self._max_calls:
                _forget(self._calls.popitem(last=False)[1])
        return call

    def live_calls(self) -> int:
        """How many calls are remembered (bounded by max_calls; ENDED forgets)."""
        return len(self._calls)


def _forget(call: _RungCall | None) -> None:
    """A call no longer needs the card being built for it."""
    if call is not None and call.prefetch is not None and not call.prefetch.done():
        call.prefetch.cancel()


def _campaign_call(connection: Connection, linkedid: str) -> dict[str, Any] | None:
    """The campaign of a call the dialler placed (its Linkedid is the attempt's ChannelId), else None."""
    row = connection.execute(_CAMPAIGN_CALL, {"linkedid": linkedid}).first()
    if row is None:
        return None
    return {"id": row.id, "name": row.name, "script": row.script, "debt_id": row.debt_id, "channel_id": linkedid}


def _bare_card(caller_raw: str) -> dict[str, Any]:
    """The card shape with no matches, when the CRM lookup failed: the phone still pops."""
    return {"caller": {"raw": caller_raw, "e164": None, "display": shown_number(caller_raw, None), "valid": False},
            "matches": []}
