"""The wall against the PBX simulator over real TCP, through a dropped AMI connection.

While the bridge is cut off, calls change (an answer, a hang-up, a caller giving up, a pause,
a new caller); the events are lost for good. After the reconnect the login resync alone must
bring the wall back to the simulator's truth: no ghost callers or calls, every agent right.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from ami_bridge.service import Bridge
from callcard.bus import Bus
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig, Snapshot
from callcard.pbx_sim.server import PbxSimulator
from callcard.settings import Settings
from crm_core.db import make_engine, make_sessionmaker
from crm_core.models import Base
from routing.wall import WallService, kept_wall

OPS = [f"Local/{ext}@agents/n" for ext in (101, 102, 103)]


def config() -> PbxConfig:
    return PbxConfig(
        queues=(QueueConfig("sales", (MemberConfig(OPS[0], "Operator 101"), MemberConfig(OPS[1], "Operator 102"))),
                QueueConfig("support", (MemberConfig(OPS[2], "Operator 103"),))),
        agents={op: AgentBehaviour(answer_after=None) for op in OPS},
    )


def truth(snap: Snapshot) -> dict[str, Any]:
    """What the wall must show, from the simulator's own state."""
    busy = {c.agent.removesuffix("/n"): ("on_call" if c.state == "talking" else "ringing", c.linkedid)
            for c in snap.calls if c.agent and c.state in ("talking", "ringing")}
    agents: dict[str, tuple[str, str]] = {}
    for m in snap.members:
        iface = m.interface.removesuffix("/n")
        agents[iface] = busy.get(iface) or (("paused", m.reason) if m.paused else ("available", ""))
    return {"waiting": {q: sorted(ids) for q, ids in snap.waiting.items()}, "agents": agents}


def seen(wall: dict[str, Any] | None) -> dict[str, Any]:
    if wall is None:
        return {}
    agents = {}
    for a in wall["agents"]:
        if a["state"] == "on_call":
            agents[a["interface"]] = (a["state"], a["call"]["linkedid"])
        elif a["state"] == "ringing":
            agents[a["interface"]] = (a["state"], a["rings"][0]["linkedid"])
        else:
            agents[a["interface"]] = (a["state"], a["reason"])
    return {"waiting": {q["name"]: sorted(w["linkedid"] for w in q["waiting"]) for q in wall["queues"]},
            "agents": agents}


async def until(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def stack(bus: Bus, tmp_path: Path) -> AsyncIterator[tuple[PbxSimulator, Bridge, WallService]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'wall.db'}")
    Base.metadata.create_all(engine)
    sim = PbxSimulator(config())
    await sim.start("127.0.0.1", 0)
    bridge = Bridge(Settings(ami_port=sim.port), bus, min_backoff=0.2)
    wall = WallService(make_sessionmaker(engine), bus, min_interval=0.05)
    stop = asyncio.Event()
    wall_task = asyncio.create_task(wall.run(stop))
    await asyncio.sleep(0.05)  # subscribed before the bridge's first event
    bridge_task = asyncio.create_task(bridge.run(stop))
    await asyncio.wait_for(bridge.client.connected.wait(), 15)
    yield sim, bridge, wall
    stop.set()
    await asyncio.wait_for(asyncio.gather(wall_task, bridge_task), 15)
    await sim.stop()
    engine.dispose()


async def test_wall_equals_simulator_truth_after_a_dropped_connection(
    stack: tuple[PbxSimulator, Bridge, WallService], bus: Bus
) -> None:
    sim, bridge, _ = stack

    async def matches() -> bool:
        return seen(await kept_wall(bus)) == truth(sim.snapshot())

    a = await sim.place_call("+73510000001", "A", queue="sales", patience=60)
    await sim.place_call("+73510000002", "B", queue="sales", patience=60)
    c = await sim.place_call("+73510000003", "C", queue="support", patience=60)
    await sim.answer(next(x.agent for x in sim.snapshot().calls if x.linkedid == a))  # type: ignore[arg-type]
    await until(matches)
    before = seen(await kept_wall(bus))
    assert sorted(state for state, _ in before["agents"].values()) == ["on_call", "ringing", "ringing"]

    sim.drop_connections()  # from here until the reconnect every event is lost
    calls = sim.snapshot().calls
    talking = next(x.agent for x in calls if x.state == "talking")
    other = next(x.agent for x in calls if x.state == "ringing" and x.queue == "sales")
    assert talking and other
    await sim.answer(other)  # the second sales call is answered
    await sim.hangup_agent(talking)  # the first one ends
    caller_c = next(x.channel for x in sim.snapshot().calls if x.linkedid == c)
    sim.pbx.hangup(sim.now(), caller_c, 16)  # the support caller gives up while its member rings
    sim.pbx.pause(sim.now(), OPS[2], True, None, "lunch")
    d = await sim.place_call("+73510000004", "D", queue="support", patience=60)
    logins = bridge.client.logins

    async def reconnected() -> bool:
        return bridge.client.logins > logins

    await until(reconnected)
    await until(matches)
    after = seen(await kept_wall(bus))
    assert after["waiting"] == {"sales": [], "support": [d]}  # C is no ghost, D (joined unseen) is there
    assert after["agents"][talking.removesuffix("/n")] == ("available", "")  # no ghost call
    assert after["agents"][other.removesuffix("/n")][0] == "on_call"
    assert after["agents"][OPS[2].removesuffix("/n")] == ("paused", "lunch")

