"""Routing on real calls: the PBX simulator runs AGI() against the FastAGI IVR over TCP, the IVR
asks routing (with the queues' live load read by the bridge's AMI session from the same
simulator), and the bridge's tracker turns what the simulator does into call events.

Personal manager first (a plain Dial, DialBegin/DialEnd, no AgentCalled) then the department's
queue; VIP priority ahead of waiting callers; debtors to collections; blocked numbers hung up;
overflow on callers waiting becomes a callback request, also for an unknown caller; a caller rerouted
to a department that is closed now gets that department's out-of-hours handling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from test_pbx_sim import Client, event_name, first

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim import PbxSimulator
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.settings import Settings
from crm_core.models import Call, ClientPhone, Department, Operator, Phone, Request
from crm_core.models import Client as CrmClient
from ivr import service as ivr_service
from ivr.server import FastAgiServer, IvrApplication
from ivr.service import seed_default_menu
from routing import service as routing
from routing.inbox.followups import FollowUps
from routing.load import LiveQueueLoad
from routing.models import RoutingSetting

SCALE = 25.0
WEDNESDAY_NOON = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
OP1, OP2, OP4 = "Local/101@agents/n", "Local/102@agents/n", "Local/104@agents/n"
MANAGED = "+73511234567"  # VIP, personal manager op1
DEBTOR = "+73512223344"
BLOCKED = "+79990000000"
STRANGER = "+73517654321"
Msg = list[tuple[str, str]]


@dataclass
class Rig:
    sim: PbxSimulator
    ami: Client
    sessions: sessionmaker[Session]
    events: list[CallEvent]

    async def call(self, number: str, dtmf: str = "1", patience: float = 300.0) -> tuple[str, list[Msg]]:
        """An IVR call; AMI messages of that call up to its queue join or the caller's hangup."""
        linkedid = await self.sim.place_call(number, "", patience=patience, ivr=True, dtmf=dtmf)

        def done(msg: Msg) -> bool:
            return first(msg, "Linkedid") == linkedid and (
                event_name(msg) == "QueueCallerJoin"
                or (event_name(msg) == "Hangup" and first(msg, "Channel").startswith("Local/s@inbound")))

        messages = await self.ami.until(done, timeout=10)
        return linkedid, [x for x in messages if first(x, "Linkedid") == linkedid]

    async def ivr_path(self, linkedid: str) -> str:
        """The path the IVR stores on the Call row (it may finish after the hangup is seen)."""
        for _ in range(200):
            with self.sessions() as session:
                path = session.scalar(select(Call.ivr_path).where(Call.linkedid == linkedid))
            if path:
                return path
            await asyncio.sleep(0.02)
        raise AssertionError(f"no ivr_path for {linkedid}")

    async def call_events(self, linkedid: str, kind: CallEventKind) -> list[CallEvent]:
        for _ in range(200):
            found = [e for e in self.events if e.linkedid == linkedid and e.kind is kind]
            if found:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {kind} for {linkedid}: {[e.kind for e in self.events if e.linkedid == linkedid]}")


@pytest.fixture
async def rig(sessions: sessionmaker[Session]) -> AsyncIterator[Rig]:
    with sessions.begin() as session:
        sales = Department(code="sales", name="Продажи", queue="sales")
        session.add_all([sales, Department(code="service", name="Сервис", queue="support"),
                         Department(code="collections", name="Взыскание", queue="collections")])
        op1 = Operator(login="op1", name="Анна", password_hash="-", interface="Local/101@agents",
                       departments=[sales])
        session.add(op1)
        for number, segment, debt, manager in ((MANAGED, "vip", False, op1), (DEBTOR, "standard", True, None)):
            client = CrmClient(name=number, segment=segment, debt_open=debt, manager=manager)
            client.phone_links = [ClientPhone(phone=Phone(e164=number, kind="mobile"))]
            session.add(client)
        session.flush()
        seed_default_menu(session)
        routing.block_number(session, BLOCKED, "spam")
    config = PbxConfig(
        queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"), MemberConfig(OP2, "op2"))),
                QueueConfig("support", ()),
                QueueConfig("collections", (MemberConfig(OP4, "op4"),))),
        agents={OP1: AgentBehaviour(None), OP2: AgentBehaviour(None), OP4: AgentBehaviour(None)},
        time_scale=SCALE,
    )
    sim = PbxSimulator(config)
    await sim.start("127.0.0.1", 0)
    events: list[CallEvent] = []
    bridge = Bridge(Settings(ami_port=sim.port), MemoryBus(), on_event=events.append)
    stop = asyncio.Event()
    running = asyncio.create_task(bridge.run(stop))
    await asyncio.wait_for(bridge.client.connected.wait(), 5)
    agi = FastAgiServer(IvrApplication(sessions, clock=lambda: WEDNESDAY_NOON,
                                       load=LiveQueueLoad(bridge.queue_summary)))
    await agi.start("127.0.0.1", 0)
    sim.agi_address = ("127.0.0.1", agi.port)
    ami = await Client.connect(sim)
    await ami.login()
    yield Rig(sim, ami, sessions, events)
    ami.close()
    stop.set()
    await running
    await agi.stop()
    await sim.stop()


def var_sets(messages: list[Msg]) -> dict[str, str]:
    return {first(x, "Variable"): first(x, "Value") for x in messages if event_name(x) == "VarSet"}


