"""The call logger's batches: one transaction for many events, the same rows as one by one."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.event import listen
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import CALLS_TOPIC, Bus
from crm_core import call_log
from crm_core.call_log import CallLogger, LoggedCall
from crm_core.clients import create_client
from crm_core.models import Call, Client, Department, Operator

T0 = 1_795_394_611.0
K = CallEventKind
COLUMNS = ("linkedid", "direction", "caller_raw", "caller_e164", "caller_name", "did", "queue", "department_id",
           "client_id", "operator_id", "agent_interface", "status", "outcome", "wait_seconds", "talk_seconds")


@pytest.fixture
def crm(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.add_all([Department(code="sales", name="Продажи", queue="sales"),
                   Operator(login="op1", name="Анна", password_hash="x", interface="Local/101@agents")])
        create_client(s, "Иван Петров", "person", ["+73511234567"])


def calls(n: int) -> list[CallEvent]:
    """n answered or abandoned calls, their events interleaved as a busy queue would send them."""
    events = []
    for i in range(n):
        linkedid, t = f"{T0:.0f}.{i}", T0 + i
        base: dict[str, Any] = {"linkedid": linkedid, "caller_num": "+73511234567", "caller_name": f"C{i}",
                                "queue": "sales", "did": "100"}
        agent = {"interface": "Local/101@agents", "member_name": "op1"}
        events.append(CallEvent(kind=K.OFFERED, at=t, **base))
        if i % 3:
            events += [CallEvent(kind=K.RINGING, at=t + 1, **base, **agent),
                       CallEvent(kind=K.ANSWERED, at=t + 3, wait_seconds=3, **base, **agent),
                       CallEvent(kind=K.ENDED, at=t + 9, outcome=Outcome.ANSWERED, talk_seconds=6, wait_seconds=3,
                                 **base)]
        else:
            events += [CallEvent(kind=K.ABANDONED, at=t + 5, wait_seconds=5, **base),
                       CallEvent(kind=K.ENDED, at=t + 5, outcome=Outcome.ABANDONED, **base)]
    events.sort(key=lambda e: e.at)
    return events


def rows(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with sessions() as s:
        result = []
        for call in s.scalars(select(Call).order_by(Call.linkedid)):
            times = tuple(getattr(call, c) and getattr(call, c).replace(tzinfo=UTC).timestamp()
                          for c in ("started_at", "answered_at", "ended_at"))
            result.append(tuple(getattr(call, c) for c in COLUMNS) + times)
        return result


def clear(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for call in s.scalars(select(Call)):
            s.delete(call)


def test_batches_give_the_rows_of_one_by_one_whatever_the_cut(sessions, crm) -> None:
    events = calls(12)
    logger = CallLogger(sessions)
    for event in events:
        logger.apply(event)
    expected = rows(sessions)
    assert len(expected) == 12 and all(row[COLUMNS.index("status")] == "ended" for row in expected)
    rng = random.Random(7)
    for _ in range(3):
        clear(sessions)
        i = 0
        while i < len(events):
            size = rng.randint(1, 15)
            logger.apply_batch(events[i : i + size])
            i += size
        assert rows(sessions) == expected


def test_replaying_a_batch_changes_nothing(sessions, crm) -> None:
    events = calls(6)
    logger = CallLogger(sessions)
    logger.apply_batch(events)
    first = rows(sessions)
    logger.apply_batch(events)
    logger.apply_batch(list(reversed(events)))
    assert rows(sessions) == first


def test_a_batch_with_an_event_the_database_refuses_loses_only_that_event(sessions, crm, monkeypatch, caplog) -> None:
    events = calls(4)
    logger = CallLogger(sessions)
    poisoned = events[5]
    for event in events:
        if event is not poisoned:
            logger.apply(event)
    without_it = rows(sessions)
    clear(sessions)
    merge = call_log.merge

    def refusing(call: LoggedCall, event: CallEvent, facts: object) -> None:
        if event is poisoned:
            raise RuntimeError("refused")
        merge(call, event, facts)

    monkeypatch.setattr(call_log, "merge", refusing)
    logger.apply_batch(events)
    assert rows(sessions) == without_it
    assert "could not store" in caplog.text


def test_a_batch_drops_unusable_events_and_keeps_the_rest(sessions, crm, caplog) -> None:
    events = calls(2)
    bad = CallEvent(kind=K.OFFERED, linkedid="", at=T0)
    CallLogger(sessions).apply_batch([bad, *events])
    assert len(rows(sessions)) == 2
    assert "dropped" in caplog.text


async def test_run_loses_nothing_when_events_arrive_faster_than_it_stores(sessions, crm, bus: Bus) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(CallLogger(sessions).run(bus, stop))
    await asyncio.sleep(0.2)
    events = calls(60)
    for event in events:  # all at once: the logger is still storing the first when the rest arrive
        await bus.publish(CALLS_TOPIC, event.to_dict())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ended = [r for r in rows(sessions) if r[COLUMNS.index("status")] == "ended"]
        if len(ended) == 60:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 5)
    got = rows(sessions)
    clear(sessions)
    reference_logger = CallLogger(sessions)
    for event in events:
        reference_logger.apply(event)
    assert got == rows(sessions)


def test_start_is_the_earliest_estimate_in_the_batch(sessions, crm) -> None:
    base = {"linkedid": "late.1", "caller_num": "+73511234567", "queue": "sales"}
    ended = CallEvent(kind=K.ENDED, at=T0 + 100, outcome=Outcome.MISSED, wait_seconds=40, **base)
    offered = CallEvent(kind=K.OFFERED, at=T0 + 70, **base)
    CallLogger(sessions).apply_batch([offered, ended])
    with sessions() as s:
        call = s.scalars(select(Call)).one()
        assert call.started_at.replace(tzinfo=UTC) == datetime.fromtimestamp(T0 + 60, tz=UTC)


def test_a_batch_looks_up_operators_clients_and_departments_once_whatever_its_size(sessions, engine) -> None:
    """Each call of a batch has its own operator, caller and queue; the statements a batch sends
    do not grow with its calls (asked per call, these lookups were most of the logger's work)."""
    with sessions.begin() as s:
        s.add_all([Department(code="sales", name="Продажи", queue="sales"),
                   Department(code="service", name="Сервис", queue="service")])
        s.add_all(Operator(login=f"op{i}", name=f"Оператор {i}", password_hash="x", interface=f"Local/{200 + i}@agents")
                  for i in range(40))
        for i in range(40):
            create_client(s, f"Клиент {i}", "person", [f"+7351200{i:04d}"])
        create_client(s, "Тёзка", "person", ["+73512000001"])  # number 1 belongs to two clients
    with sessions() as s:
        ids = dict(s.execute(select(Operator.login, Operator.id)).all())
    statements: list[str] = []
    listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    def batch(first: int, n: int) -> list[CallEvent]:
        events = []
        for i in range(first, first + n):
            queue = ("sales", "service")[i % 2]
            base = {"linkedid": f"b.{i}", "queue": queue, "caller_num": f"8351200{i:04d}" if i != 3 else "anonymous"}
            agent = {"interface": f"Local/{200 + i}@agents"}
            events += [CallEvent(kind=K.OFFERED, at=T0 + i, **base),
                       CallEvent(kind=K.ANSWERED, at=T0 + i + 2, wait_seconds=2, **base, **agent)]
        return events

    logger = CallLogger(sessions)
    counts = []
    for first, n in ((0, 2), (2, 20)):
        statements.clear()
        logger.apply_batch(batch(first, n))
        counts.append(len(statements))
    assert counts[0] == counts[1], statements
    with sessions() as s:
        logged = {c.linkedid: c for c in s.scalars(select(Call))}
        departments = dict(s.execute(select(Department.queue, Department.id)).all())
        owners = {c.name: c.id for c in s.scalars(select(Client))}
    assert len(logged) == 22
    for i in range(22):
        call = logged[f"b.{i}"]
        assert call.operator_id == ids[f"op{i}"]
        assert call.department_id == departments[("sales", "service")[i % 2]]
        if i == 1:
            assert (call.caller_e164, call.client_id) == ("+73512000001", None)  # shared: the operator picks
        elif i == 3:
            assert (call.caller_raw, call.caller_e164, call.client_id) == ("anonymous", None, None)
        else:
            assert (call.caller_e164, call.client_id) == (f"+7351200{i:04d}", owners[f"Клиент {i}"])
