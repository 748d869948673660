"""The call logger turns CallEvent sequences into one Call row per Linkedid, whatever the order."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from callcard.bus import CALLS_TOPIC, Bus
from crm_core.call_log import CallLogger
from crm_core.clients import NewContact, create_client
from crm_core.models import Call, Department, Operator, as_utc
from ivr import service as ivr_service

T0 = 1_795_394_611.0
IVAN = "+73511234567"
K = CallEventKind


@pytest.fixture
def crm(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Departments, one operator, a known client, a number shared by two clients, a company contact."""
    with sessions.begin() as s:
        sales = Department(code="sales", name="Продажи", queue="sales")
        op1 = Operator(login="op1", name="Анна", password_hash="x", interface="Local/101@agents")
        s.add_all([sales, op1])
        ivan = create_client(s, "Иван Петров", "person", [IVAN])
        create_client(s, "Сидоров Пётр", "person", ["+79120000001"])
        create_client(s, "Сидорова Анна", "person", ["+79120000001"])
        firm = create_client(s, "ООО «Ромашка»", "company", ["+73512000000"],
                             contacts=[NewContact("Ольга Белова", "бухгалтер", phone="+79120000002")])
        s.flush()
        return {"sales": sales.id, "op1": op1.id, "ivan": ivan.id, "firm": firm.id}


def ev(kind: CallEventKind, dt: float, linkedid: str = "1795394611.0", **kw: object) -> CallEvent:
    base: dict[str, object] = {"caller_num": IVAN, "caller_name": "Ivan Petrov", "queue": "sales", "did": "100"}
    return CallEvent(kind=kind, linkedid=linkedid, at=T0 + dt, **{**base, **kw})  # type: ignore[arg-type]


def answered_call(linkedid: str = "1795394611.0") -> list[CallEvent]:
    agent = {"interface": "Local/101@agents", "member_name": "op1"}
    return [
        ev(K.OFFERED, 0, linkedid),
        ev(K.RINGING, 1, linkedid, **agent),
        ev(K.ANSWERED, 4, linkedid, wait_seconds=4, **agent),
        ev(K.ENDED, 10, linkedid, outcome=Outcome.ANSWERED, talk_seconds=6, wait_seconds=4),
    ]


def the_call(sessions: sessionmaker[Session], linkedid: str = "1795394611.0") -> Call:
    with sessions() as s:
        return s.scalars(select(Call).where(Call.linkedid == linkedid)).one()


def at(dt: float) -> datetime:
    return datetime.fromtimestamp(T0 + dt, tz=UTC)


def test_answered_call_logged_with_client_operator_and_durations(sessions, crm) -> None:
    logger = CallLogger(sessions)
    for event in answered_call():
        logger.apply(event)
    call = the_call(sessions)
    assert (call.client_id, call.department_id, call.operator_id) == (crm["ivan"], crm["sales"], crm["op1"])
    assert (call.caller_raw, call.caller_e164, call.caller_name) == (IVAN, IVAN, "Ivan Petrov")
    assert as_utc(call.started_at) == at(0)
    assert as_utc(call.answered_at) == at(4)
    assert as_utc(call.ended_at) == at(10)
    assert (call.wait_seconds, call.talk_seconds) == (4, 6)
    assert (call.status, call.outcome, call.agent_interface) == ("ended", "answered", "Local/101@agents")


def test_ringing_pops_but_does_not_assign_the_operator(sessions, crm) -> None:
    logger = CallLogger(sessions)
    logger.apply(ev(K.OFFERED, 0))
    logger.apply(ev(K.RINGING, 1, interface="Local/101@agents"))
    call = the_call(sessions)
    assert (call.status, call.operator_id, call.agent_interface, call.outcome) == ("ringing", None, "", None)
    logger.apply(ev(K.ANSWERED, 3, interface="Local/101@agents"))
    call = the_call(sessions)
    assert (call.status, call.operator_id, call.wait_seconds) == ("talking", crm["op1"], 3)


