"""The desk's pages and REST API against a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from agent_desk.app import create_app, served
from agent_desk.i18n import CATALOGS, DISPOSITIONS
from ami_bridge.client import AmiDisconnected, AmiError, AmiTimeout
from callcard.bus import BOARD_KEY, BOARD_TOPIC, MemoryBus, desk_topic
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.call_log import OUTCOMES
from crm_core.models import Call, Client, ClientPhone, Department, Interaction, Operator, Phone
from crm_core.passwords import hash_password
from routing.wall import BOARD_FIELD, STATUS_FIELD, desk_status_key

HOSTILE = "<script>alert(1)</script>"
PASSWORDS = {"op1": "op1-demo", "op2": "op2-demo", "super1": "super1-demo"}


@cache
def password_hash(login: str) -> str:
    return hash_password(PASSWORDS[login])


class RecordingDialer:
    """Stands in for Asterisk, which this machine does not have: remembers what it was asked to dial."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def click_to_call(self, operator_interface: str, number_e164: str) -> str:
        self.calls.append((operator_interface, number_e164))
        return f"originate-{len(self.calls)}"


@pytest.fixture
def people(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with sessions() as session:
        rows = {
            "op1": Operator(login="op1", name="Ольга Оператор", role="operator", interface="Local/101@agents",
                            password_hash=password_hash("op1"), language="ru"),
            "op2": Operator(login="op2", name="Pavel Second", role="operator", interface="Local/102@agents",
                            password_hash=password_hash("op2"), language="ru"),
            "super1": Operator(login="super1", name="Svetlana Super", role="supervisor",
                               password_hash=password_hash("super1"), language="ru"),
        }
        client = Client(name="Иван Петров", segment="vip", city="Челябинск")
        client.phone_links.append(ClientPhone(phone=Phone(e164="+73517654321", kind="landline"), label="work"))
        hostile = Client(name=HOSTILE)
        session.add_all([*rows.values(), client, hostile])
        session.commit()
        ids = {login: row.id for login, row in rows.items()}
        ids["client"], ids["hostile"] = client.id, hostile.id
        return ids


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def dialer() -> RecordingDialer:
    return RecordingDialer()


@pytest.fixture
def app(sessions, bus, dialer):  # type: ignore[no-untyped-def]
    return create_app(Settings(secret_key="test-secret", default_language="ru"), sessions, bus, dialer)


@pytest.fixture
def client(app, people) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as http:
        yield http


def form_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def log_in(http: TestClient, login: str, password: str | None = None) -> str:
    """Log in through the form; returns the session's CSRF token for API writes."""
    token = form_csrf(http.get("/login").text)
    response = http.post("/login", data={"login": login, "password": password or PASSWORDS[login], "csrf": token})
    assert response.status_code == 200 and response.url.path == "/desk", response.text[:300]
    return form_csrf(response.text)


def add_call(sessions, linkedid: str, **fields: object) -> None:  # type: ignore[no-untyped-def]
    values: dict[str, object] = {"started_at": datetime.now(UTC), "caller_raw": "83517654321",
                                 "caller_e164": "+73517654321", "queue": "sales", "status": "ended"}
    values.update(fields)
    with sessions() as session:
        session.add(Call(linkedid=linkedid, **values))
        session.commit()


# ---- login, logout, sessions -----------------------------------------------------------------


def test_login_then_logout_guards_the_desk(client: TestClient) -> None:
    anonymous = client.get("/desk", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    token = log_in(client, "op1")
    desk = client.get("/desk")
    assert "Ольга Оператор" in desk.text
    assert client.get("/api/me").json()["login"] == "op1"
    client.post("/logout", data={"csrf": token})
    assert client.get("/desk", follow_redirects=False).status_code == 303
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize("login,password", [("op1", "wrong"), ("nobody", "op1-demo")])
def test_wrong_login_or_password_gets_one_message(client: TestClient, login: str, password: str) -> None:
    token = form_csrf(client.get("/login").text)
    response = client.post("/login", data={"login": login, "password": password, "csrf": token})
    assert response.status_code == 401
    assert "Неверный логин или пароль." in response.text
    assert client.get("/api/me").status_code == 401


def test_login_without_the_forms_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"login": "op1", "password": "op1-demo", "csrf": "forged"})
    assert response.status_code == 400
    assert client.get("/api/me").status_code == 401


