"""Asterisk's truth about agents, end to end on SQLite and PostgreSQL: PBX simulator -> real Bridge
(AMI over TCP) -> QueueTracker -> WallService -> agent_queues / agent_pauses and each agent's desk.
What the supervisor page lists (`agents_overview`) follows the PBX with no supervisor action, each
desk hears its own status, and today's pause time is rebuilt from the stored intervals after a
restart."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.service import Bridge
from callcard.bus import MemoryBus, desk_topic
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from callcard.settings import Settings
from crm_core import agents
from crm_core.models import Department, Operator
from routing.wall import WallService, kept_desk_status

OPS = [f"Local/{ext}@agents/n" for ext in (101, 102, 103)]


@dataclass
class Stack:
    sim: PbxSimulator
    bridge: Bridge
    wall: WallService
    ids: dict[str, int]


def listed(sessions: sessionmaker[Session]) -> dict[str, tuple[bool, list[tuple[str, int, bool, str]]]]:
    """login -> (logged in, [(queue, penalty, paused, reason)]) as the supervisor page shows them."""
    with sessions() as s:
        return {v.login: (v.logged_in, [(m.queue, m.penalty, m.paused, m.reason) for m in v.queues])
                for v in agents.agents_overview(s)}


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
async def stack(sessions: sessionmaker[Session]) -> AsyncIterator[Stack]:
    with sessions.begin() as s:
        support = Department(code="support", name="Support", queue="support")
        people = {f"op{n}": Operator(login=f"op{n}", name=f"Operator {n}", interface=f"Local/{n}@agents",
                                     password_hash="x", departments=[support]) for n in (101, 102, 103)}
        s.add_all(people.values())
        s.flush()
        ids = {login: op.id for login, op in people.items()}
    config = PbxConfig(
        queues=(QueueConfig("sales", (MemberConfig(OPS[0], "Operator 101", penalty=2), MemberConfig(OPS[1], "Operator 102"))),
                QueueConfig("support", (MemberConfig(OPS[2], "Operator 103"),))),
        agents={op: AgentBehaviour(answer_after=None) for op in OPS},
    )
    sim = PbxSimulator(config)
    await sim.start("127.0.0.1", 0)
    bus, stop = MemoryBus(), asyncio.Event()
    wall = WallService(sessions, bus, min_interval=0.05)
    wall_task = asyncio.create_task(wall.run(stop))
    await asyncio.sleep(0.05)
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus)
    bridge_task = asyncio.create_task(bridge.run(stop))
    await asyncio.wait_for(bridge.client.connected.wait(), 10)
    yield Stack(sim, bridge, wall, ids)
    stop.set()
    await asyncio.wait_for(asyncio.gather(wall_task, bridge_task), 10)
    await sim.stop()


async def test_supervisor_page_lists_asterisks_members_without_any_action(
    stack: Stack, sessions: sessionmaker[Session]
) -> None:
    """Their department says support; Asterisk (QueueStatus after login) says otherwise, and wins."""
    await until(lambda: listed(sessions)["op101"] == (True, [("sales", 2, False, "")]))
    assert listed(sessions)["op102"] == (True, [("sales", 0, False, "")])
    assert listed(sessions)["op103"] == (True, [("support", 0, False, "")])

    door = stack.bridge.commands  # someone acts on the PBX outside callcard's supervisor page
    await door.queue_pause(OPS[2], True, None, "lunch")
    await door.queue_add("support", OPS[0], member_name="Operator 101", state_interface="Local/101@agents", penalty=1)
    await until(lambda: listed(sessions)["op103"] == (True, [("support", 0, True, "lunch")]))
    await until(lambda: listed(sessions)["op101"] == (True, [("sales", 2, False, ""), ("support", 1, False, "")]))
    await door.queue_remove("support", OPS[0])
    await until(lambda: listed(sessions)["op101"] == (True, [("sales", 2, False, "")]))

    await door.queue_pause(OPS[2], True, "support", agents.LOGGED_OUT)
    await until(lambda: listed(sessions)["op103"] == (False, [("support", 0, True, agents.LOGGED_OUT)]))


async def test_pause_time_is_rebuilt_after_a_restart(stack: Stack, sessions: sessionmaker[Session]) -> None:
    await until(lambda: listed(sessions)["op103"][1] == [("support", 0, False, "")])
    await stack.bridge.commands.queue_pause(OPS[2], True, None, "lunch")

    def open_pause() -> list[agents.AgentPause]:
        with sessions() as s:
            return list(s.scalars(select(agents.AgentPause).where(agents.AgentPause.ended_at.is_(None))))

    await until(lambda: len(open_pause()) == 1)
    started = open_pause()[0].started_at.timestamp()
    await stack.bridge.commands.queue_pause(OPS[2], False, None, "")
    await until(lambda: open_pause() == [])
    await stack.bridge.commands.queue_pause(OPS[2], True, None, "training")
    await until(lambda: len(open_pause()) == 1)
    with sessions() as s:
        rows = s.scalars(select(agents.AgentPause).order_by(agents.AgentPause.id)).all()
        closed = rows[0].ended_at.timestamp() - rows[0].started_at.timestamp()
        reopened = rows[1].started_at.timestamp()
        assert [(r.interface, r.reason) for r in rows] == [("Local/103@agents", "lunch"),
                                                            ("Local/103@agents", "training")]
        op103 = s.scalar(select(Operator.id).where(Operator.login == "op103"))
        assert [r.operator_id for r in rows] == [op103, op103]  # whose device it was, kept with the pause
    assert started == pytest.approx(rows[0].started_at.timestamp())

    restarted = WallService(sessions, MemoryBus())  # a new process: only the database is shared
    sub = await restarted.start()
    await sub.close()
    agent = next(a for a in restarted.state.figures(reopened + 100)["agents"] if a["interface"] == "Local/103@agents")
    assert agent["pause_today"] == round(closed + 100)


async def test_each_desk_hears_its_own_status_and_a_late_desk_reads_it(stack: Stack) -> None:
    """Someone pauses op103 on the PBX: op103's desk topic carries it, op101's does not; a desk that
    connects afterwards reads the kept status."""
    bus = stack.wall.bus
    mine, other = await bus.subscribe(desk_topic(stack.ids["op103"])), await bus.subscribe(desk_topic(stack.ids["op101"]))
    try:
        first = await asyncio.wait_for(mine.get(), 10)  # the first resync tells every desk
        assert (first["type"], first["state"], first["queues"]) == ("status", "ready", ["support"])
        await asyncio.wait_for(other.get(), 10)
        before = time.time()
        await stack.bridge.commands.queue_pause(OPS[2], True, None, "lunch")
        paused = await asyncio.wait_for(mine.get(), 10)
        assert {k: paused[k] for k in ("state", "reason", "paused_in", "queues")} == \
            {"state": "paused", "reason": "lunch", "paused_in": ["support"], "queues": ["support"]}
        assert before - 1 <= paused["at"] <= time.time()
        await stack.bridge.commands.queue_pause(OPS[2], False, None, "")
        assert (await asyncio.wait_for(mine.get(), 10))["state"] == "ready"
        await stack.bridge.commands.queue_pause(OPS[2], True, "support", agents.LOGGED_OUT)
        out = await asyncio.wait_for(mine.get(), 10)
        assert (out["state"], out["reason"]) == ("paused", agents.LOGGED_OUT)
        assert await kept_desk_status(bus, stack.ids["op103"]) == out
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(other.get(), 0.3)
    finally:
        await mine.close()
        await other.close()