def test_abandoned_call_logged_with_wait_time(sessions, crm) -> None:
    logger = CallLogger(sessions)
    for event in [ev(K.OFFERED, 0), ev(K.RINGING, 1, interface="Local/101@agents"),
                  ev(K.RING_STOPPED, 12, interface="Local/101@agents"), ev(K.ABANDONED, 12, wait_seconds=12),
                  ev(K.ENDED, 12, outcome=Outcome.ABANDONED)]:
        logger.apply(event)
    call = the_call(sessions)
    assert (call.outcome, call.status, call.wait_seconds, call.talk_seconds) == ("abandoned", "ended", 12, None)
    assert call.operator_id is None and call.answered_at is None


@pytest.mark.parametrize("outcome", [Outcome.MISSED, Outcome.BUSY, Outcome.FAILED])
def test_unanswered_call_waits_until_hangup(sessions, crm, outcome: Outcome) -> None:
    logger = CallLogger(sessions)
    logger.apply(ev(K.OFFERED, 0))
    logger.apply(ev(K.ENDED, 15, outcome=outcome))
    call = the_call(sessions)
    assert (call.outcome, call.status, call.wait_seconds, call.talk_seconds) == (outcome.value, "ended", 15, None)


def test_durations_computed_from_timestamps_when_events_lack_them(sessions, crm) -> None:
    logger = CallLogger(sessions)
    logger.apply(ev(K.OFFERED, 0))
    logger.apply(ev(K.ANSWERED, 7, interface="Local/101@agents"))
    logger.apply(ev(K.ENDED, 37))  # no outcome either: answered, since someone answered
    call = the_call(sessions)
    assert (call.wait_seconds, call.talk_seconds, call.outcome) == (7, 30, "answered")


def _row(call: Call) -> tuple[object, ...]:
    return (call.caller_raw, call.caller_e164, call.caller_name, call.did, call.queue, call.department_id,
            call.operator_id, call.client_id, call.agent_interface, as_utc(call.started_at),
            as_utc(call.answered_at), as_utc(call.ended_at), call.wait_seconds, call.talk_seconds,
            call.status, call.outcome)


def test_any_order_of_the_same_events_gives_the_same_row(sessions, crm) -> None:
    logger = CallLogger(sessions)
    rows = set()
    for n, order in enumerate(itertools.permutations(answered_call("x"))):
        for event in order:
            logger.apply(replace(event, linkedid=f"perm-{n}"))
        rows.add(_row(the_call(sessions, f"perm-{n}")))
    assert len(rows) == 1
    (row,) = rows
    assert row[-4:] == (4, 6, "ended", "answered") and row[9] == at(0)


def test_ended_for_a_call_never_offered_still_creates_the_row(sessions, crm) -> None:
    CallLogger(sessions).apply(ev(K.ENDED, 20, "lonely.1", outcome=Outcome.MISSED, wait_seconds=20))
    call = the_call(sessions, "lonely.1")
    assert (call.status, call.outcome, call.client_id, call.wait_seconds) == ("ended", "missed", crm["ivan"], 20)
    assert as_utc(call.started_at) == at(0)


@pytest.mark.parametrize("ivr_first", [True, False])
@pytest.mark.parametrize(("path", "outcome"), [
    ("main>1>sales>callback", "ivr"), ("main>2>service>voicemail", "ivr"), ("rejected", "ivr"),
    ("main>hangup", "missed"),  # hung up in the menu: nobody served them
])
def test_a_call_the_ivr_ended_itself_is_no_missed_call_whichever_is_stored_first(
        sessions, crm, ivr_first: bool, path: str, outcome: str) -> None:  # type: ignore[no-untyped-def]
    end = [ev(K.OFFERED, 0, "ivr.1", queue=""), ev(K.ENDED, 6, "ivr.1", queue="", outcome=Outcome.MISSED)]
    if ivr_first:
        _record(sessions, "ivr.1", path)
    CallLogger(sessions).apply_batch(end)
    if not ivr_first:
        _record(sessions, "ivr.1", path)
    call = the_call(sessions, "ivr.1")
    assert (call.status, call.outcome, call.ivr_path, call.caller_e164) == ("ended", outcome, path, IVAN)


def _record(sessions: sessionmaker[Session], linkedid: str, path: str) -> None:
    with sessions.begin() as s:
        ivr_service.record_path(s, linkedid, path, at(1), None, "", at(1))


