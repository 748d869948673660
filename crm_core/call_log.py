"""The call logger: every call the bridge reports becomes one Call row, keyed by Linkedid.

Events can come twice or out of order (a replay, a reconnect), so each field merges the
same way whatever the order: earliest start, first answer, latest end, first caller ID
seen; durations the events carry win over durations computed from timestamps.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import CALLS_TOPIC, Bus, until_stopped
from crm_core.cards import clients_for_numbers
from crm_core.db import insert_ignoring, insert_or_ignore
from crm_core.models import Call, Department, Operator, as_utc, utcnow
from crm_core.phones import shown_number, try_normalize
from crm_core.prepared import execute_many, fetch

log = logging.getLogger(__name__)

LINKEDID_MAX = 64
MAX_BATCH = 200  # events per transaction: bounds how long one batch holds its row locks
# At most one batch per this many seconds: under load events gather into fewer, larger transactions
# (a third less CPU per call at 100 calls/s); an event that finds the logger idle is stored at once.
BATCH_INTERVAL = 0.03


# Call.outcome of a call the IVR ended itself (a callback promised, a closed department's message,
# a blocked number turned away: ivr.menu.IVR_ENDINGS). The IVR sets it; the call's end, which
# Asterisk reports as missed, never turns it back.
ENDED_IN_IVR = "ivr"
OUTCOMES = (*(o.value for o in Outcome), ENDED_IN_IVR)  # every Call.outcome of an ended call


class CallLogUnavailable(RuntimeError):
    """The database cannot be reached: nothing of the batch was stored, and it may be retried as is."""


def _unavailable(exc: Exception) -> bool:
    """A lost or refused connection (server down, proxy cut, pool exhausted), not an event at fault."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


@dataclass(slots=True)
class LoggedCall:
    """The logger's columns of one Call row, merged in memory and written back with one UPDATE
    per batch (the ORM's unit of work cost more than the rest of the logger)."""

    id: int
    linkedid: str
    direction: str
    caller_raw: str
    caller_e164: str | None
    caller_name: str
    did: str
    queue: str
    department_id: int | None
    operator_id: int | None
    client_id: int | None
    agent_interface: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: int | None
    talk_seconds: int | None
    status: str
    outcome: str | None

    def logged(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _LOGGED}


# The columns the logger owns (LoggedCall's, after id and linkedid); the rest of a call's row
# (disposition, IVR path) is others' to write.
_LOGGED = tuple(f.name for f in fields(LoggedCall))[2:]
_CALLS = Call.__table__
# Statements built once and run through crm_core.prepared: building them per batch cost more than
# running them on SQLite, and SQLAlchemy's execution of them twice what SQLite took (its thread
# holds the interpreter the event loop needs for the pops).
_SELECT_LOGGED = (select(*(_CALLS.c[f.name] for f in fields(LoggedCall)))
                  .where(_CALLS.c.linkedid.in_(bindparam("linkedids", expanding=True)))
                  .order_by(_CALLS.c.linkedid).with_for_update())
_QUEUE_DEPARTMENTS = select(Department.queue, Department.id).where(
    Department.queue.in_(bindparam("queues", expanding=True)))
_INTERFACE_OPERATORS = select(Operator.interface, Operator.id).where(
    Operator.interface.in_(bindparam("interfaces", expanding=True)))
_UPDATE_LOGGED = (update(_CALLS).where(_CALLS.c.id == bindparam("row_id"))
                  .values({name: bindparam(name) for name in _LOGGED}))


def _rows_for(connection: Connection, events: list[CallEvent]) -> dict[str, LoggedCall]:
    """The Call row of every linkedid in `events`, locked; missing rows are inserted first.

    Rows are selected in linkedid order, so two loggers never lock the same calls crosswise.
    """
    linkedids = sorted({event.linkedid for event in events})
    calls = _locked_calls(connection, linkedids)
    missing = [linkedid for linkedid in linkedids if linkedid not in calls]
    if missing:
        execute_many(connection, insert_ignoring(_CALLS, ("linkedid",), connection.dialect.name), [
            {"linkedid": linkedid, "started_at": min(_start_estimate(e) for e in events if e.linkedid == linkedid)}
            for linkedid in missing
        ])
        calls.update(_locked_calls(connection, missing))
    return calls


def _locked_calls(connection: Connection, linkedids: list[str]) -> dict[str, LoggedCall]:
    (rows,) = fetch(connection, [(_SELECT_LOGGED, {"linkedids": linkedids})])
    return {row.linkedid: LoggedCall(*row) for row in rows}


