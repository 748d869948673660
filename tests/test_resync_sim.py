"""What a bridge learns from CoreShowChannels about calls that changed while it was not connected
(an AMI drop, or a takeover by a standby): the queue, an answer, a caller gone from the queue.
The PBX simulator speaks real AMI; the bridge's events are collected through its hook."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ami_peer import FakeAsterisk, frame
from sqlalchemy import select

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.pbx_sim.server import PbxSimulator
from callcard.runtime import start_stack, stop_stack
from callcard.settings import Settings
from crm_core.db import make_engine, make_sessionmaker
from crm_core.migrate import upgrade
from crm_core.models import Call

K = CallEventKind
OP1 = "Local/101@agents/n"


@pytest.fixture
async def sim() -> AsyncIterator[PbxSimulator]:
    server = PbxSimulator(PbxConfig(queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)),),
                                    agents={OP1: AgentBehaviour(answer_after=None, talk=60.0)}))
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


class Watched:
    """A bridge running against the simulator, its events kept in order."""

    def __init__(self, sim: PbxSimulator, backoff: float) -> None:
        self.events: list[CallEvent] = []
        self.bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), MemoryBus(),
                             on_event=self.events.append, min_backoff=backoff)
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self.bridge.run(self.stop))

    def of(self, linkedid: str) -> list[CallEvent]:
        return [e for e in self.events if e.linkedid == linkedid]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


async def until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_an_answer_made_while_disconnected_is_learnt_at_the_resync(sim: PbxSimulator) -> None:
    watched = Watched(sim, backoff=0.5)
    try:
        await until(watched.bridge.client.connected.is_set, "login")
        linkedid = await sim.place_call("+73512223344", "Ivan", queue="sales", patience=60)
        await until(lambda: any(e.kind is K.RINGING for e in watched.of(linkedid)), "the ring")
        sim.drop_connections()
        await sim.answer(OP1)  # while the bridge waits to reconnect
        await until(lambda: any(e.kind is K.ANSWERED for e in watched.of(linkedid)), "the answer learnt")
        answered = next(e for e in watched.of(linkedid) if e.kind is K.ANSWERED)
        assert (answered.interface, answered.queue) == ("Local/101@agents", "sales")
        assert watched.bridge.tracker.agent_channel(linkedid)  # a transfer could start from it
        await sim.hangup_agent(OP1)
        await until(lambda: any(e.kind is K.ENDED for e in watched.of(linkedid)), "the end")
        assert watched.of(linkedid)[-1].outcome is Outcome.ANSWERED
    finally:
        await watched.close()


async def test_a_bridge_that_starts_mid_call_knows_its_queue_and_answer(sim: PbxSimulator) -> None:
    talking = await sim.place_call("+73512223344", "Ivan", queue="sales", patience=60)
    await sim.answer(OP1)
    waiting = await sim.place_call("+73515556677", "", queue="sales", patience=60)
    watched = Watched(sim, backoff=0.05)  # a standby taking over
    try:
        await until(lambda: bool(watched.of(talking)) and bool(watched.of(waiting)), "both calls adopted")
        assert [(e.kind, e.queue, e.interface) for e in watched.of(talking)] == [
            (K.OFFERED, "sales", ""), (K.ANSWERED, "sales", "Local/101@agents")]
        assert [(e.kind, e.queue) for e in watched.of(waiting)] == [(K.OFFERED, "sales")]
    finally:
        await watched.close()


async def test_a_caller_who_left_the_queue_while_disconnected_is_abandoned(sim: PbxSimulator) -> None:
    watched = Watched(sim, backoff=1.5)
    try:
        await until(watched.bridge.client.connected.is_set, "login")
        linkedid = await sim.place_call("+73512223344", "Ivan", queue="sales", patience=0.5)
        await until(lambda: bool(watched.of(linkedid)), "the call")
        sim.drop_connections()
        await until(lambda: not sim.snapshot().calls, "the caller to give up")
        await until(lambda: any(e.kind is K.ENDED for e in watched.of(linkedid)), "the end at the resync")
        ended = watched.of(linkedid)[-1]
        assert (ended.kind, ended.outcome, ended.queue) == (K.ENDED, Outcome.ABANDONED, "sales")
    finally:
        await watched.close()


def _channel(uniqueid: str, channel: str, application: str, data: str = "", bridge: str = "") -> dict[str, str]:
    return {"Event": "CoreShowChannel", "Channel": channel, "ChannelState": "6", "CallerIDNum": "+73511234567",
            "Uniqueid": uniqueid, "Linkedid": "1.0", "Application": application, "ApplicationData": data,
            "BridgeId": bridge}


async def test_events_that_arrive_while_the_snapshot_is_taken_count_after_it() -> None:
    """After CoreShowChannels and before QueueStatus's reply, the operator answers one call and a
    second call arrives: neither is lost to the snapshot, which does not show them yet."""
    peer = await FakeAsterisk().start()
    peer.list_items["CoreShowChannels"] = [
        _channel("1.0", "Local/s@inbound-00000000;1", "Wait", "120"),
        _channel("1.1", "Local/s@inbound-00000000;2", "Queue", "sales,tT"),
        _channel("1.2", "Local/101@agents-00000001;1", "AppQueue", "(Outgoing Line)"),
    ]
    peer.before_list["QueueStatus"] = frame(
        ("Event", "AgentConnect"), ("Channel", "Local/s@inbound-00000000;2"), ("Uniqueid", "1.1"),
        ("Linkedid", "1.0"), ("CallerIDNum", "+73511234567"), ("DestChannel", "Local/101@agents-00000001;1"),
        ("DestUniqueid", "1.2"), ("Queue", "sales"), ("Interface", "Local/101@agents/n"),
        ("MemberName", "Operator 101"), ("HoldTime", "4"),
    ) + frame(
        ("Event", "Newchannel"), ("Channel", "Local/s@inbound-00000002;1"), ("Uniqueid", "2.0"),
        ("Linkedid", "2.0"), ("CallerIDNum", "+73517654321"), ("Exten", "s"),
    ) + frame(
        ("Event", "QueueCallerJoin"), ("Channel", "Local/s@inbound-00000002;1"), ("Uniqueid", "2.0"),
        ("Linkedid", "2.0"), ("CallerIDNum", "+73517654321"), ("Queue", "sales"), ("Position", "1"),
    )
    events: list[CallEvent] = []
    bridge = Bridge(Settings(ami_port=peer.port, ami_action_timeout=2.0), MemoryBus(), on_event=events.append)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    try:
        await until(lambda: any(e.linkedid == "2.0" for e in events), "the second call")
        assert [(e.kind, e.linkedid, e.interface, e.wait_seconds) for e in events] == [
            (K.OFFERED, "1.0", "", None),
            (K.ANSWERED, "1.0", "Local/101@agents", 4),
            (K.OFFERED, "2.0", "", None),
        ]
        assert sorted(bridge.tracker.active_calls) == ["1.0", "2.0"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await peer.close()


async def test_calls_a_stopped_run_left_open_end_when_asterisk_no_longer_has_them(
        sim: PbxSimulator, tmp_path: Path) -> None:
    """`callcard serve` killed mid-call, started again: the call log's open calls that Asterisk
    does not have any more are ended (a caller waiting in the queue: abandoned; an answered call:
    answered) when the log last heard of anything, not 3 minutes later at the restart; a call
    Asterisk still has stays open and is followed on."""
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    live = await sim.place_call("83517654321", queue="sales", patience=120)
    started = datetime.now(UTC) - timedelta(minutes=3)
    with sessions.begin() as s:
        s.add_all([
            Call(linkedid="gone.1", started_at=started, queue="sales", caller_raw="83517654321", status="ringing"),
            Call(linkedid="gone.2", started_at=started, queue="sales", caller_raw="83517654321", status="talking",
                 answered_at=started + timedelta(seconds=5), wait_seconds=5),
            Call(linkedid=live, started_at=started, queue="sales", caller_raw="83517654321", status="ringing"),
            Call(linkedid="ancient.1", started_at=started - timedelta(days=3), queue="sales", caller_raw="83517654321",
                 status="talking", answered_at=started - timedelta(days=3), ended_at=started + timedelta(hours=1)),
        ])
    stack = await start_stack(Settings(database_url=url, ami_port=sim.port, ami_action_timeout=2.0,
                                       agi_port=0, http_port=0), with_web=False)

    def rows() -> dict[str, tuple[str, str | None, int | None, int | None]]:
        with sessions() as s:
            return {c.linkedid: (c.status, c.outcome, c.wait_seconds, c.talk_seconds) for c in s.scalars(select(Call))}

    try:
        await until(lambda: rows()["gone.2"][0] == "ended", "the open calls to end")
        found = rows()
        assert found["gone.1"] == ("ended", "abandoned", 5, None)  # ended at gone.2's answer, the last news
        assert found["gone.2"] == ("ended", "answered", 5, 0)
        assert found[live][:2] == ("ringing", None)  # Asterisk still has it
        assert found["ancient.1"][:2] == ("talking", None)  # older than RECENT: not looked at, nor its end time
    finally:
        await stop_stack(stack)
        engine.dispose()
