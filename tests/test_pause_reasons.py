"""The centre's own pause reasons on SQLite and PostgreSQL: what makes a list wrong (pure); a
supervisor adds one with a limit and switches one off (audited), the desk offers and accepts exactly
the reasons in use, nobody else may change them, a stored code never goes, and a running wall
service picks the new limits up from the bus."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web_login import alog_in, log_in

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core import pause_reasons
from crm_core.audit import AuditEntry
from crm_core.models import Department, Operator
from crm_core.passwords import hash_password
from crm_core.pause_reasons import PauseReason
from routing.wall import WallService

PASSWORD = "pw-reasons-1"
LUNCH = PauseReason("lunch", "Обед", "Lunch", 60)


def test_a_list_of_reasons_is_refused_for_what_is_wrong_with_it() -> None:
    assert pause_reasons.problems([LUNCH, PauseReason("coaching", "Наставник", "Coaching")], ["lunch"]) == []
    assert pause_reasons.problems([PauseReason("Coffee", "Кофе", "Coffee"), PauseReason("other", "Другое", "Other"),
                                   LUNCH, LUNCH], ["lunch", "break"]) == \
        ["preason.err.code", "preason.err.twice", "preason.err.gone"]
    assert pause_reasons.problems([PauseReason("nap", " ", "Nap", 0, active=False)]) == \
        ["preason.err.name", "preason.err.limit", "preason.err.none"]
    assert pause_reasons.limits([LUNCH, PauseReason("nap", "Сон", "Nap", 5, active=False),
                                 PauseReason("coaching", "Наставник", "Coaching")]) == {"lunch": 3600}


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> None:
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        sales = Department(code="sales", name="Sales", queue="sales")
        s.add_all([Operator(login="super1", name="Olga", role="supervisor", password_hash=pw, language="en"),
                   Operator(login="head1", name="Ivan", role="department_head", password_hash=pw, language="en",
                            departments=[sales]),
                   Operator(login="op1", name="Anna", password_hash=pw, language="ru", interface="Local/101@agents",
                            departments=[sales])])


@pytest.fixture
def http(sessions: sessionmaker[Session], people: None) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(secret_key="t", default_language="en"), sessions, MemoryBus())) as client:
        yield client


def reasons_in_use(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as s:
        return [r.code for r in pause_reasons.in_use(s)]


def listed(http: TestClient) -> list[dict]:
    return http.get("/api/supervisor/pause-reasons").json()["reasons"]


def test_a_supervisor_adds_a_reason_and_switches_one_off_and_the_desk_follows(
        http: TestClient, sessions: sessionmaker[Session]) -> None:
    assert reasons_in_use(sessions) == ["break", "lunch", "training", "meeting", "after_call"]  # a new centre's
    csrf = log_in(http, "super1", PASSWORD)
    reasons = listed(http)
    reasons[2]["active"] = False  # training: no longer offered
    reasons.append({"code": "coaching", "name_ru": "Наставничество", "name_en": "Coaching", "limit_minutes": 20,
                    "active": True})
    saved = http.put("/api/supervisor/pause-reasons", json={"reasons": reasons}, headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200, saved.text
    assert [(r["code"], r["active"]) for r in saved.json()["reasons"]] == [
        ("break", True), ("lunch", True), ("meeting", True), ("after_call", True), ("coaching", True),
        ("training", False)]
    with sessions() as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (entry.action, entry.outcome) == ("pause_reasons", "ok")
        assert entry.details["after"][-1]["code"] == "coaching" and len(entry.details["before"]) == 5

    desk = TestClient(http.app)
    op_csrf = log_in(desk, "op1", PASSWORD)
    page = desk.get("/desk").text
    assert '<option value="coaching">Наставничество</option>' in page and 'value="training"' not in page
    blob = json.loads(page.split('id="page-data">')[1].split("</script>")[0])
    assert blob["pause_names"]["training"] == "Обучение"  # old pauses still carry it, named
    headers = {"X-CSRF-Token": op_csrf}
    assert desk.put("/api/me/status", json={"state": "paused", "reason": "training"}, headers=headers).status_code == 422
    # a reason in use passes the check and reaches the PBX door (none here: 503)
    assert desk.put("/api/me/status", json={"state": "paused", "reason": "coaching"}, headers=headers).status_code == 503


def test_open_desks_and_walls_hear_the_new_reasons_at_once(http: TestClient) -> None:
    """The PUT tells every open desk and wall the whole list, both names: they rename without a reload."""
    desk, wall = TestClient(http.app), TestClient(http.app)
    log_in(desk, "op1", PASSWORD)
    log_in(wall, "super1", PASSWORD)
    csrf = log_in(http, "super1", PASSWORD)
    reasons = listed(http)
    reasons[0]["name_ru"] = "Короткий перерыв"
    with desk.websocket_connect("/ws/desk") as desk_socket, wall.websocket_connect("/ws/wall") as wall_socket:
        assert desk_socket.receive_json()["type"] == "hello"
        saved = http.put("/api/supervisor/pause-reasons", json={"reasons": reasons}, headers={"X-CSRF-Token": csrf})
        assert saved.status_code == 200
        told = {"type": "pause_reasons", "reasons": saved.json()["reasons"]}
        assert told["reasons"][0] == {"code": "break", "name_ru": "Короткий перерыв", "name_en": "Break",
                                      "limit_minutes": 15, "active": True, "colour": 0}
        assert desk_socket.receive_json() == told
        assert wall_socket.receive_json() == told


def test_only_supervisors_and_admins_change_them_and_a_stored_code_stays(
        http: TestClient, sessions: sessionmaker[Session]) -> None:
    csrf = log_in(http, "head1", PASSWORD)
    reasons = listed(http)  # a head reads them
    refused = http.put("/api/supervisor/pause-reasons", json={"reasons": reasons}, headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert 'id="pause-reasons-form"' not in http.get("/supervisor/thresholds").text

    http.cookies.clear()
    csrf = log_in(http, "super1", PASSWORD)
    assert 'id="pause-reasons-form"' in http.get("/supervisor/thresholds").text
    headers = {"X-CSRF-Token": csrf}
    gone = http.put("/api/supervisor/pause-reasons", json={"reasons": reasons[1:]}, headers=headers)
    assert gone.status_code == 422
    assert gone.json()["detail"] == "A stored reason cannot be removed: untick In use instead."
    hostile = [*reasons, {"code": "<b>x</b>", "name_ru": "x", "name_en": "x", "limit_minutes": 9999}]
    wrong = http.put("/api/supervisor/pause-reasons", json={"reasons": hostile}, headers=headers)
    assert wrong.status_code == 422 and "A code is a small Latin letter" in wrong.json()["detail"]
    assert "A limit is 1 to 1440 minutes" in wrong.json()["detail"]
    assert reasons_in_use(sessions) == ["break", "lunch", "training", "meeting", "after_call"]  # nothing stored
    with sessions() as s:
        outcomes = [(e.actor_login, e.outcome) for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action.in_(["pause_reasons", "forbidden"])).order_by(AuditEntry.id))]
    assert outcomes == [("head1", "refused"), ("super1", "refused"), ("super1", "refused")]


async def test_the_running_wall_service_takes_new_limits_from_the_bus(sessions: sessionmaker[Session],
                                                                      people: None) -> None:
    bus, stop = MemoryBus(), asyncio.Event()
    wall = WallService(sessions, bus)
    running = asyncio.create_task(wall.run(stop))
    app = create_app(Settings(secret_key="t", default_language="en"), sessions, bus)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk",
                                     follow_redirects=True) as http:
            csrf = await alog_in(http, "super1", PASSWORD)
            for _ in range(100):
                if wall.state.pause_limits:
                    break
                await asyncio.sleep(0.02)
            assert wall.state.pause_limits == {"break": 900, "lunch": 3600, "after_call": 600}
            reasons = (await http.get("/api/supervisor/pause-reasons")).json()["reasons"]
            reasons[1]["limit_minutes"] = 45
            saved = await http.put("/api/supervisor/pause-reasons", json={"reasons": reasons},
                                   headers={"X-CSRF-Token": csrf})
            assert saved.status_code == 200
            for _ in range(100):
                if wall.state.pause_limits.get("lunch") == 45 * 60:
                    break
                await asyncio.sleep(0.02)
            assert wall.state.pause_limits == {"break": 900, "lunch": 2700, "after_call": 600}
    finally:
        stop.set()
        await running