def test_deactivated_operator_loses_the_session(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "op1")
    with sessions() as session:
        session.get(Operator, people["op1"]).active = False
        session.commit()
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/me"), ("GET", "/api/clients?q=a"), ("GET", "/api/clients/1"), ("GET", "/api/calls"),
    ("POST", "/api/clients"), ("POST", "/api/calls/1.1/note"), ("POST", "/api/dial"), ("POST", "/api/language"),
])
def test_api_answers_401_without_a_session(client: TestClient, method: str, path: str) -> None:
    assert client.request(method, path, json={}).status_code == 401


def test_api_writes_need_the_csrf_header(client: TestClient) -> None:
    token = log_in(client, "op1")
    assert client.post("/api/language", json={"language": "en"}).status_code == 403
    assert client.post("/api/language", json={"language": "en"}, headers={"X-CSRF-Token": "x"}).status_code == 403
    assert client.post("/api/language", json={"language": "en"}, headers={"X-CSRF-Token": token}).status_code == 200


# ---- roles ------------------------------------------------------------------------------------------


def test_only_supervisors_view_another_operators_calls(client: TestClient, people) -> None:  # type: ignore[no-untyped-def]
    log_in(client, "op1")
    assert client.get(f"/api/calls?operator_id={people['op2']}").status_code == 403
    assert client.get(f"/api/calls?operator_id={people['op1']}").status_code == 200
    client.cookies.clear()
    log_in(client, "super1")
    assert client.get(f"/api/calls?operator_id={people['op2']}").status_code == 200


