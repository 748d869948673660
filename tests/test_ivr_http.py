"""/admin/ivr: admins edit menus, hours and holidays through CSRF-checked forms; nobody else can."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web_login import log_in

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core.models import Department, Operator
from crm_core.passwords import hash_password
from ivr.models import DepartmentSchedule, Holiday, IvrMenu
from ivr.service import load_plan, seed_default_menu

PASSWORD = "secret-pass-1"


@pytest.fixture
def http(sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    with sessions.begin() as session:
        session.add_all([Department(code="sales", name="Продажи", queue="sales"),
                         Department(code="service", name="Сервис", queue="support")])
        for login, role in (("admin", "admin"), ("op1", "operator"), ("super1", "supervisor")):
            session.add(Operator(login=login, name=login, role=role, password_hash=hash_password(PASSWORD),
                                 language="en"))
        session.flush()
        seed_default_menu(session)
    app = create_app(Settings(secret_key="test-secret", default_language="en"), sessions, MemoryBus())
    with TestClient(app) as client:
        yield client

@pytest.mark.parametrize("login", ["op1", "super1"])
def test_only_admins_see_and_edit_the_ivr(http: TestClient, login: str) -> None:
    token = log_in(http, login, PASSWORD)
    assert http.get("/admin/ivr").status_code == 403
    assert http.post("/admin/ivr/holidays", data={"csrf": token, "day": "2026-07-01"}).status_code == 403


def test_admin_page_lists_the_menu_hours_and_holidays(http: TestClient) -> None:
    log_in(http, "admin", PASSWORD)
    page = http.get("/admin/ivr")
    assert page.status_code == 200
    assert 'id="menu-main"' in page.text and "callcard/ivr-main" in page.text and 'id="hours-sales"' in page.text
    assert "Voice menu (IVR)" in page.text and 'href="/admin/ivr"' in page.text


def test_admin_edits_take_effect_in_the_next_plan(http: TestClient, sessions: sessionmaker[Session]) -> None:
    token = log_in(http, "admin", PASSWORD)
    assert http.post("/admin/ivr/menus/main/options",
                     data={"csrf": token, "digit": "7", "action": "department", "target": "service",
                           "priority": "3"}).url.path == "/admin/ivr"
    http.post("/admin/ivr/menus", data={"csrf": token, "name": "main", "greeting": "callcard/ivr-main-v2",
                                        "is_default": "true", "timeout_seconds": "7", "max_retries": "1",
                                        "fallback_queue": "sales"})
    http.post("/admin/ivr/menus/main/options/0/delete", data={"csrf": token})
    http.post("/admin/ivr/hours/sales", data={"csrf": token, "open_0": "09:00", "close_0": "18:00",
                                              "timezone": "Europe/Moscow", "after_hours": "voicemail",
                                              "voicemail_prompt": "callcard/ivr-closed-sales"})
    http.post("/admin/ivr/holidays", data={"csrf": token, "day": "2026-07-06", "kind": "holiday", "name": "Test"})
    with sessions() as session:
        plan = load_plan(session, "", datetime(2026, 3, 10, 9, 0, tzinfo=UTC))  # Tuesday: sales closed now
        schedule = session.scalar(select(DepartmentSchedule).join(Department).where(Department.code == "sales"))
        assert schedule is not None and [(h.weekday, h.opens, h.closes) for h in schedule.hours] == \
            [(0, time(9), time(18))]
        assert session.scalar(select(Holiday.name).where(Holiday.day == date(2026, 7, 6))) == "Test"
    assert plan is not None
    main = plan.menus["main"]
    assert main.greeting == "callcard/ivr-main-v2" and main.timeout_seconds == 7 and "0" not in main.options
    assert main.options["7"].target == "service" and main.options["7"].priority == 3
    assert not plan.departments["sales"].open and plan.departments["sales"].after_hours == "voicemail"


def test_forms_without_the_csrf_token_are_refused(http: TestClient, sessions: sessionmaker[Session]) -> None:
    log_in(http, "admin", PASSWORD)
    response = http.post("/admin/ivr/menus", data={"csrf": "forged", "name": "evil", "greeting": "x"})
    assert response.status_code == 403
    with sessions() as session:
        assert session.scalar(select(IvrMenu).where(IvrMenu.name == "evil")) is None


def test_prompts_that_would_break_an_agi_command_are_refused(http: TestClient) -> None:
    token = log_in(http, "admin", PASSWORD)
    response = http.post("/admin/ivr/menus", data={"csrf": token, "name": "x", "fallback_queue": "sales",
                                                   "greeting": 'a" 1\nHANGUP'})
    assert response.url.path == "/admin/ivr" and "greeting prompt" in response.text
    assert "is not allowed" in response.text  # the admin reads English here


def test_refused_ivr_edits_say_why_in_the_admins_language(http: TestClient) -> None:
    token = log_in(http, "admin", PASSWORD)
    hours = http.post("/admin/ivr/hours/sales", data={"csrf": token, "open_0": "9 am", "close_0": "18:00",
                                                      "timezone": "Asia/Yekaterinburg", "after_hours": "voicemail"})
    assert "Hours are HH:MM." in hours.text
    http.post("/api/language", json={"language": "ru"}, headers={"X-CSRF-Token": token})
    did = http.post("/admin/ivr/menus", data={"csrf": token, "name": "main", "did": "12a", "greeting": "callcard/x",
                                              "invalid_prompt": "callcard/y", "fallback_queue": "sales"})
    assert "Набранный номер «12a» — только цифры." in did.text
    day = http.post("/admin/ivr/holidays", data={"csrf": token, "kind": "holiday"})
    assert "Нужна дата." in day.text
