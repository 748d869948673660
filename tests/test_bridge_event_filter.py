"""The bridge asks Asterisk only for the events its trackers read (AMI `Filter`), and still logs
every call whole: checked against the trackers' own tables and end to end on the simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import AmiMessage
from ami_bridge.queue_tracker import QUEUE_EVENTS, QueueTracker
from ami_bridge.service import BRIDGE_EVENTS, Bridge
from ami_bridge.tracker import _ADOPTING_EVENTS, CALL_EVENTS, CallTracker
from callcard.bus import MemoryBus
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from callcard.settings import Settings

OP1 = "Local/101@agents/n"


def test_the_filter_names_every_event_a_tracker_reads() -> None:
    """A handler missing from the filter would never be called against a real Asterisk."""
    assert {name.lower() for name in CALL_EVENTS} == set(CallTracker()._handlers) | _ADOPTING_EVENTS
    assert {name.lower() for name in QUEUE_EVENTS} == set(QueueTracker()._handlers)
    assert CALL_EVENTS | QUEUE_EVENTS < BRIDGE_EVENTS and "Shutdown" in BRIDGE_EVENTS


@pytest.fixture
async def sim() -> AsyncIterator[PbxSimulator]:
    server = PbxSimulator(PbxConfig(queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)),),
                                    agents={OP1: AgentBehaviour(answer_after=0.2, talk=0.3)}))
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


async def test_a_filtered_bridge_reads_only_what_it_asked_for_and_logs_the_call_whole(sim: PbxSimulator) -> None:
    events: list[CallEvent] = []
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), MemoryBus(), on_event=events.append)
    read: list[AmiMessage] = []
    bridge.client.register_event("*", read.append)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        linkedid = await sim.place_call("+73512000001", "Пётр", queue="sales")
        deadline = time.monotonic() + 5
        while not any(e.kind is CallEventKind.ENDED for e in events):
            assert time.monotonic() < deadline, f"no ENDED; got {[e.kind for e in events]}"
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    names = {msg.event for msg in read}
    assert names <= BRIDGE_EVENTS, names - BRIDGE_EVENTS
    assert "CEL" not in names and "NewConnectedLine" not in names
    kinds = [e.kind for e in events if e.linkedid == linkedid]
    assert kinds[:3] == [CallEventKind.OFFERED, CallEventKind.RINGING, CallEventKind.ANSWERED]
    ended = next(e for e in events if e.kind is CallEventKind.ENDED)
    assert ended.outcome is Outcome.ANSWERED and ended.caller_num == "+73512000001" and ended.interface == "Local/101@agents"
