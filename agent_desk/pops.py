"""The desk pusher: turns call events into pops and call-state updates on each operator's topic.

A pop goes to `desk_topic(operator.id)` of the operator whose phone rings, and later
state changes go only to the operators that were rung for that call. Delivery is the
topic, so a desk never sees, and a browser never filters, another operator's calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk import live
from ami_bridge.events import CallEvent, CallEventKind
from callcard.bus import CALLS_TOPIC, Bus, desk_topic
from crm_core.cards import caller_card
from crm_core.models import Operator

log = logging.getLogger(__name__)

Delivery = tuple[str, dict[str, Any]]

_STATE_KINDS = {
    CallEventKind.RING_STOPPED,
    CallEventKind.ANSWERED,
    CallEventKind.ENDED,
    CallEventKind.ABANDONED,
    CallEventKind.TRANSFERRED,
}


@dataclass
class _RungCall:
    """Who was rung for one call (interface -> operator id) and the card they were shown."""

    card: dict[str, Any] | None = None
    rung: dict[str, int] = field(default_factory=dict)


class DeskPopper:
    """Consumes CALLS_TOPIC, publishes per-operator pops; remembers at most `max_calls` live calls."""

    def __init__(
        self, sessions: sessionmaker[Session], bus: Bus, region: str = "RU", max_calls: int = 2000
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._region = region
        self._max_calls = max_calls
        self._calls: OrderedDict[str, _RungCall] = OrderedDict()

    async def run(self, stop: asyncio.Event) -> None:
        """Pop desks until `stop` is set; one bad event is logged and skipped, never fatal."""
        sub = await self._bus.subscribe(CALLS_TOPIC)
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                getting = asyncio.create_task(sub.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    return
                try:
                    event = CallEvent.from_dict(getting.result())
                    for topic, message in await self.handle(event):
                        await live.remember(self._bus, topic, message)  # before publishing: see live.py
                        await self._bus.publish(topic, message)
                except Exception:
                    log.exception("desk popper: could not handle %r", getting.result())
        finally:
            stopping.cancel()
            await sub.close()

    async def handle(self, event: CallEvent) -> list[Delivery]:
        """The (topic, message) pairs one call event produces; only RINGING reads the database."""
        if event.kind is CallEventKind.RINGING:
            return await self._ringing(event)
        if event.kind in _STATE_KINDS:
            return self._state(event)
        return []

    async def _ringing(self, event: CallEvent) -> list[Delivery]:
        call = self._calls.get(event.linkedid)
        known_card = call.card if call is not None else None
        operator_id, card = await asyncio.to_thread(self._lookup, event, known_card)
        if operator_id is None:
            log.info("desk popper: no active operator on %s for call %s", event.interface, event.linkedid)
            return []
        call = self._remember(event.linkedid)
        call.card = card
        call.rung[event.interface] = operator_id
        message = {
            "type": "pop",
            "linkedid": event.linkedid,
            "queue": event.queue,
            "caller_num": event.caller_num,
            "caller_name": event.caller_name,
            "card": card,
            "at": event.at,
        }
        return [(desk_topic(operator_id), message)]

    def _lookup(self, event: CallEvent, known_card: dict[str, Any] | None) -> tuple[int | None, dict[str, Any]]:
        """Runs in a worker thread: the rung operator and the caller's card (built once per call)."""
        with self._sessions() as session:
            operator_id = session.scalar(
                select(Operator.id).where(Operator.interface == event.interface, Operator.active.is_(True))
            )
            if operator_id is None:
                return None, {}
            if known_card is not None:
                return operator_id, known_card
            try:
                return operator_id, caller_card(session, event.caller_num, self._region)
            except Exception:
                log.exception("desk popper: no card for caller %r", event.caller_num)
                return operator_id, _bare_card(event.caller_num)

    def _state(self, event: CallEvent) -> list[Delivery]:
        call = self._calls.get(event.linkedid)
        if event.kind is CallEventKind.ENDED:
            self._calls.pop(event.linkedid, None)
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
                self._calls.popitem(last=False)
        return call

    def live_calls(self) -> int:
        """How many calls are remembered (bounded by max_calls; ENDED forgets)."""
        return len(self._calls)


def _bare_card(caller_raw: str) -> dict[str, Any]:
    """The card shape with no matches, when the CRM lookup failed: the phone still pops."""
    return {"caller": {"raw": caller_raw, "e164": None, "display": caller_raw, "valid": False}, "matches": []}
