"""The call log is idempotent by Linkedid: a batch committed and then delivered again (the logger
died between the commit and the stream's ack), or what a bridge taking over repeats, changes no
row, for every event kind."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import FrameParser
from ami_bridge.leader import takeover_endings
from ami_bridge.tracker import CallTracker
from crm_core.call_log import CallLogger
from crm_core.clients import create_client
from crm_core.models import Call, Department, Operator

K = CallEventKind
T0 = 1_795_394_611.0
TRACES = ("inbound_answered", "inbound_abandoned", "queue_status", "ivr_fastagi")


@pytest.fixture
def crm(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.add_all([Department(code="sales", name="Sales", queue="sales"),
                   Department(code="service", name="Service", queue="support")])
        s.add_all([Operator(login=f"op{n}", name=f"Op {n}", password_hash="x", interface=f"Local/{n}@agents")
                   for n in range(101, 105)])
        create_client(s, "Ivan Petrov", "person", ["+73511234567"])


def rows(sessions: sessionmaker[Session]) -> dict[str, dict[str, Any]]:
    with sessions() as s:
        return {c.linkedid: {col.name: getattr(c, col.name) for col in Call.__table__.columns if col.name != "id"}
                for c in s.scalars(select(Call))}


def clear(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        for call in s.scalars(select(Call)):
            s.delete(call)


def recorded(traces_dir: Path) -> list[CallEvent]:
    """Every recording through the tracker, a second apart per AMI message, so times differ."""
    events: list[CallEvent] = []
    for name in TRACES:
        ticks = itertools.count(T0, 1.0)
        tracker = CallTracker(clock=lambda ticks=ticks: next(ticks))
        events += [e for m in FrameParser().feed((traces_dir / f"{name}.ami").read_bytes()) for e in tracker.feed(m)]
    return events


def transferred_call() -> list[CallEvent]:
    """Answered in sales, transferred to support, answered again: every kind but ABANDONED."""
    base: dict[str, Any] = {"linkedid": "t.1", "caller_num": "+73511234567", "caller_name": "Ivan"}
    op1 = {"interface": "Local/101@agents", "member_name": "op101"}
    op3 = {"interface": "Local/103@agents", "member_name": "op103"}
    return [
        CallEvent(K.OFFERED, at=T0, queue="sales", **base),
        CallEvent(K.RINGING, at=T0 + 1, queue="sales", **base, **op1),
        CallEvent(K.ANSWERED, at=T0 + 3, queue="sales", wait_seconds=3, **base, **op1),
        CallEvent(K.TRANSFERRED, at=T0 + 20, queue="support", **base),
        CallEvent(K.RINGING, at=T0 + 21, queue="support", **base, **op3),
        CallEvent(K.RING_STOPPED, at=T0 + 22, queue="support", **base, **op3),
        CallEvent(K.RINGING, at=T0 + 23, queue="support", **base, **op3),
        CallEvent(K.ANSWERED, at=T0 + 25, queue="support", wait_seconds=3, **base, **op3),
        CallEvent(K.ENDED, at=T0 + 60, queue="support", outcome=Outcome.ANSWERED, talk_seconds=57, wait_seconds=3,
                  **base),
    ]


def test_a_redelivered_batch_changes_no_row_whatever_was_committed_before(
    sessions: sessionmaker[Session], crm: None, traces_dir: Path
) -> None:
    events = recorded(traces_dir) + transferred_call()
    assert {e.kind for e in events} == set(K)
    logger = CallLogger(sessions)
    logger.apply_batch(events)
    expected = rows(sessions)
    assert len(expected) == 6 and all(row["status"] == "ended" for row in expected.values())
    rng = random.Random(6)
    cuts = [(0, len(events)), (len(events), len(events))] + [
        tuple(sorted(rng.sample(range(len(events) + 1), 2))) for _ in range(8)]
    for redelivered_from, committed_up_to in cuts:
        clear(sessions)
        logger.apply_batch(events[:committed_up_to])  # committed, ack lost
        logger.apply_batch(events[redelivered_from:])  # delivered again, then the rest
        assert rows(sessions) == expected, (redelivered_from, committed_up_to)


def test_answered_twice_keeps_talk_time_outcome_and_operator(sessions: sessionmaker[Session], crm: None) -> None:
    events = transferred_call()
    logger = CallLogger(sessions)
    logger.apply_batch(events)
    expected = rows(sessions)["t.1"]
    assert (expected["outcome"], expected["talk_seconds"], expected["agent_interface"]) == (
        "answered", 57, "Local/103@agents")
    answers = [e for e in events if e.kind is K.ANSWERED]
    logger.apply_batch(answers + answers)
    logger.apply_batch(list(reversed(events)))
    assert rows(sessions)["t.1"] == expected


def test_a_bridge_that_adopted_the_call_after_its_answer_keeps_it_answered_and_outbound(
    sessions: sessionmaker[Session], crm: None
) -> None:
    base: dict[str, Any] = {"linkedid": "o.1", "caller_num": "+73511234567"}
    logger = CallLogger(sessions)
    logger.apply_batch([  # the first leader: our Originate, answered
        CallEvent(K.OFFERED, at=T0, direction="outbound", **base),
        CallEvent(K.ANSWERED, at=T0 + 4, direction="outbound", wait_seconds=4, interface="Local/101@agents", **base),
    ])
    logger.apply_batch([  # its successor saw it only in CoreShowChannels: inbound, never answered
        CallEvent(K.OFFERED, at=T0 + 30, **base),
        CallEvent(K.ENDED, at=T0 + 40, outcome=Outcome.MISSED, **base),
    ])
    row = rows(sessions)["o.1"]
    assert (row["direction"], row["outcome"], row["status"], row["wait_seconds"], row["talk_seconds"]) == (
        "outbound", "answered", "ended", 4, 36)


@pytest.mark.parametrize(("answered", "outcome"), [(True, "answered"), (False, "abandoned")])
def test_a_call_that_ended_while_nobody_led_is_closed_at_the_takeover(
    sessions: sessionmaker[Session], crm: None, answered: bool, outcome: str
) -> None:
    base: dict[str, Any] = {"linkedid": "g.1", "caller_num": "+73511234567", "queue": "sales"}
    written = [CallEvent(K.OFFERED, at=T0, **base)]
    if answered:
        written.append(CallEvent(K.ANSWERED, at=T0 + 5, wait_seconds=5, interface="Local/101@agents", **base))
    logger = CallLogger(sessions)
    logger.apply_batch(written)
    logger.apply_batch(takeover_endings({"g.1": written[-1]}, live=set(), now=T0 + 65))
    row = rows(sessions)["g.1"]
    assert (row["status"], row["outcome"], row["wait_seconds"], row["talk_seconds"]) == (
        "ended", outcome, 5 if answered else 65, 60 if answered else None)
