"""The queues' board every desk shows: callers waiting and since when the longest has waited, per
queue, with the queue's longest-wait limits. Pure in LiveState; the wall service keeps it each
time it looks and tells the desks only when it changed (a thousand desks hear nothing new while
calls are merely talked)."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import QueueEvent
from ami_bridge.events import QueueEventKind as K
from callcard.bus import BOARD_TOPIC, MemoryBus
from routing.live import LiveState, Thresholds
from routing.wall import WallService, kept_board

NOON = datetime(2026, 11, 26, 12, 0).timestamp()
A, B = "Local/101@agents", "Local/102@agents"
SNAPSHOT = (
    QueueEvent(K.RESYNC, NOON),
    QueueEvent(K.QUEUE, NOON, queue="sales", snapshot=True),
    QueueEvent(K.QUEUE, NOON, queue="support", snapshot=True),
    QueueEvent(K.MEMBER, NOON, queue="sales", interface=A, member_name="A", status=1, paused=False, penalty=0,
               snapshot=True),
    QueueEvent(K.MEMBER, NOON, queue="support", interface=B, member_name="B", status=1, paused=False, penalty=0,
               snapshot=True),
)


def joined(at: float, linkedid: str, queue: str = "sales") -> QueueEvent:
    return QueueEvent(K.CALLER_JOINED, at, queue=queue, linkedid=linkedid, caller_num="+79990000001")


def test_the_board_counts_each_queues_callers_and_its_longest_waits_start() -> None:
    state = LiveState({"sales": Thresholds(longest_wait_warn=10, longest_wait_alert=20)})
    for event in (*SNAPSHOT, joined(NOON + 5, "c1"), joined(NOON + 9, "c2")):
        state.apply(event)
    assert state.board() == {
        "sales": {"waiting": 2, "oldest": NOON + 5, "warn": 10, "alert": 20},
        "support": {"waiting": 0, "oldest": None, "warn": 30, "alert": 60},
    }
    state.apply(QueueEvent(K.CALLER_LEFT, NOON + 31, queue="sales", linkedid="c1"))
    assert state.board()["sales"] == {"waiting": 1, "oldest": NOON + 9, "warn": 10,
                                                              "alert": 20}


async def test_the_wall_service_tells_desks_the_board_only_when_it_changes(sessions: sessionmaker[Session]) -> None:
    bus = MemoryBus()
    wall = WallService(sessions, bus)
    desks = await bus.subscribe(BOARD_TOPIC)
    await (await wall.start()).close()
    for event in SNAPSHOT:
        wall.state.apply(event)

    await wall.tell_board()
    first = desks.get_nowait()
    assert first == {"type": "board", "queues": {"sales": {"waiting": 0, "oldest": None, "warn": 30, "alert": 60},
                                                 "support": {"waiting": 0, "oldest": None, "warn": 30, "alert": 60}}}
    wall.state.apply(QueueEvent(K.AGENT_CONNECTED, NOON + 5, queue="sales", interface=A, linkedid="t1"))
    await wall.tell_board()  # a call is talked, nobody waits: nothing new for the desks
    with pytest.raises(asyncio.QueueEmpty):
        desks.get_nowait()
    wall.state.apply(joined(NOON + 6, "c1", "support"))
    await wall.tell_board()
    told = desks.get_nowait()
    assert told["queues"]["support"] == {"waiting": 1, "oldest": NOON + 6, "warn": 30, "alert": 60}
    assert await kept_board(bus) == told  # for a desk that connects now
    await desks.close()