@dataclass(frozen=True, slots=True)
class _Facts:
    """What merging a batch needs from other tables, read for the whole batch at once (asked per
    call, these lookups were most of the logger's statements): the department of each queue, the
    operator on each interface, and each caller number's E.164 form (None: not a phone number)
    with the clients owning it."""

    departments: dict[str, int | None]
    operators: dict[str, int | None]
    numbers: dict[str, str | None]
    owners: dict[str, list[int]]

    def department_id(self, queue: str) -> int | None:
        return self.departments.get(queue)

    def operator_id(self, interface: str) -> int | None:
        return self.operators.get(interface)


def _facts(connection: Connection, calls: dict[str, LoggedCall], events: list[CallEvent], region: str) -> _Facts:
    """The _Facts any of `events` may ask for (a few more than the merge will use is cheaper than
    a second round of statements)."""
    queues = {_clean(e.queue, 64) for e in events if e.queue} | {c.queue for c in calls.values() if c.queue}
    interfaces = {_clean(e.interface, 128) for e in events if e.interface}
    numbers = {raw: try_normalize(raw, region) for raw in
               {_clean(e.caller_num, 128) for e in events if e.caller_num and not calls[e.linkedid].caller_raw}}
    e164s = {e164 for e164 in numbers.values() if e164 is not None}
    departments: dict[str, int | None] = dict.fromkeys(queues)
    if queues:
        (found,) = fetch(connection, [(_QUEUE_DEPARTMENTS, {"queues": sorted(queues)})])
        departments.update(found)
    operators: dict[str, int | None] = dict.fromkeys(interfaces)
    if interfaces:
        (found,) = fetch(connection, [(_INTERFACE_OPERATORS, {"interfaces": sorted(interfaces)})])
        operators.update(found)
    owners = {e164: [match.client_id for match in matches]
              for e164, matches in clients_for_numbers(connection, e164s).items()}
    return _Facts(departments, operators, numbers, owners)


RECENT = timedelta(days=2)  # how far back a restart looks for calls left open (on the started_at index)


def last_logged(session: Session) -> float | None:
    """When the call log last heard of anything (a start, an answer, an end), epoch seconds: about
    when a run that stopped without ending its calls was last alive."""
    moments = session.execute(select(func.max(Call.started_at), func.max(Call.answered_at),
                                     func.max(Call.ended_at)).where(Call.started_at >= utcnow() - RECENT)).one()
    known = [as_utc(m).timestamp() for m in moments if m is not None]
    return max(known) if known else None


def open_calls(session: Session) -> dict[str, CallEvent]:
    """The calls logged as not ended, each as the last event it stands for (a caller in a queue
    not yet answered: OFFERED; an answer: ANSWERED), for a bridge that starts after a run which
    stopped mid-call to end those Asterisk no longer has (ami_bridge.leader.takeover_endings).
    Calls that started more than RECENT ago are not looked at: the log may hold millions."""
    rows = session.execute(select(Call.linkedid, Call.started_at, Call.direction, Call.caller_raw, Call.queue,
                                  Call.answered_at, Call.wait_seconds)
                           .where(Call.started_at >= utcnow() - RECENT, Call.status != "ended"))
    return {
        linkedid: CallEvent(
            kind=CallEventKind.ANSWERED if answered_at else CallEventKind.OFFERED, linkedid=linkedid,
            at=as_utc(started).timestamp(), direction=direction, caller_num=caller, queue=queue,
            wait_seconds=(wait or 0) if answered_at else None)
        for linkedid, started, direction, caller, queue, answered_at, wait in rows
    }


def ensure_call(session: Session, linkedid: str, started_at: datetime) -> Call:
    """The Call row for `linkedid`, inserted when missing; a concurrent insert is not an error."""
    insert_or_ignore(session, Call, ["linkedid"], linkedid=linkedid, started_at=started_at)
    return session.execute(select(Call).where(Call.linkedid == linkedid).with_for_update()).scalar_one()


