"""Recorded Asterisk bytes over real TCP -> bridge -> bus -> call logger -> Call rows.

The expected rows are what each recording's .md states (caller, queue, operator,
outcome, wait and talk seconds), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ami_peer import FakeAsterisk
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core.call_log import CallLogger
from crm_core.models import Call, Department, Operator


@dataclass(frozen=True)
class Row:
    linkedid: str
    caller_raw: str
    caller_e164: str
    caller_name: str
    queue: str
    department: str | None
    operator: str | None
    outcome: str
    wait: int
    talk: int | None


EXPECTED = {
    "inbound_answered": [
        Row("1795394611.0", "+73511234567", "+73511234567", "Ivan Petrov", "sales", "sales", "op101",
            "answered", 0, 4),
    ],
    "inbound_abandoned": [
        Row("1795394619.4", "83517654321", "+73517654321", "83517654321", "support", "service", None,
            "abandoned", 5, None),
    ],
    "queue_status": [
        Row("1795394676.84", "83512000001", "+73512000001", "83512000001", "support", "service", None,
            "abandoned", 16, None),
        Row("1795394676.86", "83512000002", "+73512000002", "83512000002", "support", "service", None,
            "abandoned", 16, None),
    ],
    "ivr_fastagi": [
        Row("1795394630.8", "+73511234567", "+73511234567", "IVR Caller", "collections", "collections",
            "op104", "answered", 0, 7),
    ],
    "login_failure": [],
}


def _recorded_pbx(sessions: sessionmaker[Session]) -> None:
    """Departments and operators as in the recordings' PBX: queues sales/support/collections, 101..106."""
    with sessions() as s:
        deps = {code: Department(code=code, name=code, queue=queue)
                for code, queue in [("sales", "sales"), ("service", "support"), ("collections", "collections")]}
        s.add_all(deps.values())
        for ext in range(101, 107):
            s.add(Operator(login=f"op{ext}", name=f"Operator {ext}", password_hash="!",
                           interface=f"Local/{ext}@agents"))
        s.commit()


def _rows(sessions: sessionmaker[Session]) -> list[Row]:
    with sessions() as s:
        calls = s.scalars(select(Call).order_by(Call.linkedid)).all()
        return [
            Row(c.linkedid, c.caller_raw, c.caller_e164 or "", c.caller_name, c.queue,
                c.department.code if c.department else None, c.operator.login if c.operator else None,
                c.outcome or "", c.wait_seconds, c.talk_seconds)
            for c in calls
        ]


async def _until_logged(sessions: sessionmaker[Session], count: int, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            with sessions() as s:
                ended = s.scalars(select(Call).where(Call.status == "ended")).all()
            if len(ended) >= count:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def peer() -> AsyncIterator[FakeAsterisk]:
    server = await FakeAsterisk().start()
    yield server
    await server.close()


async def _replay(data: bytes, peer: FakeAsterisk, sessions: sessionmaker[Session], calls: int,
                  *, bytewise: bool = False) -> None:
    bus = MemoryBus()
    stop = asyncio.Event()
    logger = asyncio.create_task(CallLogger(sessions, "RU").run(bus, stop))
    await asyncio.sleep(0)  # the logger subscribes before the first event
    bridge = Bridge(Settings(ami_port=peer.port, ami_action_timeout=2.0), bus)
    runner = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        await peer.push(data, bytewise=bytewise)
        await _until_logged(sessions, calls)
        await asyncio.sleep(0.2)  # nothing more may arrive: a duplicate would show in the rows
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(runner, logger), 5)


@pytest.mark.parametrize("trace", sorted(EXPECTED))
async def test_recording_replayed_over_tcp_logs_the_calls_it_describes(
    trace: str, traces_dir: Path, peer: FakeAsterisk, sessions: sessionmaker[Session]
) -> None:
    _recorded_pbx(sessions)
    await _replay((traces_dir / f"{trace}.ami").read_bytes(), peer, sessions, len(EXPECTED[trace]))
    assert _rows(sessions) == EXPECTED[trace]


async def test_answered_recording_split_at_every_byte_logs_the_same_call(
    traces_dir: Path, peer: FakeAsterisk, sessions: sessionmaker[Session]
) -> None:
    """Every chunk boundary at once: the peer writes one byte per TCP segment."""
    _recorded_pbx(sessions)
    await _replay((traces_dir / "inbound_answered.ami").read_bytes(), peer, sessions, 1, bytewise=True)
    assert _rows(sessions) == EXPECTED["inbound_answered"]


async def test_replaying_a_recording_twice_never_duplicates_a_call(
    traces_dir: Path, peer: FakeAsterisk, sessions: sessionmaker[Session]
) -> None:
    _recorded_pbx(sessions)
    data = (traces_dir / "queue_status.ami").read_bytes()
    await _replay(data, peer, sessions, 2)
    await _replay(data, peer, sessions, 2)
    assert _rows(sessions) == EXPECTED["queue_status"]