def test_operator_cannot_write_the_note_of_a_colleagues_call(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    add_call(sessions, "900.1", operator_id=people["op2"], outcome="answered")
    token = log_in(client, "op1")
    body = {"note": "x", "disposition": "other"}
    assert client.post("/api/calls/900.1/note", json=body, headers={"X-CSRF-Token": token}).status_code == 403
    client.cookies.clear()
    token = log_in(client, "super1")
    assert client.post("/api/calls/900.1/note", json=body, headers={"X-CSRF-Token": token}).status_code == 200


# ---- clients ----------------------------------------------------------------------------------------


def test_create_client_then_find_it_by_name_and_number(client: TestClient) -> None:
    token = log_in(client, "op1")
    created = client.post("/api/clients", headers={"X-CSRF-Token": token},
                          json={"name": "ООО Ромашка", "kind": "company", "phones": ["8 (912) 345-67-89"]})
    assert created.status_code == 201, created.text
    card = created.json()
    assert card["kind"] == "company" and card["phones"][0]["e164"] == "+79123456789"
    assert [c["id"] for c in client.get("/api/clients", params={"q": "ромаш"}).json()] == [card["id"]]
    assert [c["id"] for c in client.get("/api/clients", params={"q": "89123456789"}).json()] == [card["id"]]
    page = client.get(f"/api/clients/{card['id']}").json()
    assert page["card"]["name"] == "ООО Ромашка" and page["timeline"] == []


def test_create_client_with_a_bad_phone_is_422_with_the_reason(client: TestClient) -> None:
    token = log_in(client, "op1")
    response = client.post("/api/clients", headers={"X-CSRF-Token": token},
                           json={"name": "Bad", "kind": "person", "phones": ["12"]})
    assert response.status_code == 422
    assert response.json()["detail"] == "«12» — не номер телефона."  # op1 reads Russian
    assert client.get("/api/clients", params={"q": "Bad"}).json() == []


def test_unknown_client_is_404(client: TestClient) -> None:
    log_in(client, "op1")
    assert client.get("/api/clients/999999").status_code == 404


def test_a_browser_that_lands_nowhere_gets_a_page_in_its_language_and_scripts_get_json(client: TestClient) -> None:
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    anonymous = client.get("/no-such-page", headers=html, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    log_in(client, "op1")
    for path, status, said in [("/no-such-page", 404, "Такой страницы или записи нет"),
                               ("/clients/999999", 404, "Такой страницы или записи нет"),
                               ("/admin/users", 403, "Ваша роль этого не позволяет.")]:
        page = client.get(path, headers=html)
        assert (page.status_code, page.headers["content-type"]) == (status, "text/html; charset=utf-8"), path
        assert said in page.text and 'href="/desk"' in page.text, path  # with the menu to go on from
    assert client.get("/no-such-page").json() == {"detail": "Not Found"}
    assert client.get("/api/no-such", headers=html).json() == {"detail": "Not Found"}
    assert client.get("/static/no-such.js", headers=html).json() == {"detail": "Not Found"}


# ---- calls and notes -------------------------------------------------------------------------------


def test_note_is_saved_for_the_chosen_client_only(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    add_call(sessions, "901.1", operator_id=people["op1"], outcome="answered")
    token = log_in(client, "op1")
    response = client.post("/api/calls/901.1/note", headers={"X-CSRF-Token": token},
                           json={"note": "Wants a callback on Monday", "disposition": "callback",
                                 "client_id": people["client"]})
    assert response.status_code == 200, response.text
    with sessions() as session:
        call = session.scalar(select(Call).where(Call.linkedid == "901.1"))
        assert (call.client_id, call.disposition) == (people["client"], "callback")
        notes = session.scalars(select(Interaction)).all()
        assert [(n.client_id, n.author_id, n.note) for n in notes] == [
            (people["client"], people["op1"], "Wants a callback on Monday")
        ]
    timeline = client.get(f"/api/clients/{people['client']}").json()["timeline"]
    assert any(item["note"] == "Wants a callback on Monday" for item in timeline)


def test_note_with_an_unknown_disposition_is_422(client: TestClient) -> None:
    token = log_in(client, "op1")
    response = client.post("/api/calls/902.1/note", headers={"X-CSRF-Token": token},
                           json={"note": "", "disposition": "bribe"})
    assert response.status_code == 422


def test_calls_list_filters_by_outcome_and_shows_wait_time(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    add_call(sessions, "903.1", operator_id=people["op1"], outcome="answered", talk_seconds=125,
             client_id=people["client"], started_at=now - timedelta(minutes=5))
    add_call(sessions, "903.2", outcome="abandoned", wait_seconds=37, started_at=now)
    add_call(sessions, "903.3", outcome="missed", started_at=now - timedelta(minutes=1))
    add_call(sessions, "903.4", outcome="ivr", queue="", ivr_path="main>1>sales>callback",
             started_at=now - timedelta(minutes=2))
    log_in(client, "op1")
    assert [c["linkedid"] for c in client.get("/api/calls").json()] == ["903.2", "903.3", "903.4", "903.1"]
    assert [c["linkedid"] for c in client.get("/api/calls", params={"outcome": "ivr"}).json()] == ["903.4"]
    assert "завершён в IVR" in client.get("/calls", params={"outcome": "ivr"}).text
    [abandoned] = client.get("/api/calls", params={"outcome": "abandoned"}).json()
    assert (abandoned["linkedid"], abandoned["wait_seconds"]) == ("903.2", 37)
    assert client.get("/api/calls", params={"outcome": "nonsense"}).status_code == 422

    page = client.get("/calls", params={"outcome": "abandoned"}).text
    assert 'data-linkedid="903.2"' in page and 'data-linkedid="903.1"' not in page
    assert "брошен" in page and "0:37" in page
    full = client.get("/calls").text
    assert "Иван Петров" in full and "2:05" in full and "Ольга Оператор" in full


def test_calls_list_filters_by_number_queue_day_and_who_answered(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    """The number in any form; the day in the browser's zone (Chelyabinsk here: a call at 20:30 UTC
    is the next day there); another's calls only where the viewer may see them."""
    add_call(sessions, "905.1", started_at=datetime(2026, 11, 23, 20, 30, tzinfo=UTC), operator_id=people["op1"])
    add_call(sessions, "905.2", started_at=datetime(2026, 11, 23, 12, 0, tzinfo=UTC), queue="support",
             caller_raw="89123456789", caller_e164="+79123456789", operator_id=people["op2"])
    add_call(sessions, "905.3", started_at=datetime(2026, 11, 24, 3, 0, tzinfo=UTC), caller_raw="anonymous",
             caller_e164=None)

    def shown(**params: str) -> list[str]:
        return re.findall(r'<tr data-linkedid="([^"]+)"', client.get("/calls", params=params).text)

    log_in(client, "super1")
    assert shown() == ["905.3", "905.1", "905.2"]
    assert shown(number="8 (912) 345-67-89") == shown(number="+79123456789") == ["905.2"]
    assert shown(number="anonymous") == ["905.3"]
    assert shown(queue="support") == ["905.2"]
    assert shown(day="2026-11-24", tz="Asia/Yekaterinburg") == ["905.3", "905.1"]
    assert shown(day="2026-11-24", tz="UTC") == ["905.3"]
    assert shown(day="2026-11-24", tz="Mars/Olympus") == ["905.3"]  # no such zone: UTC
    assert shown(agent=str(people["op2"])) == ["905.2"]
    assert [c["linkedid"] for c in client.get("/api/calls", params={"number": "89123456789"}).json()] == ["905.2"]
    assert [c["linkedid"] for c in client.get("/api/calls", params={"queue": "support"}).json()] == ["905.2"]
    page = client.get("/calls", params={"queue": "sales", "number": "83517654321"}).text
    assert 'value="83517654321"' in page and '<option value="sales" selected>' not in page  # no such department

    client.cookies.clear()
    log_in(client, "op1")
    assert shown(agent=str(people["op2"])) == ["905.3", "905.1", "905.2"]  # not theirs to filter by: ignored


def test_call_log_export_has_every_filtered_call_in_the_browsers_zone(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    """More calls than one page of the export's reads (1,000), each once; a filter as on /calls."""
    start = datetime(2026, 11, 23, 20, 30, tzinfo=UTC)
    with sessions.begin() as session:
        session.add(Department(code="service", name="Сервис", queue="support"))
        session.add_all(Call(linkedid=f"906.{n}", started_at=start - timedelta(seconds=n // 2), queue="sales",
                             caller_raw="83517654321", caller_e164="+73517654321", status="ended", outcome="answered",
                             operator_id=people["op1"], wait_seconds=3, talk_seconds=60) for n in range(1003))
    add_call(sessions, "906.support", started_at=start, queue="support", outcome="abandoned", wait_seconds=40)
    log_in(client, "super1")
    assert 'id="calls-export" href="/api/supervisor/calls.csv?queue=support' in client.get(
        "/calls", params={"queue": "support"}).text
    every = client.get("/api/supervisor/calls.csv").content.decode("utf-8-sig").splitlines()
    assert every[0] == ",".join(("linkedid", "started_at", "direction", "caller", "caller_name", "client",
                                 "department", "operator", "outcome", "wait_seconds", "talk_seconds", "disposition",
                                 "score", "review"))
    linkedids = [line.split(",")[0] for line in every[1:]]
    assert len(linkedids) == len(set(linkedids)) == 1004
    support = client.get("/api/supervisor/calls.csv",
                         params={"queue": "support", "tz": "Asia/Yekaterinburg"}).content.decode("utf-8-sig")
    assert support.splitlines()[1] == "906.support,2026-11-24 01:30:00,inbound,'+73517654321,,,Сервис,,abandoned,40,,,,"
    client.cookies.clear()
    log_in(client, "op1")
    assert 'id="calls-export"' not in client.get("/calls").text
    assert client.get("/api/supervisor/calls.csv").status_code == 403


def test_calls_list_names_departments_and_only_real_caller_names(client: TestClient, sessions) -> None:  # type: ignore[no-untyped-def]
    """People read the queue's department and a caller ID name that is a name; the time is UTC
    in the markup, for the page to show in the browser's zone."""
    with sessions.begin() as session:
        session.add(Department(code="service", name="Сервис", queue="support"))
    started = datetime(2026, 11, 24, 9, 55, 34, tzinfo=UTC)
    add_call(sessions, "904.1", queue="support", caller_name="Ivan Petrov", started_at=started)
    add_call(sessions, "904.2", queue="nightline", caller_name="83517654321")  # no department: the queue as is
    add_call(sessions, "904.3", caller_raw="anonymous", caller_e164=None, caller_name="anonymous")
    log_in(client, "op1")
    rows = {row.split('"')[1]: row for row in client.get("/calls").text.split("data-linkedid=")[1:]}
    assert "<td>Сервис</td>" in rows["904.1"] and "<td>support</td>" not in rows["904.1"]
    assert '<span class="muted">Ivan Petrov</span>' in rows["904.1"]
    assert 'data-dial="+73517654321"' in rows["904.1"], "a logged number is click-to-call"
    assert '<time datetime="2026-11-24T09:55:34+00:00" data-local>2026-11-24 09:55:34 UTC</time>' in rows["904.1"]
    assert "<td>nightline</td>" in rows["904.2"] and 'class="muted"' not in rows["904.2"]
    assert "anonymous" not in rows["904.3"] and "data-dial" not in rows["904.3"]
    assert '<td class="caller">Номер скрыт</td>' in rows["904.3"]  # withheld, in the reader's words


def test_operator_edits_a_clients_fields_and_numbers(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    token = log_in(client, "op1")
    headers = {"X-CSRF-Token": token}
    url = f"/api/clients/{people['client']}"
    card = client.patch(url, headers=headers, json={"name": " Иван Петрович Петров ", "city": "Миасс",
                                                    "email": "ivan@example.ru", "notes": "Звонить после 18",
                                                    "segment": "key"})
    assert card.status_code == 200, card.text
    assert {k: card.json()[k] for k in ("name", "city", "email", "notes", "segment")} == {
        "name": "Иван Петрович Петров", "city": "Миасс", "email": "ivan@example.ru", "notes": "Звонить после 18",
        "segment": "key"}
    assert client.patch(url, headers=headers, json={"city": "Копейск"}).json()["name"] == "Иван Петрович Петров"
    empty = client.patch(url, headers=headers, json={"name": "  "})
    assert empty.status_code == 422 and empty.json()["detail"] == "Не указано имя."  # op1 reads Russian
    assert client.patch(url, headers=headers, json={"segment": "platinum"}).status_code == 422
    assert client.patch(url, json={"city": "X"}).status_code == 403  # no CSRF header
    assert client.patch("/api/clients/999999", headers=headers, json={"city": "X"}).status_code == 404

    added = client.post(f"{url}/phones", headers=headers, json={"number": "8 (351) 222-33-44", "label": "рабочий"})
    assert added.status_code == 201
    assert {(p["e164"], p["label"]) for p in added.json()["phones"]} == {
        ("+73517654321", "work"), ("+73512223344", "рабочий")}
    bad = client.post(f"{url}/phones", headers=headers, json={"number": "12345"})
    assert bad.status_code == 422 and bad.json()["detail"] == "«12345» — не номер телефона."
    gone = client.delete(f"{url}/phones/+73517654321", headers=headers)
    assert [p["e164"] for p in gone.json()["phones"]] == ["+73512223344"]
    assert client.delete(f"{url}/phones/+73517654321", headers=headers).status_code == 404
    assert client.get("/api/clients", params={"q": "222-33-44"}).json()[0]["id"] == people["client"]

    noted = client.post(f"{url}/notes", headers=headers, json={"note": "  Прислал письмо о переезде "})
    assert noted.status_code == 201
    first = noted.json()["timeline"][0]
    assert (first["type"], first["note"], first["operator"]) == ("note", "Прислал письмо о переезде", "Ольга Оператор")
    assert client.post(f"{url}/notes", headers=headers, json={"note": "   "}).json()["detail"] == "Заметка пуста."
    with sessions() as session:
        row = session.get(Client, people["client"])
        assert (row.name, row.city, row.segment) == ("Иван Петрович Петров", "Копейск", "key")
        assert session.scalar(select(Phone.id).where(Phone.e164 == "+73517654321")) is not None  # calls keep it


def test_clients_page_lists_my_clients_until_something_is_searched(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as session:
        session.get(Client, people["client"]).manager_id = people["op1"]
    log_in(client, "op1")
    page = client.get("/clients").text
    mine = page.split('id="my-clients"')[1].split("</ul>")[0]
    assert "Мои клиенты (1)" in page and "Иван Петров" in mine and 'data-dial="+73517654321"' in mine
    searched = client.get("/clients", params={"q": "script"}).text
    assert 'id="my-clients"' not in searched and 'id="client-list"' in searched
    client.cookies.clear()
    log_in(client, "op2")
    assert 'id="my-clients"' not in client.get("/clients").text


def test_only_supervising_roles_change_the_personal_manager_and_it_is_audited(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/clients/{people['client']}"
    headers = {"X-CSRF-Token": log_in(client, "op1")}
    refused = client.patch(url, headers=headers, json={"manager_id": people["op1"]})
    assert refused.status_code == 403 and "Личного менеджера" in client.patch(
        url, headers=headers, json={"manager_id": None}).json()["detail"]
    client.cookies.clear()
    headers = {"X-CSRF-Token": log_in(client, "super1")}
    assert client.patch(url, headers=headers, json={"manager_id": people["op2"]}).json()["manager"]["id"] == people["op2"]
    assert client.patch(url, headers=headers, json={"manager_id": 999999}).status_code == 422
    assert client.patch(url, headers=headers, json={"manager_id": None}).json()["manager"] is None
    page = client.get(f"/clients/{people['client']}").text
    assert '"managers": [' in page and "Pavel Second" in page
    with sessions() as session:
        entries = session.execute(select(AuditEntry.actor_login, AuditEntry.action, AuditEntry.details)
                                  .order_by(AuditEntry.id)).all()
    assert [tuple(e) for e in entries] == [("super1", "manager", {"from": None, "to": people["op2"]}),
                                           ("super1", "manager", {"from": people["op2"], "to": None})]


# ---- language, click-to-call, escaping ---------------------------------------------------------------


def test_language_switch_is_kept_on_the_operator(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    token = log_in(client, "op1")
    assert "Выйти" in client.get("/desk").text
    response = client.post("/api/language", json={"language": "en"}, headers={"X-CSRF-Token": token})
    assert response.json() == {"language": "en"}
    desk = client.get("/desk").text
    assert "Log out" in desk and '<html lang="en">' in desk
    with sessions() as session:
        assert session.get(Operator, people["op1"]).language == "en"
    assert client.post("/api/language", json={"language": "de"}, headers={"X-CSRF-Token": token}).status_code == 422
    client.cookies.clear()
    log_in(client, "op1")
    assert "Log out" in client.get("/desk").text, "the next login starts in the chosen language"


def test_click_to_call_rings_the_operators_phone_with_e164(client: TestClient, dialer: RecordingDialer) -> None:
    token = log_in(client, "op1")
    response = client.post("/api/dial", json={"number": "8 351 765-43-21"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    assert dialer.calls == [("Local/101@agents", "+73517654321")]
    bad = client.post("/api/dial", json={"number": "hello"}, headers={"X-CSRF-Token": token})
    assert bad.status_code == 422 and bad.json()["detail"] == "«hello» — не номер телефона."
    empty = client.post("/api/dial", json={"number": "  "}, headers={"X-CSRF-Token": token})
    assert empty.status_code == 422 and empty.json()["detail"] == "Номер телефона не указан."


def test_click_to_call_without_telephony_is_503(sessions, people) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(secret_key="s", default_language="en"), sessions, MemoryBus())
    with TestClient(app) as http:
        token = log_in(http, "op1")
        response = http.post("/api/dial", json={"number": "+73517654321"}, headers={"X-CSRF-Token": token})
    assert response.status_code == 503
    assert "Звонок из CRM недоступен" in response.json()["detail"]


class FailingDialer:
    """A dialer whose AMI action fails the way ami_bridge.client reports it (op1 reads Russian)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def click_to_call(self, operator_interface: str, number_e164: str) -> str:
        raise self.error


@pytest.mark.parametrize(("error", "status", "message"), [
    (AmiError("Originate failed"), 502, "АТС отказала в звонке: Originate failed"),
    (AmiTimeout("no reply to Originate within 5s"), 503, "АТС сейчас недоступна"),
    (AmiDisconnected("AMI connection lost"), 503, "АТС сейчас недоступна"),
])
def test_click_to_call_failing_at_the_pbx_says_why(
    sessions, people, error: Exception, status: int, message: str  # type: ignore[no-untyped-def]
) -> None:
    app = create_app(Settings(secret_key="s", default_language="en"), sessions, MemoryBus(), FailingDialer(error))
    with TestClient(app, raise_server_exceptions=False) as http:
        token = log_in(http, "op1")
        response = http.post("/api/dial", json={"number": "+73517654321"}, headers={"X-CSRF-Token": token})
    assert response.status_code == status
    assert response.json()["detail"].startswith(message)


def test_hostile_names_are_text_in_server_rendered_pages(client: TestClient, sessions, people) -> None:  # type: ignore[no-untyped-def]
    add_call(sessions, "904.1", caller_name=HOSTILE, caller_raw=HOSTILE, caller_e164=None,
             client_id=people["hostile"], outcome="missed")
    log_in(client, "op1")
    for page in (client.get("/calls").text, client.get("/clients", params={"q": "script"}).text,
                 client.get(f"/clients/{people['hostile']}").text):
        assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/calls").text
    blob = re.search(r'<script type="application/json" id="page-data">(.*?)</script>',
                     client.get(f"/clients/{people['hostile']}").text, re.DOTALL)
    assert blob and json.loads(blob.group(1))["card"]["name"] == HOSTILE


# ---- the websocket --------------------------------------------------------------------------------


@pytest.fixture(params=["app", "served"])
def socket_client(request, app, people) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """Through the FastAPI app's own route, and through `served` as uvicorn runs it (a shorter way)."""
    with TestClient(app if request.param == "app" else served(app)) as http:
        yield http


def test_websocket_without_a_session_closes_4401(socket_client: TestClient) -> None:
    with pytest.raises(WebSocketDisconnect) as closed, socket_client.websocket_connect("/ws/desk") as socket:
        socket.receive_json()
    assert closed.value.code == 4401


def test_websocket_from_another_sites_page_closes_4403(socket_client: TestClient) -> None:
    log_in(socket_client, "op1")
    headers = {"origin": "https://evil.example"}
    with pytest.raises(WebSocketDisconnect) as closed, \
            socket_client.websocket_connect("/ws/desk", headers=headers) as socket:
        socket.receive_json()
    assert closed.value.code == 4403


def test_websocket_forwards_only_the_operators_own_topic(socket_client: TestClient, bus: MemoryBus, people) -> None:  # type: ignore[no-untyped-def]
    log_in(socket_client, "op1")
    with socket_client.websocket_connect("/ws/desk") as socket:
        hello = socket.receive_json()
        assert hello == {"type": "hello", "operator_id": people["op1"], "worker": os.getpid(), "now": hello["now"]}
        assert abs(hello["now"] - time.time()) < 5  # the server's clock, for the desk's timers
        socket_client.portal.call(bus.publish, desk_topic(people["op2"]), {"type": "pop", "linkedid": "for-op2"})
        socket_client.portal.call(bus.publish, desk_topic(people["op1"]), {"type": "pop", "linkedid": "for-op1"})
        assert socket.receive_json()["linkedid"] == "for-op1"
    assert bus.subscriber_count(desk_topic(people["op1"])) == 0, "subscription must be closed on disconnect"


def test_each_desk_hears_only_its_queues_rows_of_the_board(socket_client: TestClient, bus: MemoryBus, sessions,  # type: ignore[no-untyped-def]
                                                          people) -> None:
    """op1 works for sales: the kept board (and each later one) reaches op1's desk cut to sales,
    by the stored memberships until a live status says otherwise; a status that changes op1's
    queues brings the board again for the new ones."""
    with sessions.begin() as session:
        session.add(Department(code="sales", name="Sales", queue="sales",
                               operators=[session.get(Operator, people["op1"])]))
    sales = {"waiting": 2, "oldest": 1.0, "warn": 30, "alert": 60}
    support = {"waiting": 5, "oldest": 0.5, "warn": 10, "alert": 20}
    kept = {"type": "board", "queues": {"sales": sales, "support": support}}
    socket_client.portal.call(bus.keep, BOARD_KEY, BOARD_FIELD, kept, 30.0)
    log_in(socket_client, "op1")
    with socket_client.websocket_connect("/ws/desk") as socket:
        assert socket.receive_json()["type"] == "hello"
        assert socket.receive_json() == {"type": "board", "queues": {"sales": sales}}  # at once, only op1's queue
        quiet = {**sales, "waiting": 0, "oldest": None}
        socket_client.portal.call(bus.publish, BOARD_TOPIC, {"type": "board", "queues": {"sales": quiet,
                                                                                         "support": support}})
        assert socket.receive_json() == {"type": "board", "queues": {"sales": quiet}}

        status = {"type": "status", "state": "ready", "reason": "", "paused_in": [], "queues": ["sales", "support"],
                  "at": 1.0, "limit": None}
        socket_client.portal.call(bus.publish, desk_topic(people["op1"]), status)
        assert socket.receive_json() == status
        assert socket.receive_json() == {"type": "board", "queues": {"sales": quiet, "support": support}}
        socket_client.portal.call(bus.publish, desk_topic(people["op1"]), {**status, "state": "out", "queues": []})
        assert socket.receive_json()["state"] == "out"
        assert socket.receive_json() == {"type": "board", "queues": {}}
    assert bus.subscriber_count(BOARD_TOPIC) == 0, "subscription must be closed on disconnect"


def test_a_desk_with_a_kept_status_is_cut_the_board_by_its_queues(socket_client: TestClient, bus: MemoryBus,
                                                                  people) -> None:  # type: ignore[no-untyped-def]
    status = {"type": "status", "state": "paused", "reason": "lunch", "paused_in": ["support"],
              "queues": ["support"], "at": 1.0, "limit": 3600}
    socket_client.portal.call(bus.keep, desk_status_key(people["op1"]), STATUS_FIELD, status, 30.0)
    socket_client.portal.call(bus.keep, BOARD_KEY, BOARD_FIELD, {"type": "board", "queues": {
        "sales": {"waiting": 1, "oldest": 1.0, "warn": 30, "alert": 60},
        "support": {"waiting": 0, "oldest": None, "warn": 30, "alert": 60}}}, 30.0)
    log_in(socket_client, "op1")
    with socket_client.websocket_connect("/ws/desk") as socket:
        assert socket.receive_json()["type"] == "hello"
        assert socket.receive_json() == {**status, "replayed": True}
        assert socket.receive_json()["queues"] == {"support": {"waiting": 0, "oldest": None, "warn": 30, "alert": 60}}


def test_served_app_answers_pages_and_api_as_the_app_does(socket_client: TestClient) -> None:
    assert socket_client.get("/api/calls").status_code == 401
    log_in(socket_client, "op1")
    assert socket_client.get("/desk").status_code == 200


def test_russian_and_english_catalogs_have_the_same_strings() -> None:
    assert set(CATALOGS["ru"]) == set(CATALOGS["en"])
    assert all(f"disp.{code}" in CATALOGS["en"] for code in DISPOSITIONS)
    assert all(f"outcome.{code}" in CATALOGS["en"] for code in OUTCOMES)
