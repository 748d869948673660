"""Who may see and change which request, on every route: operators their departments', department
heads theirs, supervisors and admins all; assignment only to people of the request's department."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core.models import Client, Department, Operator
from crm_core.passwords import hash_password
from routing.inbox import service

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
PASSWORD = "pw-12345678"


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> dict[str, int]:
    digest = hash_password(PASSWORD)
    with sessions.begin() as session:
        sales = Department(code="sales", name="Продажи", queue="sales")
        service_dept = Department(code="service", name="Сервис", queue="support")
        people = {
            "seller": Operator(login="seller", name="Seller", password_hash=digest, departments=[sales]),
            "seller2": Operator(login="seller2", name="Seller 2", password_hash=digest, departments=[sales]),
            "fixer": Operator(login="fixer", name="Fixer", password_hash=digest, departments=[service_dept]),
            "head": Operator(login="head", name="Head", password_hash=digest),
            "boss": Operator(login="boss", name="Boss", role="supervisor", password_hash=digest),
        }
        session.add_all([sales, service_dept, *people.values()])
        session.flush()
        service_dept.head_id = people["head"].id
        ids = {name: op.id for name, op in people.items()}
        for kind, dept in (("order", sales), ("complaint", service_dept), ("question", None)):
            request = service.create_request(session, kind, f"{kind} subject", NOW, contact="+73510000000")
            request.department_id = dept.id if dept else None  # "question": nobody's yet
            ids[kind] = request.id
    return ids


def login(sessions: sessionmaker[Session], name: str) -> tuple[TestClient, dict[str, str]]:
    http = TestClient(create_app(Settings(secret_key="t"), sessions, MemoryBus()))
    token = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text).group(1)
    desk = http.post("/login", data={"login": name, "password": PASSWORD, "csrf": token})
    return http, {"X-CSRF-Token": re.search(r'"csrf": "([^"]+)"', desk.text).group(1)}


ACCESS = {  # who: {which request: may they?}
    "seller": {"order": True, "complaint": False, "question": False},
    "fixer": {"complaint": True, "order": False},
    "head": {"complaint": True, "order": False},
    "boss": {"order": True, "complaint": True, "question": True},
}


@pytest.mark.parametrize("who", list(ACCESS))
def test_every_request_route_checks_the_department(sessions: sessionmaker[Session], world: dict[str, int],
                                                   who: str) -> None:
    http, csrf = login(sessions, who)
    for which, allowed in ACCESS[who].items():
        rid, expected = world[which], 200 if allowed else 403
        assert http.get(f"/api/requests/{rid}").status_code == expected, which
        assert http.post(f"/api/requests/{rid}/comment", json={"text": "seen"}, headers=csrf).status_code == \
            (201 if allowed else 403), which
        assert http.post(f"/api/requests/{rid}/assign", json={"operator_id": world[who]},
                         headers=csrf).status_code == expected, which
        assert http.post(f"/api/requests/{rid}/status", json={"status": "in_progress"},
                         headers=csrf).status_code == expected, which


def test_the_inbox_page_lists_only_the_operators_departments(sessions: sessionmaker[Session],
                                                             world: dict[str, int]) -> None:
    http, _ = login(sessions, "seller")
    page = http.get("/requests?department=service").text  # asking for another department's inbox
    assert f'data-request-id="{world["order"]}"' in page
    assert f'data-request-id="{world["complaint"]}"' not in page
    assert "/requests?department=service" not in page
    head, _ = login(sessions, "head")
    assert f'data-request-id="{world["complaint"]}"' in head.get("/requests").text


def test_assignment_is_to_the_request_departments_people(sessions: sessionmaker[Session],
                                                         world: dict[str, int]) -> None:
    http, csrf = login(sessions, "seller")
    order = world["order"]
    assert http.post(f"/api/requests/{order}/assign", json={"operator_id": world["seller2"]},
                     headers=csrf).status_code == 200
    refused = http.post(f"/api/requests/{order}/assign", json={"operator_id": world["fixer"]}, headers=csrf)
    assert refused.status_code == 422 and "does not work in" in refused.json()["detail"]
    shown = http.get(f"/api/requests/{order}").json()
    assert [p["name"] for p in shown["colleagues"]] == ["Seller", "Seller 2"]
    assert shown["assignee"] == "Seller 2"
    assert http.get("/api/requests/99999").status_code == 404


def page_data(html: str) -> dict[str, object]:
    blob = re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S)
    return json.loads(blob.group(1))


def test_a_cards_link_opens_the_request_in_its_departments_inbox_only_for_those_who_may_see_it(
    sessions: sessionmaker[Session], world: dict[str, int]
) -> None:
    head, _ = login(sessions, "head")  # heads service, belongs to no department
    shown = head.get(f"/requests?request={world['complaint']}").text
    assert page_data(shown)["open_request"] == world["complaint"]
    assert 'href="/requests?department=service&amp;view=open" aria-current="page"' in shown
    boss, _ = login(sessions, "boss")  # sees every department: the request's tab is chosen, not the first
    shown = boss.get(f"/requests?request={world['complaint']}").text
    assert 'href="/requests?department=service&amp;view=open" aria-current="page"' in shown
    assert page_data(shown)["open_request"] == world["complaint"]
    seller, _ = login(sessions, "seller")
    for other in (world["complaint"], 99999):  # another department's, and none at all: the own inbox, nothing opened
        page = seller.get(f"/requests?request={other}")
        assert page.status_code == 200 and page_data(page.text)["open_request"] is None
        assert f'data-request-id="{world["order"]}"' in page.text
    assert seller.get("/requests?request=abc").status_code == 422


def test_a_request_filed_from_a_card_says_which_department_it_went_to(
    sessions: sessionmaker[Session], world: dict[str, int]
) -> None:
    http, csrf = login(sessions, "fixer")
    with sessions.begin() as session:
        client = Client(name="Клиент без менеджера", kind="person")
        session.add(client)
        session.flush()
        client_id = client.id
    filed = http.post("/api/requests", json={"kind": "order", "subject": "Новый тариф", "body": "С 1-го числа",
                                             "client_id": client_id}, headers=csrf)
    assert filed.status_code == 201, filed.text
    assert (filed.json()["department"], filed.json()["client_id"], filed.json()["status"]) == \
        ("Продажи", client_id, "open")  # an order goes to sales, though a service operator filed it
    assert http.post("/api/requests", json={"kind": "order", "subject": "x"}).status_code == 403  # no CSRF token
    assert http.post("/api/requests", json={"kind": "gossip", "subject": "x"}, headers=csrf).status_code == 422
    stranger = http.post("/api/requests", json={"kind": "callback", "subject": "Перезвонить", "contact": "8 916 123-00-03"},
                         headers=csrf)
    assert (stranger.status_code, stranger.json()["contact"], stranger.json()["client_id"]) == (201, "+79161230003", None)
    refused = http.post("/api/requests", json={"kind": "callback", "subject": "x", "contact": "<b>call me</b>"},
                        headers=csrf)
    assert refused.status_code == 422 and "is not a phone number" in refused.json()["detail"]
