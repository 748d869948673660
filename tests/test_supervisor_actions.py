"""Supervisor actions end to end on SQLite and PostgreSQL: HTTP -> SupervisorActions -> real Bridge
(AMI over TCP) -> PBX simulator, whose state (`sim.snapshot()`) must change; every action, done,
refused or failed, leaves an audit row; Asterisk's error replies come back as clear messages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web_login import alog_in

from agent_desk.app import create_app
from ami_bridge.frames import AmiMessage
from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim import PbxSimulator, default_config
from callcard.settings import Settings
from crm_core.agents import AgentQueue, AgentState
from crm_core.audit import AuditEntry
from crm_core.call_log import CallLogger
from crm_core.models import Call, Department, Operator
from crm_core.passwords import hash_password

OP1, OP6, SUPER = "Local/101@agents/n", "Local/106@agents/n", "Local/110@agents/n"
PASSWORD = "pw-demo-1"


@dataclass
class Live:
    http: httpx.AsyncClient
    sim: PbxSimulator
    sessions: sessionmaker[Session]
    ids: dict[str, int]
    spy_events: list[AmiMessage]
    csrf: str = ""
    app: Any = None

    async def post(self, path: str, body: dict | None = None, method: str = "POST") -> httpx.Response:
        return await self.http.request(method, f"/api/supervisor/agents/{path}", json=body,
                                       headers={"X-CSRF-Token": self.csrf})

    def member(self, queue: str, interface: str):  # type: ignore[no-untyped-def]
        return next((x for x in self.sim.snapshot().members if x.queue == queue and x.interface == interface), None)

    def audit(self) -> list[tuple[str, str, str]]:
        with self.sessions() as s:
            return [(e.action, e.target, e.outcome) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def _people(sessions: sessionmaker[Session]) -> dict[str, int]:
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        sales = Department(code="sales", name="Продажи", queue="sales")
        rows = {
            "op1": Operator(login="op1", name="Анна", interface="Local/101@agents", password_hash=pw,
                            departments=[sales]),
            "op2": Operator(login="op2", name="Дмитрий", interface="Local/102@agents", password_hash=pw),
            "op6": Operator(login="op6", name="Operator 106", interface="Local/106@agents", password_hash=pw),
            "root": Operator(login="root", name="Admin", role="admin", password_hash=pw),
            "super1": Operator(login="super1", name="Ольга", role="supervisor", interface="Local/110@agents", language="en",
                               password_hash=pw),
        }
        s.add_all(rows.values())
        s.flush()
        return {login: row.id for login, row in rows.items()}


@pytest.fixture
async def live(sessions: sessionmaker[Session]) -> AsyncIterator[Live]:
    ids = _people(sessions)
    sim = PbxSimulator(default_config(time_scale=5.0))
    sim.set_agent(OP1, 0.0, talk=3600)
    sim.set_agent(SUPER, 0.0, talk=3600)
    await sim.start("127.0.0.1", 0)
    bus, stop = MemoryBus(), asyncio.Event()
    logger = asyncio.create_task(CallLogger(sessions).run(bus, stop))
    await asyncio.sleep(0)
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now)
    spy_events: list[AmiMessage] = []
    bridge.client.event_filter |= {"ChanSpyStart", "ChanSpyStop"}  # read by this test, not by the bridge
    bridge.client.register_event("ChanSpy*", spy_events.append)
    runner = asyncio.create_task(bridge.run(stop))
    app = create_app(Settings(secret_key="t", default_language="en"), sessions, bus, supervision=bridge)
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk",
                                     follow_redirects=True) as http:
            state = Live(http, sim, sessions, ids, spy_events)
            state.csrf, state.app = await alog_in(http, "super1", PASSWORD), app
            yield state
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(runner, logger), 5)
        await sim.stop()


async def test_pause_and_unpause_reach_the_pbx_with_the_reason(live: Live) -> None:
    op1 = live.ids["op1"]
    answer = await live.post(f"{op1}/pause", {"reason": "lunch"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"] == "Анна is paused in all queues (lunch)."
    member = live.member("sales", OP1)
    assert (member.paused, member.reason) == (True, "lunch")

    answer = await live.post(f"{op1}/unpause", {"queue": "sales"})
    assert answer.json()["message"] == "Анна is back in sales."
    assert live.member("sales", OP1).paused is False

    answer = await live.post(f"{op1}/pause", {"queue": "nosuchqueue", "reason": "x"})
    assert answer.status_code == 502
    assert "Interface not found" in answer.json()["detail"]
    answer = await live.post(f"{op1}/pause", {"reason": "two\nlines"})
    assert answer.status_code == 422
    with live.sessions() as s:
        row = s.get(AgentQueue, (op1, "sales"))
        assert (row.paused, row.pause_reason) == (False, "")
    assert live.audit() == [("pause", "op1", "ok"), ("unpause", "op1", "ok"), ("pause", "op1", "failed"),
                            ("pause", "op1", "refused")]


async def test_queue_add_remove_and_logout_with_asterisks_errors_made_clear(live: Live) -> None:
    op6, op1 = live.ids["op6"], live.ids["op1"]
    answer = await live.post(f"{op6}/queues", {"queue": "collections", "penalty": 2})
    assert answer.status_code == 200, answer.text
    member = live.member("collections", OP6)
    assert (member.name, member.penalty, member.paused) == ("Operator 106", 2, False)

    again = await live.post(f"{op6}/queues", {"queue": "collections"})
    assert again.status_code == 502
    assert again.json()["detail"] == ("Operator 106 is already in collections "
                                      "(Asterisk: Unable to add interface: Already there).")

    assert (await live.post(f"{op6}/queues/collections", method="DELETE")).status_code == 200
    assert live.member("collections", OP6) is None
    gone = await live.post(f"{op6}/queues/collections", method="DELETE")
    assert gone.status_code == 502 and "is not in collections" in gone.json()["detail"]

    for queue in ("collections", "support"):
        assert (await live.post(f"{op6}/queues", {"queue": queue})).status_code == 200
    out = await live.post(f"{op6}/logout")
    assert out.status_code == 200, out.text
    assert out.json()["details"]["removed"] == ["collections", "support"]
    assert [m for m in live.sim.snapshot().members if m.interface == OP6] == []

    static = await live.post(f"{op1}/logout")  # queues.conf members cannot be removed: paused instead
    assert static.status_code == 200, static.text
    assert static.json()["details"] == {"removed": [], "paused": ["sales"], "refused": {}}
    assert "static member of sales" in static.json()["message"] and "logged out" in static.json()["message"]
    member = live.member("sales", OP1)
    assert (member.paused, member.reason) == (True, "logged out")
    with live.sessions() as s:
        assert s.get(AgentState, op6).logged_in is False
        assert s.get(AgentState, op1).logged_in is False
        assert s.scalars(select(AgentQueue.queue).where(AgentQueue.operator_id == op6)).all() == []
    assert live.audit() == [
        ("queue_add", "op6", "ok"), ("queue_add", "op6", "failed"), ("queue_remove", "op6", "ok"),
        ("queue_remove", "op6", "failed"), ("queue_add", "op6", "ok"), ("queue_add", "op6", "ok"),
        ("logout", "op6", "ok"), ("logout", "op1", "ok"),
    ]
    listing = (await live.http.get("/api/supervisor/agents")).json()
    by_login = {a["login"]: a for a in listing["agents"]}
    assert by_login["op6"]["logged_in"] is False and by_login["op6"]["queues"] == []
    assert [(q["queue"], q["paused"], q["reason"]) for q in by_login["op1"]["queues"]] == [
        ("sales", True, "logged out")]


async def test_an_employee_who_leaves_leaves_the_pbx_queues_too(live: Live) -> None:
    """Deactivating the account frees their phone in callcard; Asterisk must stop ringing it too."""
    op6 = live.ids["op6"]
    for queue in ("collections", "support"):
        assert (await live.post(f"{op6}/queues", {"queue": queue})).status_code == 200
    assert len([m for m in live.sim.snapshot().members if m.interface == OP6]) == 2
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=live.app), base_url="http://desk",
                                 follow_redirects=True) as admin:
        csrf = await alog_in(admin, "root", PASSWORD)
        page = await admin.post(f"/admin/users/{op6}/deactivate", data={"csrf": csrf, "clients_to": ""})
    assert page.status_code == 200 and 'id="users-done"' in page.text and 'id="users-error"' not in page.text
    assert [m for m in live.sim.snapshot().members if m.interface == OP6] == []
    with live.sessions() as s:
        assert s.get(AgentState, op6).logged_in is False
        assert s.get(Operator, op6).interface is None
    assert live.audit()[-2:] == [("user_deactivate", "op6", "ok"), ("logout", "op6", "ok")]


async def test_listen_rings_the_supervisor_and_chanspy_joins_the_agents_call(live: Live) -> None:
    op1, op2 = live.ids["op1"], live.ids["op2"]
    refused = await live.post(f"{op1}/spy", {"mode": "listen"})
    assert refused.status_code == 409 and refused.json()["detail"] == "Анна is not on a call right now."

    await live.sim.place_call("83512000001", queue="sales", patience=3600)
    async with asyncio.timeout(10):
        while True:
            with live.sessions() as s:
                if s.scalar(select(Call.id).where(Call.operator_id == op1, Call.status == "talking")):
                    break
            await asyncio.sleep(0.05)
    answer = await live.post(f"{op1}/spy", {"mode": "barge"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["details"]["target"] == "Local/101@agents-"
    async with asyncio.timeout(5):
        while not live.spy_events:
            await asyncio.sleep(0.02)
    spies = live.sim.snapshot().spies
    assert len(spies) == 1 and spies[0].options == "qBE" and spies[0].state == "spying"
    assert spies[0].spyee.startswith("Local/101@agents-") and spies[0].supervisor == SUPER
    start = live.spy_events[0]
    assert start.event == "ChanSpyStart" and start.get("SpyeeChannel") == spies[0].spyee
    assert start.get("SpyerChannel").startswith("Local/110@agents-")

    assert (await live.post(f"{op2}/spy", {"mode": "whisper"})).status_code == 409

    await live.sim.hangup_agent(OP1)  # the agent ends the call: ChanSpy (E) ends with it
    async with asyncio.timeout(5):
        while live.sim.snapshot().spies or len(live.spy_events) < 2:
            await asyncio.sleep(0.02)
    assert live.spy_events[1].event == "ChanSpyStop"
    await asyncio.sleep(0.3)
    with live.sessions() as s:  # the supervisor's legs are no call of their own
        assert s.scalar(select(Call.outcome).where(Call.operator_id == op1)) == "answered"
        assert len(s.scalars(select(Call)).all()) == 1
    assert live.audit() == [("listen", "op1", "refused"), ("barge", "op1", "ok"), ("whisper", "op2", "refused")]