async def test_personal_manager_rings_first_then_the_department_queue(rig: Rig) -> None:
    linkedid, messages = await rig.call(MANAGED)
    variables = var_sets(messages)
    assert (variables["MANAGER_IFACE"], variables["MANAGER_RING"]) == ("Local/101@agents", "15")
    assert (variables["QUEUE"], variables["DEPARTMENT"], variables["IVR_PRIORITY"]) == ("sales", "sales", "10")
    names = [event_name(x) for x in messages]
    dials = [first(x, "DestChannel") for x in messages if event_name(x) == "DialBegin"]
    assert dials and dials[0].startswith("Local/101@agents-"), names
    assert "AgentCalled" not in names[:names.index("QueueCallerJoin")]  # a plain Dial, not app_queue
    assert ("DialEnd", "NOANSWER") in [(event_name(x), first(x, "DialStatus")) for x in messages]
    ringing = await rig.call_events(linkedid, CallEventKind.RINGING)
    assert ringing[0].interface == "Local/101@agents"  # the manager's desk pops before the queue
    stopped = await rig.call_events(linkedid, CallEventKind.RING_STOPPED)
    assert stopped[0].interface == "Local/101@agents"
    # then app_queue rings op2 (op1 too, once free): AgentCalled this time
    queue_ring = [e for e in await rig.call_events(linkedid, CallEventKind.RINGING) if e.queue == "sales"]
    assert queue_ring


async def test_the_manager_answering_takes_the_call_without_the_queue(rig: Rig) -> None:
    linkedid = await rig.sim.place_call(MANAGED, "", patience=300, ivr=True, dtmf="1")
    await rig.call_events(linkedid, CallEventKind.RINGING)
    await rig.sim.answer(OP1)
    answered = await rig.call_events(linkedid, CallEventKind.ANSWERED)
    assert answered[0].interface == "Local/101@agents"
    assert rig.sim.snapshot().waiting["sales"] == []


async def test_vip_priority_puts_the_caller_ahead_of_waiting_callers(rig: Rig) -> None:
    await rig.sim.place_call("+73510000001", "", queue="sales", patience=300)
    await rig.sim.place_call("+73510000002", "", queue="sales", patience=300)
    rig.sim.set_agent(OP1, None)
    linkedid, messages = await rig.call(MANAGED)  # the manager rings out (15 s) first
    join = next(x for x in messages if event_name(x) == "QueueCallerJoin")
    assert (first(join, "Position"), first(join, "Count")) == ("1", "3")
    assert rig.sim.snapshot().waiting["sales"][0] == linkedid


async def test_a_debtor_choosing_sales_reaches_collections(rig: Rig) -> None:
    linkedid, messages = await rig.call(DEBTOR, dtmf="1")
    assert next(first(x, "Queue") for x in messages if event_name(x) == "QueueCallerJoin") == "collections"
    assert var_sets(messages)["DEPARTMENT"] == "collections"


async def test_a_blocked_number_is_hung_up_before_the_menu(rig: Rig) -> None:
    linkedid, messages = await rig.call(BLOCKED)
    commands = [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"]
    assert not any(c.startswith("GET DATA") for c in commands)
    assert "HANGUP" in commands and "QueueCallerJoin" not in [event_name(x) for x in messages]
    assert await rig.ivr_path(linkedid) == "rejected"
    end = await rig.call_events(linkedid, CallEventKind.ENDED)
    assert [(e.caller_num, e.outcome) for e in end] == [(BLOCKED, Outcome.MISSED)]
    assert not FollowUps(rig.sessions).apply(end[0])  # turned away: nobody rings a spammer back
    with rig.sessions() as session:
        assert session.scalars(select(Request)).all() == []


async def test_overflow_on_callers_waiting_offers_an_unknown_caller_a_callback(rig: Rig) -> None:
    with rig.sessions.begin() as session:
        session.add(RoutingSetting(key="overflow_callers_waiting", value="2"))
    await rig.sim.place_call("+73510000001", "", queue="sales", patience=300)
    await rig.sim.place_call("+73510000002", "", queue="sales", patience=300)
    rig.sim.set_agent(OP1, None)
    linkedid, messages = await rig.call(STRANGER, dtmf="1")
    assert "QueueCallerJoin" not in [event_name(x) for x in messages]
    for _ in range(100):
        with rig.sessions() as session:
            request = session.scalar(select(Request).where(Request.linkedid == linkedid))
        if request is not None:
            break
        await asyncio.sleep(0.02)
    assert request is not None
    assert (request.kind, request.client_id, request.contact, request.status) == (
        "callback", None, STRANGER, "open")
    assert request.due_at is not None
    assert await rig.ivr_path(linkedid) == "main>1>sales>overflow>callback"
    assert [e.caller_num for e in await rig.call_events(linkedid, CallEventKind.ENDED)] == [STRANGER]


@pytest.mark.parametrize("after_hours", ["callback", "voicemail"])
async def test_a_debtor_rerouted_to_closed_collections_gets_its_out_of_hours_handling(
    rig: Rig, after_hours: str
) -> None:
    with rig.sessions.begin() as session:  # sales is open at noon; collections takes no calls today
        ivr_service.save_schedule(session, "collections", "Europe/Moscow", after_hours,
                                  "callcard/ivr-closed-collections", {})
    linkedid, messages = await rig.call(DEBTOR, dtmf="1")
    assert "QueueCallerJoin" not in [event_name(x) for x in messages]
    assert await rig.ivr_path(linkedid) == f"main>1>sales>collections>{after_hours}"
    commands = [first(x, "Command") for x in messages if event_name(x) == "AGIExecStart"]
    prompt = "callcard/ivr-callback" if after_hours == "callback" else "callcard/ivr-closed-collections"
    assert f'STREAM FILE {prompt} ""' in commands and "HANGUP" in commands
    with rig.sessions() as session:
        request = session.scalar(select(Request).where(Request.linkedid == linkedid))
        collections = session.scalar(select(Department.id).where(Department.code == "collections"))
    if after_hours == "voicemail":
        assert request is None
    else:
        assert request is not None
        assert (request.kind, request.department_id, request.contact) == ("callback", collections, DEBTOR)
