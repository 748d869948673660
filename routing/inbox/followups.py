"""Follow-up rules: a missed or abandoned call from a number becomes a callback task (the client's
when one client has the number; without a client for a caller the CRM does not know or a shared
number; none for a withheld number, nor for a call that ended in the IVR), and overdue requests
are escalated to the head of their department's desk, their count to the department's desks.

The follow-up consumer reads CALLS_TOPIC like the call logger and is idempotent by Linkedid
(one callback per call however often ENDED is replayed). The escalator wakes up every
`every` seconds; both run the database work off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import CALLS_TOPIC, Bus, desk_topic, until_stopped
from callcard.waits import wait_any
from crm_core.call_log import ENDED_IN_IVR
from crm_core.cards import clients_for_number
from crm_core.models import Call, Department
from crm_core.phones import try_normalize
from routing.inbox import service

log = logging.getLogger(__name__)

FOLLOW_UP_OUTCOMES = {Outcome.MISSED: "пропущенный звонок", Outcome.ABANDONED: "брошенный звонок"}


class FollowUps:
    """Turns missed and abandoned inbound calls into callback requests."""

    def __init__(self, sessions: sessionmaker[Session], region: str = "RU") -> None:
        self._sessions = sessions
        self._region = region

    @staticmethod
    def concerns(event: CallEvent) -> bool:
        """Whether `apply` could act on this event: an inbound call that ended missed or abandoned."""
        return (event.kind is CallEventKind.ENDED and event.outcome in FOLLOW_UP_OUTCOMES
                and event.direction == "inbound")

    def apply(self, event: CallEvent) -> bool:
        """True when this event created a callback task."""
        why = FOLLOW_UP_OUTCOMES.get(event.outcome) if event.outcome is not None else None
        if event.kind is not CallEventKind.ENDED or why is None or event.direction != "inbound":
            return False
        e164 = try_normalize(event.caller_num, self._region) if event.caller_num else None
        if e164 is None:
            return False  # withheld or not a number: nobody to call back
        with self._sessions.begin() as session:
            if session.scalar(select(Call.outcome).where(Call.linkedid == event.linkedid)) == ENDED_IN_IVR:
                return False  # a callback promised, a closed department's message, a blocked number
            matches = clients_for_number(session, e164)
            client_id = matches[0].client_id if len(matches) == 1 else None  # else the callback asks who
            dept_id = session.scalar(select(Department.id).where(Department.queue == event.queue)) \
                if event.queue else None
            now = datetime.fromtimestamp(event.at, tz=UTC)
            return service.create_callback_for_call(
                session, event.linkedid, client_id, dept_id, e164, now, why)

    async def run(self, bus: Bus, stop: asyncio.Event) -> None:
        subscription = await bus.subscribe(CALLS_TOPIC)
        try:
            async for message in until_stopped(subscription, stop):
                try:
                    event = CallEvent.from_dict(message)
                    if self.concerns(event):  # most events cannot: they skip the worker thread
                        await asyncio.to_thread(self.apply, event)
                except Exception:  # one bad event must not stop the follow-ups of every later call
                    log.exception("follow-ups: could not handle %.200r", message)
        finally:
            await subscription.close()


def escalation_message(item: service.Escalation) -> dict[str, object]:
    return {
        "type": "escalation",
        "request_id": item.request_id,
        "department": item.department,
        "subject": item.subject,
        "due_at": item.due_at.isoformat(),
    }


async def publish_overdue(bus: Bus, count: service.OverdueCount) -> None:
    """The department's overdue count, to every desk whose line shows it: up when the escalator
    finds more, down when one is closed."""
    message = {"type": "overdue", "department": count.department, "department_code": count.department_code,
               "count": count.count}
    for operator_id in count.desks:
        await bus.publish(desk_topic(operator_id), message)


async def escalate_once(sessions: sessionmaker[Session], bus: Bus, now: datetime) -> int:
    """Escalate what is overdue now, push each notice to its department head's desk topic and the
    departments' new counts to their desks."""

    def work() -> tuple[list[service.Escalation], list[service.OverdueCount]]:
        with sessions.begin() as session:
            found = service.escalate_overdue(session, now)
            return found, [service.overdue_count(session, d) for d in sorted({e.department_id for e in found})]

    found, counts = await asyncio.to_thread(work)
    for item in found:
        if item.head_id is not None:
            await bus.publish(desk_topic(item.head_id), escalation_message(item))
    for count in counts:
        await publish_overdue(bus, count)
    return len(found)


async def run_escalations(
    sessions: sessionmaker[Session], bus: Bus, stop: asyncio.Event, every: float = 60.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    while not stop.is_set():
        try:
            await escalate_once(sessions, bus, clock())
        except Exception:
            log.exception("escalations: this round failed; retrying in %.0f s", every)
        await wait_any(every, stop)
