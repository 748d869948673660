"""Transfers end to end on SQLite and PostgreSQL: the desk's HTTP API -> real Bridge (AMI over
TCP) -> PBX simulator -> tracker -> call logger. Attended (Atxfer: the operator consults the
colleague, then hangs up to hand the caller over, or gets the caller back when the colleague does
not answer), a blind transfer to a colleague who does not answer (back to the queue), and the
refusals: a call nobody has answered yet, a colleague busy on another call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from web_login import alog_in

from agent_desk.app import create_app
from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import AmiMessage
from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim import PbxSimulator
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, PbxConfig, QueueConfig
from callcard.settings import Settings
from crm_core.call_log import CallLogger
from crm_core.models import Call, Department, Operator
from crm_core.passwords import hash_password

OP1, OP2 = "Local/101@agents/n", "Local/102@agents/n"
PHONE1, PHONE2 = "Local/101@agents", "Local/102@agents"
PASSWORD = "pw-demo-1"
SCALE = 25.0


@dataclass
class Live:
    http: httpx.AsyncClient
    sim: PbxSimulator
    sessions: sessionmaker[Session]
    ids: dict[str, int]
    events: list[CallEvent]
    ami: list[AmiMessage]
    csrf: str = ""

    async def transfer(self, linkedid: str, body: dict) -> httpx.Response:
        return await self.http.post(f"/api/calls/{linkedid}/transfer", json=body,
                                    headers={"X-CSRF-Token": self.csrf})

    async def until(self, what: str, check: Callable[[], object], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)
        assert check(), what

    def kinds(self, linkedid: str) -> list[tuple[str, str]]:
        return [(e.kind.value, e.interface) for e in self.events if e.linkedid == linkedid]

    def call_row(self, linkedid: str) -> Call | None:
        with self.sessions() as s:
            call = s.scalar(select(Call).where(Call.linkedid == linkedid))
            if call is not None:
                s.expunge(call)
            return call

    def operator_of(self, linkedid: str) -> str | None:
        with self.sessions() as s:
            return s.scalar(select(Operator.login).join(Call, Call.operator_id == Operator.id)
                            .where(Call.linkedid == linkedid))

    async def answered_call(self, number: str, queue: str = "sales", interface: str = OP1) -> str:
        """A call the operator on `interface` talks on, logged as talking."""
        linkedid = await self.sim.place_call(number, "Ivan Petrov", queue=queue, patience=600)
        await self.until("ringing", lambda: ("ringing", interface.removesuffix("/n")) in self.kinds(linkedid))
        await self.sim.answer(interface)
        await self.until("logged as talking", lambda: (row := self.call_row(linkedid)) and row.status == "talking")
        return linkedid


def _people(sessions: sessionmaker[Session]) -> dict[str, int]:
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        sales = Department(code="sales", name="Продажи", queue="sales")
        s.add(Department(code="service", name="Сервис", queue="support"))
        rows = {
            "op1": Operator(login="op1", name="Анна", interface=PHONE1, password_hash=pw, departments=[sales]),
            "op2": Operator(login="op2", name="Дмитрий", interface=PHONE2, password_hash=pw),
        }
        s.add_all(rows.values())
        s.flush()
        return {login: row.id for login, row in rows.items()}


@pytest.fixture
async def live(sessions: sessionmaker[Session]) -> AsyncIterator[Live]:
    """sales rings op1, support op2; both pick up only when the test says so and talk until hung up."""
    ids = _people(sessions)
    config = PbxConfig(
        queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)), QueueConfig("support", (MemberConfig(OP2, "op2"),))),
        agents={OP1: AgentBehaviour(None, 3600.0), OP2: AgentBehaviour(None, 3600.0)},
        time_scale=SCALE,
    )
    sim = PbxSimulator(config)
    await sim.start("127.0.0.1", 0)
    bus, stop = MemoryBus(), asyncio.Event()
    logger = asyncio.create_task(CallLogger(sessions).run(bus, stop))
    await asyncio.sleep(0)
    events: list[CallEvent] = []
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now, on_event=events.append)
    ami: list[AmiMessage] = []
    bridge.client.register_event("*", ami.append)
    runner = asyncio.create_task(bridge.run(stop))
    app = create_app(Settings(secret_key="t", default_language="en"), sessions, bus, transferrer=bridge)
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk",
                                     follow_redirects=True) as http:
            state = Live(http, sim, sessions, ids, events, ami)
            state.csrf = await alog_in(http, "op1", PASSWORD)
            yield state
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(runner, logger), 5)
        await sim.stop()


async def test_attended_transfer_consults_the_colleague_then_hands_the_caller_over(live: Live) -> None:
    linkedid = await live.answered_call("+73511234567")
    answer = await live.transfer(linkedid, {"operator_id": live.ids["op2"], "attended": True})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"linkedid": linkedid, "department": "Дмитрий", "queue": ""}
    await live.until("the colleague's desk rings", lambda: ("ringing", PHONE2) in live.kinds(linkedid))
    [call] = live.sim.snapshot().calls
    assert (call.state, call.agent) == ("talking", OP1)  # the caller waits on hold, still op1's

    await live.sim.answer(OP2)  # the consultation: op1 and op2 talk, the caller hears music
    await live.sim.hangup_agent(OP1)  # op1 hangs up: the caller is handed over
    await live.until("answered by op2", lambda: ("answered", PHONE2) in live.kinds(linkedid))
    assert live.kinds(linkedid)[-3:] == [("transferred", PHONE1), ("ringing", PHONE2), ("answered", PHONE2)]
    [call] = live.sim.snapshot().calls
    assert (call.state, call.agent) == ("talking", OP2)
    done = [m for m in live.ami if m.event == "AttendedTransfer"]
    assert [(m.get("Result"), m.get("OrigTransfererChannel")[:17], m.get("TransferTargetChannel")[:17])
            for m in done] == [("Success", "Local/101@agents-", "Local/102@agents-")]
    complete = [m for m in live.ami if m.event == "AgentComplete" and m.get("Linkedid") == linkedid]
    assert [m.get("Reason") for m in complete] == ["transfer"]

    await live.sim.hangup_agent(OP2)
    await live.until("ended", lambda: live.call_row(linkedid).status == "ended")
    ended = [e for e in live.events if e.linkedid == linkedid and e.kind is CallEventKind.ENDED]
    assert [(e.outcome, e.interface) for e in ended] == [(Outcome.ANSWERED, PHONE2)]
    row = live.call_row(linkedid)
    assert (row.outcome, row.queue, live.operator_of(linkedid)) == ("answered", "sales", "op2")
    with live.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Call).where(Call.linkedid == linkedid)) == 1


async def test_a_colleague_who_does_not_answer_the_consultation_gives_the_caller_back(live: Live) -> None:
    linkedid = await live.answered_call("+73511234568")
    answer = await live.transfer(linkedid, {"operator_id": live.ids["op2"], "attended": True})
    assert answer.status_code == 200, answer.text
    await live.until("op2 rang out", lambda: ("ring_stopped", PHONE2) in live.kinds(linkedid), timeout=5)
    [call] = live.sim.snapshot().calls
    assert (call.state, call.agent) == ("talking", OP1)
    assert ("transferred", PHONE1) not in live.kinds(linkedid)

    await live.sim.hangup_agent(OP1)
    await live.until("ended", lambda: live.call_row(linkedid).status == "ended")
    assert (live.call_row(linkedid).outcome, live.operator_of(linkedid)) == ("answered", "op1")


async def test_a_colleague_who_does_not_answer_a_blind_transfer_sends_the_caller_back_to_the_queue(
    live: Live,
) -> None:
    linkedid = await live.answered_call("+73511234569")
    answer = await live.transfer(linkedid, {"operator_id": live.ids["op2"]})
    assert answer.status_code == 200, answer.text
    # Dial(op2, 30) rings out, then Queue(sales) rings op1 again
    await live.until("back in sales", lambda: live.kinds(linkedid).count(("ringing", PHONE1)) == 2, timeout=5)
    assert ("ring_stopped", PHONE2) in live.kinds(linkedid)
    joins = [m.get("Queue") for m in live.ami if m.event == "QueueCallerJoin" and m.get("Linkedid") == linkedid]
    assert joins == ["sales", "sales"]
    await live.sim.answer(OP1)
    await live.sim.hangup_agent(OP1)
    await live.until("ended", lambda: live.call_row(linkedid).status == "ended")
    assert (live.call_row(linkedid).outcome, live.operator_of(linkedid)) == ("answered", "op1")


async def test_a_call_still_ringing_cannot_be_transferred(live: Live) -> None:
    linkedid = await live.sim.place_call("+73511234570", "Ivan Petrov", queue="sales", patience=600)
    await live.until("logged", lambda: live.call_row(linkedid) is not None)
    for body in ({"department": "service"}, {"operator_id": live.ids["op2"]},
                 {"operator_id": live.ids["op2"], "attended": True}):
        answer = await live.transfer(linkedid, body)
        assert answer.status_code == 409, body
        assert answer.json()["detail"] == ("Звонок ещё не принят: переведите его, когда будете говорить "
                                           "с клиентом.")
    assert not [m for m in live.ami if m.get("Variable") in ("TRANSFER_TO", "TRANSFER_CONTEXT")]


async def test_a_colleague_busy_on_another_call_is_not_transferred_to(live: Live) -> None:
    await live.answered_call("+73511234571", queue="support", interface=OP2)
    linkedid = await live.answered_call("+73511234572")
    for body in ({"operator_id": live.ids["op2"]}, {"operator_id": live.ids["op2"], "attended": True}):
        answer = await live.transfer(linkedid, body)
        assert answer.status_code == 409, body
        assert answer.json()["detail"] == ("Дмитрий сейчас разговаривает; попробуйте позже или выберите "
                                           "другого коллегу.")
    assert [m for m in live.ami if m.event == "DialBegin" and m.get("Linkedid") == linkedid
            and m.get("DestChannel").startswith("Local/102")] == []
    answer = await live.transfer(linkedid, {"department": "sales", "attended": True})
    assert answer.status_code == 422  # only a colleague can be consulted first
