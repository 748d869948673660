"""Who may open the supervisor's pages, reports, exports and actions (SQLite and PostgreSQL):
operators get 403 (their attempts at actions are audited), supervisors and admins get in,
exports are audited, and without telephony an action fails clearly, and is audited too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_login import log_in

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.models import Call, Client, Department, Operator
from crm_core.passwords import hash_password

PASSWORD = "pw-demo-2"
READS = ["/api/supervisor/agents", "/api/supervisor/audit", "/api/supervisor/reports/queues",
         "/api/supervisor/reports/missed", "/api/supervisor/reports/hours.csv"]
PAGES = ["/supervisor/agents", "/supervisor/reports"]


@pytest.fixture
def ids(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    pw = hash_password(PASSWORD)
    with sessions.begin() as s:
        rows = {login: Operator(login=login, name=login, role=role, interface=iface, password_hash=pw, language="en")
                for login, role, iface in (("op1", "operator", "Local/101@agents"), ("super1", "supervisor", None),
                                           ("admin", "admin", None))}
        s.add_all(rows.values())
        s.add(Call(linkedid="x1", started_at=datetime.now(UTC), queue="sales", status="ended", outcome="abandoned",
                   caller_raw="-1+1", wait_seconds=30))
        s.flush()
        return {k: v.id for k, v in rows.items()}


@pytest.fixture
def http(sessions, ids) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(secret_key="t", default_language="en"), sessions, MemoryBus())) as client:
        yield client


def audit(sessions) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return [(e.actor_login, e.action, e.target, e.outcome) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_nobody_logged_in_gets_401_and_the_login_page(http: TestClient) -> None:
    assert [http.get(path).status_code for path in READS] == [401] * len(READS)
    assert http.get("/supervisor/agents").url.path == "/login"


def test_operator_cannot_open_reports_exports_pages_or_act(http: TestClient, sessions, ids) -> None:  # type: ignore[no-untyped-def]
    csrf = log_in(http, "op1", PASSWORD)
    assert [http.get(path).status_code for path in READS] == [403] * len(READS)
    for path in PAGES:
        page = http.get(path)
        assert page.status_code == 403 and 'id="forbidden"' in page.text
    desk = http.get("/desk").text
    assert "/supervisor/agents" not in desk and "/supervisor/reports" not in desk
    headers = {"X-CSRF-Token": csrf}
    assert http.post(f"/api/supervisor/agents/{ids['op1']}/pause", json={"reason": "x"}, headers=headers).status_code == 403
    assert http.post(f"/api/supervisor/agents/{ids['op1']}/spy", json={"mode": "listen"}, headers=headers).status_code == 403
    assert http.delete(f"/api/supervisor/agents/{ids['op1']}/queues/sales", headers=headers).status_code == 403
    assert audit(sessions) == [
        ("op1", "forbidden", "/api/supervisor/reports/hours.csv", "refused"),  # an export attempt is audited
        ("op1", "forbidden", f"/api/supervisor/agents/{ids['op1']}/pause", "refused"),
        ("op1", "forbidden", f"/api/supervisor/agents/{ids['op1']}/spy", "refused"),
        ("op1", "forbidden", f"/api/supervisor/agents/{ids['op1']}/queues/sales", "refused"),
    ]


@pytest.mark.parametrize("login", ["super1", "admin"])
def test_supervisors_and_admins_read_pages_reports_and_audited_exports(http: TestClient, sessions, login: str) -> None:  # type: ignore[no-untyped-def]
    log_in(http, login, PASSWORD)
    assert [http.get(path).status_code for path in READS] == [200] * len(READS)
    assert all(http.get(path).status_code == 200 for path in PAGES)
    assert "/supervisor/reports" in http.get("/desk").text
    missed = http.get("/api/supervisor/reports/missed.csv", params={"tz": "Europe/Moscow"})
    assert missed.headers["content-type"].startswith("text/csv")
    assert "attachment" in missed.headers["content-disposition"]
    assert missed.content.startswith(b"\xef\xbb\xbf")
    assert ",'-1+1,," in missed.content.decode("utf-8-sig")
    assert [a[1:] for a in audit(sessions)] == [("export", "hours", "ok"), ("export", "missed", "ok")]
    assert http.get("/api/supervisor/reports/queues", params={"from": "2026-13-01"}).status_code == 422
    assert http.get("/api/supervisor/reports/queues", params={"tz": "Mars/Olympus"}).status_code == 422
    assert http.get("/api/supervisor/reports/nosuch").status_code == 422


def test_reports_page_names_departments_and_agents(http: TestClient, sessions, ids) -> None:  # type: ignore[no-untyped-def]
    """Figures stay keyed by queue and login (the CSV's columns); the page shows names."""
    with sessions.begin() as s:
        s.add(Department(code="sales", name="Sales desk", queue="sales"))
        s.add(Call(linkedid="x2", started_at=datetime.now(UTC), queue="sales", status="ended", outcome="answered",
                   caller_raw="83517654321", operator_id=ids["op1"], wait_seconds=5, talk_seconds=60))
        s.add_all(Call(linkedid=linkedid, started_at=datetime.now(UTC), queue="sales", status="ended",
                       outcome="missed", caller_raw=raw, caller_e164=e164, wait_seconds=40)
                  for linkedid, raw, e164 in (("x3", "83517654321", "+73517654321"), ("x4", "anonymous", None)))
        s.get(Operator, ids["op1"]).name = "Olga First"
    log_in(http, "super1", PASSWORD)
    page = http.get("/supervisor/reports").text
    queues, agents, missed = (page.split(f'id="report-{name}"')[1].split("</section>")[0]
                              for name in ("queues", "agents", "missed"))
    assert '<th scope="row">Sales desk</th>' in queues and '<th scope="row">sales</th>' not in queues
    assert '<th scope="row">Olga First</th>' in agents
    assert "<td>Sales desk</td>" in missed
    rows = {row.split('"')[1]: row.split("</tr>")[0] for row in missed.split("data-linkedid=")[1:]}
    assert 'data-dial="+73517654321"' in rows["x3"] and "+7 351 765-43-21" in rows["x3"]  # call them back
    assert '<td class="caller">Number withheld</td>' in rows["x4"] and "anonymous" not in rows["x4"]
    assert '<td class="caller">-1+1</td>' in rows["x1"]  # not a number: as it came
    zones = page.split('<datalist id="time-zones">')[1].split("</datalist>")[0]  # the zone field's choices
    assert 'list="time-zones"' in page and '<option value="Asia/Yekaterinburg">' in zones
    assert '<option value="Europe/Kaliningrad">' in zones and '<option value="UTC">' in zones
    assert http.get("/api/supervisor/reports/agents.csv").text.splitlines()[1].startswith("op1,")


def test_a_leaving_agents_clients_are_handed_to_a_colleague_and_audited(http: TestClient, sessions, ids) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        s.add_all(Client(name=f"Client {n}", manager_id=ids["op1"]) for n in range(3))
        s.add(Client(name="Someone else's", manager_id=ids["admin"]))
    headers = {"X-CSRF-Token": log_in(http, "super1", PASSWORD)}
    op1 = next(a for a in http.get("/api/supervisor/agents").json()["agents"] if a["login"] == "op1")
    assert op1["clients"] == 3
    url = f"/api/supervisor/agents/{ids['op1']}/clients"
    assert http.post(url, json={"to_operator_id": 999999}, headers=headers).status_code == 422
    done = http.post(url, json={"to_operator_id": ids["admin"]}, headers=headers)
    assert done.status_code == 200 and done.json() == {"message": "3 clients handed over.", "details": {"moved": 3}}
    assert http.post(url, json={"to_operator_id": None}, headers=headers).json()["details"] == {"moved": 0}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Client).where(Client.manager_id == ids["admin"])) == 4
    assert [a[1:] for a in audit(sessions)][-2:] == [("hand_over_clients", f"agent {ids['op1']}", "ok")] * 2


def test_supervisor_without_csrf_or_telephony_is_refused_and_audited(http: TestClient, sessions, ids) -> None:  # type: ignore[no-untyped-def]
    csrf = log_in(http, "super1", PASSWORD)
    path = f"/api/supervisor/agents/{ids['op1']}/pause"
    assert http.post(path, json={"reason": "x"}).status_code == 403  # no CSRF header
    answer = http.post(path, json={"reason": "lunch"}, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 503 and "no telephony" in answer.json()["detail"]
    missing = http.post("/api/supervisor/agents/9999/logout", headers={"X-CSRF-Token": csrf})
    assert missing.status_code == 404
    no_phone = http.post(f"/api/supervisor/agents/{ids['admin']}/pause", json={}, headers={"X-CSRF-Token": csrf})
    assert no_phone.status_code == 409
    assert audit(sessions) == [("super1", "pause", "op1", "failed"), ("super1", "logout", "9999", "refused"),
                               ("super1", "pause", str(ids["admin"]), "refused")]