def test_replayed_events_never_duplicate_or_change_the_row(sessions, crm) -> None:
    logger = CallLogger(sessions)
    for event in answered_call():
        logger.apply(event)
    first = _row(the_call(sessions))
    for event in answered_call() + list(reversed(answered_call())):
        logger.apply(event)
    assert _row(the_call(sessions)) == first
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 1


def test_hostile_caller_id_is_stored_verbatim_and_logged(sessions, crm, caplog) -> None:
    name = "Robert'); DROP TABLE calls;-- <script>alert(1)</script> \u202eИван"
    with caplog.at_level(logging.WARNING, logger="crm_core.call_log"):
        CallLogger(sessions).apply(ev(K.OFFERED, 0, caller_num="<script>1</script>", caller_name=name))
    call = the_call(sessions)
    assert (call.caller_raw, call.caller_name, call.caller_e164, call.client_id) == (
        "<script>1</script>", name, None, None)
    assert "not a phone number" in caplog.text


def test_nul_and_oversized_caller_id_are_trimmed_not_lost(sessions, crm) -> None:
    CallLogger(sessions).apply(ev(K.OFFERED, 0, caller_num="8351\x001234567", caller_name="Я" * 1000))
    call = the_call(sessions)
    assert call.caller_raw == "83511234567" and call.caller_name == "Я" * 256


def test_shared_number_leaves_the_client_to_the_operator(sessions, crm) -> None:
    CallLogger(sessions).apply(ev(K.OFFERED, 0, caller_num="89120000001"))
    call = the_call(sessions)
    assert (call.caller_e164, call.client_id) == ("+79120000001", None)


def test_contact_person_number_links_the_company(sessions, crm) -> None:
    CallLogger(sessions).apply(ev(K.OFFERED, 0, caller_num="+7 912 000-00-02"))
    assert the_call(sessions).client_id == crm["firm"]


def test_unknown_queue_and_interface_leave_links_empty(sessions, crm) -> None:
    logger = CallLogger(sessions)
    logger.apply(ev(K.OFFERED, 0, queue="nowhere", caller_num="83517654321"))
    logger.apply(ev(K.ANSWERED, 2, queue="nowhere", interface="PJSIP/999"))
    call = the_call(sessions)
    assert (call.department_id, call.operator_id, call.client_id) == (None, None, None)
    assert (call.queue, call.agent_interface, call.caller_e164) == ("nowhere", "PJSIP/999", "+73517654321")


@pytest.mark.parametrize(
    "bad",
    [
        {"linkedid": ""},
        {"linkedid": "   "},
        {"linkedid": "x" * 65},
        {"at": math.nan},
        {"at": "yesterday"},
        {"wait_seconds": -3},
        {"talk_seconds": 1.5},
    ],
)
def test_bad_event_is_logged_and_dropped(sessions, crm, caplog, bad: dict[str, object]) -> None:
    logger = CallLogger(sessions)
    with caplog.at_level(logging.ERROR, logger="crm_core.call_log"):
        logger.apply(replace(ev(K.ANSWERED, 0), **bad))  # type: ignore[arg-type]
    assert "dropped" in caplog.text
    logger.apply(ev(K.OFFERED, 0, "good.1"))
    with sessions() as s:
        assert s.scalars(select(Call.linkedid)).all() == ["good.1"]


async def test_run_logs_events_from_the_bus_and_survives_garbage(sessions, crm, bus: Bus, caplog) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(CallLogger(sessions).run(bus, stop))
    await asyncio.sleep(0.2)  # let the logger subscribe
    await bus.publish(CALLS_TOPIC, {"kind": "exploded", "linkedid": "1"})
    await bus.publish(CALLS_TOPIC, {"nonsense": True})
    await bus.publish(CALLS_TOPIC, ev(K.OFFERED, 0, linkedid="").to_dict())
    for event in answered_call("bus.1"):
        await bus.publish(CALLS_TOPIC, event.to_dict())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with sessions() as s:
            if s.scalar(select(Call.status).where(Call.linkedid == "bus.1")) == "ended":
                break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 2)
    call = the_call(sessions, "bus.1")
    assert (call.outcome, call.operator_id, call.client_id) == ("answered", crm["op1"], crm["ivan"])
    assert caplog.text.count("dropped") == 3
