"""The agent's own status on the desk. Pure: what LiveState tells each desk as Asterisk's queue
events arrive. Over HTTP on SQLite and PostgreSQL: the desk page's status from the stored
memberships, what `PUT /api/me/status` refuses (and audits) before any PBX is asked, and the
agent's day (`GET /api/me/today`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_wall_live import NOON, A, B, synced_state
from web_login import log_in

from agent_desk.app import create_app
from ami_bridge.events import QueueEvent
from ami_bridge.events import QueueEventKind as K
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core import agents
from crm_core.agents import AgentPause
from crm_core.audit import AuditEntry
from crm_core.models import Call, Department, Operator
from crm_core.passwords import hash_password
from routing.live import DeskStatus, LiveState, PauseChange, desk_status

PASSWORD = "pw-status-1"
MOSCOW = ZoneInfo("Europe/Moscow")


def told(state: LiveState) -> list[tuple[str, str, str, list[str], list[str], float | None]]:
    """What the desks were told since the last call, drained as the wall service drains it."""
    out = [(i, m["state"], m["reason"], m["paused_in"], m["queues"], m["at"]) for i, m in state.desk_changes]
    state.desk_changes.clear()
    return out


def test_status_of_memberships_names_the_first_paused_queues_reason() -> None:
    assert desk_status([]) == DeskStatus("out")
    assert desk_status([("sales", False, ""), ("collections", False, "")]) == \
        DeskStatus("ready", queues=("collections", "sales"))
    assert desk_status([("sales", True, "lunch"), ("collections", False, "")]) == \
        DeskStatus("paused", "lunch", ("sales",), ("collections", "sales"))
    assert desk_status([("support", True, "break"), ("sales", True, "lunch")]).reason == "lunch"


def test_each_desk_is_told_only_when_its_own_status_changes() -> None:
    state = synced_state()
    state.figures(NOON)
    assert told(state) == [(A, "ready", "", [], ["sales"], NOON), (B, "ready", "", [], ["support"], NOON)]
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 60, queue="sales", interface=A, paused=True, reason="lunch"))
    assert told(state) == [(A, "paused", "lunch", ["sales"], ["sales"], NOON + 60)]
    state.apply(QueueEvent(K.AGENT_RINGING, NOON + 70, queue="support", interface=B, linkedid="c1"))
    state.apply(QueueEvent(K.AGENT_CONNECTED, NOON + 75, queue="support", interface=B, linkedid="c1", holdtime=5))
    state.figures(NOON + 80)
    assert told(state) == []  # a call is not a status: the desk shows calls on its own
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 90, queue="sales", interface=A, paused=True, reason="training"))
    state.apply(QueueEvent(K.MEMBER_ADDED, NOON + 95, queue="support", interface=A, member_name="A", status=1,
                           paused=False, penalty=0))
    assert told(state) == [(A, "paused", "training", ["sales"], ["sales"], NOON + 90),
                           (A, "paused", "training", ["sales"], ["sales", "support"], NOON + 90)]
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 100, queue="sales", interface=A, paused=False))
    state.apply(QueueEvent(K.MEMBER_REMOVED, NOON + 110, queue="support", interface=A))
    state.apply(QueueEvent(K.MEMBER_REMOVED, NOON + 120, queue="sales", interface=A))
    assert told(state) == [(A, "ready", "", [], ["sales", "support"], NOON + 100),
                           (A, "ready", "", [], ["sales"], NOON + 110), (A, "out", "", [], [], NOON + 120)]


def test_a_pause_keeps_its_reason_through_a_call_and_a_new_reason_is_a_new_pause() -> None:
    state = synced_state()
    state.apply(QueueEvent(K.AGENT_CONNECTED, NOON + 10, queue="sales", interface=A, linkedid="c1", holdtime=5))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 20, queue="sales", interface=A, paused=True, reason="lunch"))
    state.apply(QueueEvent(K.AGENT_COMPLETED, NOON + 60, queue="sales", interface=A, linkedid="c1", talktime=50))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 600, queue="sales", interface=A, paused=True, reason="break"))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 900, queue="sales", interface=A, paused=False))
    assert state.pause_changes == [PauseChange(A, NOON + 20, None, "lunch"), PauseChange(A, NOON + 20, NOON + 600),
                                   PauseChange(A, NOON + 600, None, "break"), PauseChange(A, NOON + 600, NOON + 900)]
    assert state.figures(NOON + 900)["agents"][0]["pause_today"] == 880


def test_after_a_restart_a_desk_is_told_when_its_pause_began() -> None:
    state = LiveState()
    state.seed_pauses([PauseChange(A, NOON + 60, None, "lunch")], NOON + 600)
    state.figures(NOON + 600)
    assert told(state) == []  # nothing is known before the resync
    for event in (QueueEvent(K.RESYNC, NOON + 610),
                  QueueEvent(K.MEMBER, NOON + 610, queue="sales", interface=A, status=1, paused=True,
                             reason="lunch", snapshot=True)):
        state.apply(event)
    state.figures(NOON + 611)
    assert told(state) == [(A, "paused", "lunch", ["sales"], ["sales"], NOON + 60)]


@pytest.fixture
def ids(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        sales = Department(code="sales", name="Sales", queue="sales")
        rows = {login: Operator(login=login, name=login, role="operator", interface=phone, password_hash=pw,
                                language="en", departments=[sales])
                for login, phone in (("op1", "Local/101@agents"), ("op2", "Local/102@agents"),
                                     ("nophone", None))}
        s.add_all(rows.values())
        s.flush()
        return {k: v.id for k, v in rows.items()}


@pytest.fixture
def http(sessions, ids) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(secret_key="t", default_language="en"), sessions, MemoryBus())) as client:
        yield client


def page_data(html: str) -> dict:
    return json.loads(html.split('<script type="application/json" id="page-data">')[1].split("</script>")[0])


def page_status(http: TestClient) -> dict | None:
    page = http.get("/desk")
    assert page.status_code == 200
    return page_data(page.text)["status"]


def test_the_desk_page_shows_the_stored_status_until_the_socket_brings_the_live_one(
    http: TestClient, sessions, ids: dict[str, int]  # type: ignore[no-untyped-def]
) -> None:
    log_in(http, "op1", PASSWORD)
    assert page_status(http) == {"type": "status", "state": "ready", "reason": "", "paused_in": [],
                                 "queues": ["sales"], "at": None, "limit": None}  # their department's queue, as yet
    assert 'id="my-status"' in http.get("/desk").text
    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with sessions.begin() as s:
        agents.reconcile(s, ids["op1"], [agents.Membership("sales", 0, True, "lunch"),
                                         agents.Membership("support", 0, False, "")], at)
    assert page_status(http) == {"type": "status", "state": "paused", "reason": "lunch", "paused_in": ["sales"],
                                 "queues": ["sales", "support"], "at": None, "limit": None}
    with sessions.begin() as s:
        agents.reconcile(s, ids["op1"], [], at)  # Asterisk has them in no queue
    assert page_status(http)["state"] == "out"

    http.cookies.clear()
    log_in(http, "nophone", PASSWORD)
    desk = http.get("/desk").text
    assert page_data(desk)["status"] is None and 'id="my-status"' not in desk


def test_a_pause_needs_a_listed_reason_the_csrf_header_and_a_pbx(http: TestClient, sessions, ids) -> None:  # type: ignore[no-untyped-def]
    csrf = log_in(http, "op1", PASSWORD)
    headers = {"X-CSRF-Token": csrf}
    assert http.put("/api/me/status", json={"state": "paused", "reason": "lunch"}).status_code == 403
    refused = http.put("/api/me/status", json={"state": "paused", "reason": "<b>nap</b>"}, headers=headers)
    assert refused.status_code == 422 and refused.json()["detail"] == "Choose a pause reason from the list."
    assert http.put("/api/me/status", json={"state": "away"}, headers=headers).status_code == 422
    no_pbx = http.put("/api/me/status", json={"state": "paused", "reason": "lunch"}, headers=headers)
    assert no_pbx.status_code == 503
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (entry.actor_login, entry.action, entry.target, entry.outcome) == ("op1", "pause", "op1", "failed")
        assert entry.details["reason"] == "lunch"


def test_the_day_counts_own_answered_calls_talk_and_pauses_since_local_midnight(
    http: TestClient, sessions, ids: dict[str, int]  # type: ignore[no-untyped-def]
) -> None:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(MOSCOW).date(), datetime.min.time(), MOSCOW).astimezone(UTC)
    with sessions.begin() as s:
        def call(linkedid: str, operator: str, started: datetime, talk: int | None, **extra: object) -> None:
            s.add(Call(linkedid=linkedid, started_at=started, operator_id=ids[operator], status="ended",
                       answered_at=started if talk is not None else None, talk_seconds=talk, **extra))
        call("d.1", "op1", midnight + timedelta(seconds=1), 100)
        call("d.2", "op1", midnight + timedelta(seconds=2), 50, direction="outbound")
        call("d.3", "op1", midnight + timedelta(seconds=3), None, outcome="missed")  # rang, not taken
        call("d.4", "op1", midnight - timedelta(seconds=1), 500)  # yesterday in Moscow
        call("d.5", "op2", midnight + timedelta(seconds=4), 700)  # a colleague's
        s.add_all([AgentPause(interface="Local/101@agents", started_at=midnight - timedelta(seconds=60),
                              ended_at=midnight + timedelta(seconds=30), reason="lunch"),  # 30 s of it today
                   AgentPause(interface="Local/101@agents", started_at=midnight + timedelta(seconds=40),
                              ended_at=midnight + timedelta(seconds=50), reason=agents.LOGGED_OUT),
                   AgentPause(interface="Local/102@agents", started_at=midnight, ended_at=now, reason="break")])
    log_in(http, "op1", PASSWORD)
    assert http.get("/api/me/today", params={"tz": "Europe/Moscow"}).json() == \
        {"answered": 2, "talk_seconds": 150, "paused_seconds": 30}


def test_a_paused_desk_and_the_wall_learn_the_reasons_limit() -> None:
    state = synced_state()
    state.set_pause_limits({"lunch": 3600})
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 60, queue="sales", interface=A, paused=True, reason="lunch"))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 70, queue="support", interface=B, paused=True, reason="meeting"))
    limits = {i: m["limit"] for i, m in state.desk_changes if m["state"] == "paused"}
    assert limits == {A: 3600, B: None}
    assert state.figures(NOON + 80)["pause_limits"] == {"lunch": 3600}
    state.desk_changes.clear()

    state.set_pause_limits({"lunch": 1800, "meeting": 600})  # a supervisor changed them mid-pause
    assert [(i, m["limit"], m["at"]) for i, m in state.desk_changes] == [(A, 1800, NOON + 60), (B, 600, NOON + 70)]
    state.desk_changes.clear()
    state.set_pause_limits({"lunch": 1800, "meeting": 600, "break": 900})  # no paused desk's limit moved
    assert state.desk_changes == []