class CallLogger:
    """Turns CallEvents into Call rows; `apply` is sync (one transaction), `run` feeds it from the bus."""

    def __init__(self, sessions: sessionmaker[Session], region: str = "RU") -> None:
        self._engine: Engine = sessions.kw["bind"]
        self._region = region

    def apply(self, event: CallEvent) -> None:
        """Merge one event into its call's row; an unusable event is logged and dropped."""
        self.apply_batch([event])

    def apply_batch(self, events: list[CallEvent]) -> None:
        """Merge events in order, in one transaction: the same rows as applying them one by one.

        If the database refuses the batch, each event is retried alone, so only the event at
        fault is lost (the merge is idempotent, and the failed batch was rolled back). If the
        database cannot be reached, CallLogUnavailable: the caller keeps the batch and retries it.
        """
        usable = []
        for event in events:
            problem = _problem(event)
            if problem:
                log.error("call log: dropped %r event: %s", getattr(event, "kind", None), problem)
            else:
                usable.append(event)
        if not usable:
            return
        try:
            self._store(usable)
            return
        except Exception as exc:
            if _unavailable(exc):
                raise CallLogUnavailable(str(exc).splitlines()[0]) from exc
            if len(usable) == 1:
                log.exception("call log: could not store %s event of call %r", usable[0].kind, usable[0].linkedid)
                return
        log.warning("call log: a batch of %d events failed; storing them one by one", len(usable))
        for event in usable:
            try:
                self._store([event])
            except Exception as exc:
                if _unavailable(exc):
                    raise CallLogUnavailable(str(exc).splitlines()[0]) from exc
                log.exception("call log: could not store %s event of call %r", event.kind, event.linkedid)

    def _store(self, events: list[CallEvent]) -> None:
        with self._engine.begin() as connection:  # a Connection: a Session's own work is not needed here
            calls = _rows_for(connection, events)
            before = {linkedid: call.logged() for linkedid, call in calls.items()}
            facts = _facts(connection, calls, events, self._region)
            for event in events:
                merge(calls[event.linkedid], event, facts)
            changed = [{"row_id": call.id, **after} for linkedid, call in calls.items()
                       if (after := call.logged()) != before[linkedid]]
            execute_many(connection, _UPDATE_LOGGED, changed)

    async def run(self, bus: Bus, stop: asyncio.Event | None = None) -> None:
        """Log every event on CALLS_TOPIC until `stop` is set; the database work runs off the loop.

        Events that arrive while a batch is being stored wait in the subscription; the next batch
        is all of them (at most MAX_BATCH), in arrival order, and a batch starts at most once per
        BATCH_INTERVAL. (A reader task and a queue of its own cost the loop a few turns per event.)
        """
        stop = stop or asyncio.Event()
        subscription = await bus.subscribe(CALLS_TOPIC)
        loop = asyncio.get_running_loop()
        last_batch = -math.inf
        try:
            async for first in until_stopped(subscription, stop):
                wait = last_batch + BATCH_INTERVAL - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                last_batch = loop.time()
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(subscription.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                await self._handle(batch)
        finally:
            await subscription.close()

    async def _handle(self, messages: list[dict[str, Any]]) -> None:
        events = []
        for message in messages:
            try:
                events.append(CallEvent.from_dict(message))
            except (KeyError, TypeError, ValueError) as exc:
                log.error("call log: dropped undecodable call event %.300r: %s", message, exc)
        if not events:
            return
        try:
            await asyncio.to_thread(self.apply_batch, events)
        except Exception:  # one event the database refuses must not stop the logging of every later call
            log.exception("call log: could not store %d events (first: %s of call %r)",
                          len(events), events[0].kind, events[0].linkedid)


def merge(call: LoggedCall, event: CallEvent, facts: _Facts) -> None:
    """Merge one event into its call's row (pure: what it looks up is in `facts`)."""
    at = _utc(event.at)
    call.started_at = min(as_utc(call.started_at), _start_estimate(event))
    if event.direction and call.direction != "outbound":
        # outbound is known only to the bridge that originated the call; a bridge that adopted
        # it after a takeover or reconnect sees it as inbound, and must not turn it back
        call.direction = _clean(event.direction, 16)
    if event.caller_num and not call.caller_raw:
        _set_caller(call, _clean(event.caller_num, 128), facts)
    if event.caller_name and not call.caller_name:
        call.caller_name = _clean(event.caller_name, 256)
    if event.did and not call.did:
        call.did = _clean(event.did, 64)
    if event.queue and not call.queue:
        call.queue = _clean(event.queue, 64)
    if call.queue and call.department_id is None:
        call.department_id = facts.department_id(call.queue)
    if (event.direction == "outbound" and event.interface and not call.agent_interface
            and event.kind not in (CallEventKind.RINGING, CallEventKind.RING_STOPPED)):
        # click-to-call: the operator who dialled owns the call even when the customer never answers
        call.agent_interface = _clean(event.interface, 128)
        call.operator_id = facts.operator_id(call.agent_interface)

    if event.kind is CallEventKind.ANSWERED:
        # answered_at is the first answer; the operator is the latest one (after a transfer,
        # the colleague who took the call over owns it now).
        first_answer = call.answered_at is None
        if first_answer or at < as_utc(call.answered_at):
            call.answered_at = at
        if event.interface and (first_answer or at > as_utc(call.answered_at)):
            call.agent_interface = _clean(event.interface, 128)
            call.operator_id = facts.operator_id(call.agent_interface)
        if event.wait_seconds is not None:
            call.wait_seconds = event.wait_seconds
        elif call.wait_seconds is None:
            call.wait_seconds = _seconds(call.started_at, at)
        if call.status != "ended":
            call.status = "talking"
    elif event.kind is CallEventKind.TRANSFERRED and event.queue:
        call.queue = _clean(event.queue, 64)
        call.department_id = facts.department_id(call.queue)
        if call.status == "talking":
            call.status = "ringing"
    elif event.kind is CallEventKind.ABANDONED:
        call.outcome = call.outcome or Outcome.ABANDONED.value
        if event.wait_seconds is not None:
            call.wait_seconds = event.wait_seconds
        elif call.wait_seconds is None:
            call.wait_seconds = _seconds(call.started_at, at)
        _end(call, at)
    elif event.kind is CallEventKind.ENDED:
        _end(call, at)
        if event.outcome is not None and not (
                event.outcome is Outcome.MISSED and (call.answered_at or call.outcome == ENDED_IN_IVR)):
            # missed is "nobody answered": from a bridge that adopted the call after its answer,
            # or of a caller the IVR served
            call.outcome = event.outcome.value
        if event.talk_seconds is not None:
            call.talk_seconds = event.talk_seconds
        elif call.talk_seconds is None and call.answered_at is not None:
            call.talk_seconds = _seconds(call.answered_at, at)
        if event.wait_seconds is not None:
            call.wait_seconds = event.wait_seconds
        elif call.wait_seconds is None and call.answered_at is None:
            call.wait_seconds = _seconds(call.started_at, at)
    if call.status == "ended" and call.outcome is None:
        call.outcome = (Outcome.ANSWERED if call.answered_at else Outcome.MISSED).value


def _set_caller(call: LoggedCall, raw: str, facts: _Facts) -> None:
    call.caller_raw = raw
    call.caller_e164 = facts.numbers[raw]
    if call.caller_e164 is None:
        if shown_number(raw, None):  # a withheld number is no news
            log.warning("call %r: caller number %r is not a phone number; kept as is", call.linkedid, raw)
        return
    if call.client_id is None:
        owners = facts.owners[call.caller_e164]
        if len(owners) == 1:  # several: the operator picks one in the desk
            call.client_id = owners[0]


def _end(call: LoggedCall, at: datetime) -> None:
    call.status = "ended"
    if call.ended_at is None or at > as_utc(call.ended_at):
        call.ended_at = at


def _problem(event: CallEvent) -> str | None:
    """Why an event cannot be logged, or None."""
    if not isinstance(event.kind, CallEventKind):
        return f"unknown kind {event.kind!r}"
    if not isinstance(event.linkedid, str) or not event.linkedid.strip():
        return "no linkedid"
    if len(event.linkedid) > LINKEDID_MAX or "\x00" in event.linkedid:
        return f"unusable linkedid {event.linkedid[:80]!r}"
    if isinstance(event.at, bool) or not isinstance(event.at, (int, float)) or not math.isfinite(event.at):
        return f"call {event.linkedid!r}: bad timestamp {event.at!r}"
    for name in ("wait_seconds", "talk_seconds"):
        value = getattr(event, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            return f"call {event.linkedid!r}: bad {name} {value!r}"
    return None


def _start_estimate(event: CallEvent) -> datetime:
    """When the call began, as far as this one event tells: its time minus the durations it carries."""
    before = 0
    if event.kind in (CallEventKind.ANSWERED, CallEventKind.ABANDONED, CallEventKind.ENDED):
        before += event.wait_seconds or 0
    if event.kind is CallEventKind.ENDED:
        before += event.talk_seconds or 0
    return _utc(event.at) - timedelta(seconds=before)


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - as_utc(start)).total_seconds()))


def _clean(text: str, limit: int) -> str:
    """Caller-controlled text as sent, minus NUL (PostgreSQL refuses it), cut to the column size."""
    return str(text).replace("\x00", "")[:limit]
