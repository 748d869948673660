"""Who sees what inside the routes they may open (SQLite and PostgreSQL): clients and calls by
department, a department head's supervisor pages limited to their departments, audited client-base
exports, and the login rate limit shared by every web worker."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import pytest
from fastapi.testclient import TestClient
from services import REDIS_URL, require_service
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect
from web_login import csrf_of, log_in

from agent_desk.app import create_app
from agent_desk.pages import ADDRESS_FAILURES, LOGIN_FAILURES
from callcard.bus import WALL_KEY, MemoryBus, RedisBus
from callcard.ratelimit import RateLimit, retry_after
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.models import Call, Client, ClientPhone, Debt, Department, Operator, Phone, Request
from crm_core.passwords import hash_password
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator
from routing.wall import SNAPSHOT_FIELD, scoped_snapshot

PASSWORD = "scope-pass-1"
NOW = datetime.now(UTC)


@cache
def _hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def world(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Sales, service and collections with their people; clients tied to each in every way there is."""
    with sessions.begin() as s:
        sales = Department(code="sales", name="Sales", queue="sales")
        service = Department(code="service", name="Service", queue="support")
        collections = Department(code="collections", name="Collections", queue="collections")
        people = {
            "op_sales": Operator(login="op_sales", name="Op Sales", interface="Local/101@agents", departments=[sales]),
            "op_service": Operator(login="op_service", name="Op Service", interface="Local/103@agents",
                                   departments=[service]),
            "op_coll": Operator(login="op_coll", name="Op Coll", interface="Local/104@agents",
                                departments=[collections]),
            "head_sales": Operator(login="head_sales", name="Head Sales", role="department_head"),
            "super1": Operator(login="super1", name="Super", role="supervisor"),
        }
        for person in people.values():
            person.password_hash, person.language = _hash(), "en"
        sales.head = people["head_sales"]  # heads sales without being a member
        clients = {
            "managed": Client(name="Client managed by sales", manager=people["op_sales"]),
            "called_service": Client(name="Client called service"),
            "asked_service": Client(name="Client asked service"),
            "debtor": Client(name="Client debtor", debt_open=True),
            "free": Client(name="Client free"),
            "taken": Client(name="Client taken by op_service"),
            "campaign": Client(name="Client on campaign", debt_open=True),
        }
        clients["managed"].phone_links.append(ClientPhone(phone=Phone(e164="+73511110000", kind="landline")))
        s.add_all([sales, service, collections, *people.values(), *clients.values()])
        s.flush()
        ids = {**{k: v.id for k, v in people.items()}, **{k: v.id for k, v in clients.items()},
               "sales": sales.id, "service": service.id}

        def call(linkedid: str, queue: str, department: Department | None, client: str | None = None,
                 operator: str | None = None, outcome: str = "answered") -> Call:
            return Call(linkedid=linkedid, started_at=NOW - timedelta(minutes=5), queue=queue,
                        department_id=department.id if department else None,
                        client_id=ids[client] if client else None, operator_id=ids[operator] if operator else None,
                        status="ended", outcome=outcome, direction="inbound", wait_seconds=5, talk_seconds=60,
                        caller_e164="+73511110000")

        s.add_all([
            call("c.sales", "sales", sales, "taken", "op_sales"),
            call("c.service", "support", service, "called_service"),
            call("c.taken", "sales", sales, "taken", "op_service"),  # op_service took a sales call
            call("c.ivr", "", None, outcome="abandoned"),  # hung up in the IVR: nobody's department
            Request(subject="Fix it", department_id=service.id, client_id=ids["asked_service"]),
        ])
        debt = Debt(client_id=ids["campaign"], creditor="Bank", contract="S-1", principal=Decimal(5),
                    total_due=Decimal(5))
        sales_campaign = Campaign(name="Sales campaign", department_id=sales.id)
        service_campaign = Campaign(name="Service campaign", department_id=service.id)
        s.add_all([debt, sales_campaign, service_campaign])
        s.flush()
        s.add_all([CampaignDebt(campaign_id=sales_campaign.id, debt_id=debt.id),
                   CampaignOperator(campaign_id=sales_campaign.id, operator_id=ids["op_sales"])])
        return {**ids, "sales_campaign": sales_campaign.id, "service_campaign": service_campaign.id}


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus()


@pytest.fixture
def http(sessions, bus, world) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(create_app(Settings(secret_key="scopes", default_language="en"), sessions, bus)) as client:
        yield client


def as_user(http: TestClient, login: str) -> dict[str, str]:
    http.cookies.clear()
    return {"X-CSRF-Token": log_in(http, login, PASSWORD)}


def page_data(http: TestClient, login: str, path: str) -> dict[str, Any]:
    """The JSON a page hands its script, as `login` sees it."""
    as_user(http, login)
    html = http.get(path).text
    return json.loads(html.split('<script type="application/json" id="page-data">')[1].split("</script>")[0])


def audit(sessions) -> list[tuple[str, str, str, str]]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return [(e.actor_login, e.action, e.target, e.outcome)
                for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]


# ---- clients and calls by department ----------------------------------------------------------------

SEEN = {
    "op_sales": {"managed", "free", "taken", "campaign"},
    "op_service": {"called_service", "asked_service", "free", "taken"},
    "op_coll": {"debtor", "campaign", "free"},
    "head_sales": {"managed", "free", "taken"},
    "super1": {"managed", "called_service", "asked_service", "debtor", "free", "taken", "campaign"},
}


@pytest.mark.parametrize("login", sorted(SEEN))
def test_each_person_finds_and_opens_only_the_clients_their_departments_may_see(
        http: TestClient, world: dict[str, int], login: str) -> None:
    as_user(http, login)
    names = {c["id"] for c in http.get("/api/clients", params={"q": "client", "limit": 100}).json()}
    assert names == {world[key] for key in SEEN[login]}
    page_names = set(http.get("/clients", params={"q": "client"}).text.split('class="client-name" href="/clients/')[1:])
    assert {int(chunk.split('"')[0]) for chunk in page_names} == names
    for key in SEEN["super1"]:
        card = http.get(f"/api/clients/{world[key]}")
        page = http.get(f"/clients/{world[key]}")
        if key in SEEN[login]:
            assert (card.status_code, page.status_code) == (200, 200)
        else:
            assert card.status_code == 403 and card.json()["detail"] == "This client belongs to another department."
            assert page.status_code == 403 and "another department" in page.text
    assert http.get("/api/clients/999999").status_code == 404


def test_a_note_may_go_to_the_calls_own_caller_even_of_another_department(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    headers = as_user(http, "op_service")
    with sessions.begin() as s:  # a call to op_service from the number of a sales-managed client
        s.add(Call(linkedid="c.new", started_at=NOW, queue="support", department_id=world["service"],
                   operator_id=world["op_service"], caller_e164="+73511110000", status="talking"))
    ok = http.post("/api/calls/c.new/note", headers=headers,
                   json={"note": "asked for sales", "disposition": "other", "client_id": world["managed"]})
    assert ok.status_code == 200, ok.text
    foreign = http.post("/api/calls/c.new/note", headers=headers,
                        json={"note": "x", "disposition": "other", "client_id": world["debtor"]})
    assert foreign.status_code == 403


def test_editing_a_client_and_handing_over_clients_keep_to_ones_departments(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    headers = as_user(http, "op_service")
    assert http.patch(f"/api/clients/{world['managed']}", json={"city": "X"}, headers=headers).status_code == 403
    assert http.post(f"/api/clients/{world['managed']}/phones", json={"number": "83512223344"},
                     headers=headers).status_code == 403
    assert http.patch(f"/api/clients/{world['free']}", json={"city": "Миасс"}, headers=headers).status_code == 200

    headers = as_user(http, "head_sales")
    offered = http.get(f"/clients/{world['free']}").text.split('"managers": [')[1].split("]")[0]
    assert "Op Sales" in offered and "Head Sales" in offered and "Op Service" not in offered  # their people only
    agents = http.get("/calls").text.split('id="agent-filter"')[1].split("</select>")[0]
    assert "Op Sales" in agents and "Op Service" not in agents
    other = http.patch(f"/api/clients/{world['managed']}", json={"manager_id": world["op_service"]}, headers=headers)
    assert other.status_code == 403  # a head gives clients to their own departments' people only
    assert http.patch(f"/api/clients/{world['free']}", json={"manager_id": world["op_sales"]},
                      headers=headers).status_code == 200
    moved = http.post(f"/api/supervisor/agents/{world['op_sales']}/clients",
                      json={"to_operator_id": world["op_service"]}, headers=headers)
    assert moved.status_code == 403
    with sessions() as s:
        managers = dict(s.execute(select(Client.id, Client.manager_id).where(
            Client.id.in_([world["managed"], world["free"]]))).all())
    assert managers == {world["managed"]: world["op_sales"], world["free"]: world["op_sales"]}


def test_the_call_log_shows_own_department_and_unrouted_calls(http: TestClient, world: dict[str, int]) -> None:
    as_user(http, "op_service")
    assert {c["linkedid"] for c in http.get("/api/calls").json()} == {"c.service", "c.taken", "c.ivr"}
    assert "c.sales" not in http.get("/calls").text
    assert http.get("/api/calls", params={"operator_id": world["op_sales"]}).status_code == 403
    as_user(http, "head_sales")
    assert {c["linkedid"] for c in http.get("/api/calls").json()} == {"c.sales", "c.taken", "c.ivr"}
    assert http.get("/api/calls", params={"operator_id": world["op_sales"]}).status_code == 200
    assert http.get("/api/calls", params={"operator_id": world["op_service"]}).status_code == 403
    as_user(http, "super1")
    assert len(http.get("/api/calls").json()) == 4


# ---- a department head supervises their departments --------------------------------------------------


def test_a_department_head_sees_and_acts_on_their_departments_agents_only(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    headers = as_user(http, "head_sales")
    data = http.get("/api/supervisor/agents").json()
    assert [a["login"] for a in data["agents"]] == ["op_sales"] and data["queues"] == ["sales"]
    assert "Op Service" not in http.get("/supervisor/agents").text
    assert http.post(f"/api/supervisor/agents/{world['op_service']}/pause", json={"reason": "x"},
                     headers=headers).status_code == 403
    assert http.post(f"/api/supervisor/agents/{world['op_sales']}/queues", json={"queue": "support"},
                     headers=headers).status_code == 403
    mine = http.post(f"/api/supervisor/agents/{world['op_sales']}/pause", json={"queue": "sales"}, headers=headers)
    assert mine.status_code == 503  # let in; this test runs without a PBX
    assert [row[1:] for row in audit(sessions)] == [
        ("forbidden", f"/api/supervisor/agents/{world['op_service']}/pause", "refused"),
        ("forbidden", f"/api/supervisor/agents/{world['op_sales']}/queues", "refused"),
        ("pause", "op_sales", "failed"),
    ]
    assert {e["action"] for e in http.get("/api/supervisor/audit").json()} == {"forbidden", "pause"}


def test_a_department_head_sets_thresholds_and_reads_reports_of_their_queues(
        http: TestClient, world: dict[str, int]) -> None:
    headers = as_user(http, "head_sales")
    assert [q["queue"] for q in http.get("/api/supervisor/thresholds").json()["queues"]] == ["sales"]
    limits = {"service_level_target": 80, "longest_wait_warn": 30, "longest_wait_alert": 60,
              "abandon_rate_warn": 5, "abandon_rate_alert": 10}
    assert http.put("/api/supervisor/thresholds/support", json=limits, headers=headers).status_code == 403
    assert http.put("/api/supervisor/thresholds/sales", json=limits, headers=headers).status_code == 200
    rows = http.get("/api/supervisor/reports/queues").json()["rows"]
    assert [(r["key"], r["offered"]) for r in rows] == [("sales", 2), ("total", 2)]
    report = http.get("/supervisor/reports").text
    assert "support" not in report
    as_user(http, "super1")
    rows = http.get("/api/supervisor/reports/queues").json()["rows"]
    assert [(r["key"], r["offered"]) for r in rows] == [("sales", 2), ("support", 1), ("—", 1), ("total", 4)]


WALL = {
    "type": "wall", "at": 100.0, "day_start": 0.0,
    "queues": [
        {"name": "sales", "waiting": [{"linkedid": "w1"}], "longest_wait": 7, "answered": 3, "abandoned": 1,
         "service_level": 66.7, "abandon_rate": 25.0, "asa": 4.0, "aht": 50.0, "members": [],
         "intervals": [{"start": 0.0, "answered": 3, "abandoned": 1, "service_level": 66.7, "abandon_rate": 25.0,
                        "asa": 4.0, "aht": 50.0}]},
        {"name": "support", "waiting": [], "longest_wait": 0, "answered": 1, "abandoned": 3, "service_level": 0.0,
         "abandon_rate": 75.0, "asa": 9.0, "aht": 10.0, "members": [],
         "intervals": [{"start": 0.0, "answered": 1, "abandoned": 3, "service_level": 0.0, "abandon_rate": 75.0,
                        "asa": 9.0, "aht": 10.0},
                       {"start": 900.0, "answered": 1, "abandoned": 0, "service_level": 100.0,
                        "abandon_rate": 0.0, "asa": 1.0, "aht": 5.0}]},
    ],
    "agents": [{"login": "op_sales", "queues": ["sales"]}, {"login": "op_service", "queues": ["support"]},
               {"login": "both", "queues": ["sales", "support"]}],
    "totals": {"answered": 4}, "intervals": [],
}


def test_a_heads_wall_has_their_queues_and_counts_summed_over_several() -> None:
    one = scoped_snapshot(WALL, frozenset({"sales"}))
    assert [q["name"] for q in one["queues"]] == ["sales"]
    assert [a["login"] for a in one["agents"]] == ["op_sales", "both"]
    assert one["totals"] == {"answered": 3, "abandoned": 1, "service_level": 66.7, "abandon_rate": 25.0,
                             "asa": 4.0, "aht": 50.0, "waiting": 1, "longest_wait": 7}
    assert one["intervals"] == WALL["queues"][0]["intervals"]
    two = scoped_snapshot(WALL, frozenset({"sales", "support"}))
    assert two["totals"] == {"answered": 4, "abandoned": 4, "service_level": None, "abandon_rate": 50.0,
                             "asa": None, "aht": None, "waiting": 1, "longest_wait": 7}
    assert [(i["start"], i["answered"], i["abandoned"]) for i in two["intervals"]] == [(0.0, 4, 4), (900.0, 1, 0)]
    assert scoped_snapshot(WALL, frozenset())["queues"] == []


def test_a_heads_wall_api_and_socket_carry_their_queues_only(http: TestClient, bus: MemoryBus) -> None:
    http.portal.call(bus.keep, WALL_KEY, SNAPSHOT_FIELD, WALL, 60)
    as_user(http, "head_sales")
    assert [q["name"] for q in http.get("/api/wall").json()["queues"]] == ["sales"]
    with http.websocket_connect("/ws/wall") as socket:
        assert [q["name"] for q in socket.receive_json()["queues"]] == ["sales"]
        socket.send_json({"view": "table"})
        assert [a["login"] for a in socket.receive_json()["agents"]] == ["op_sales", "both"]
    as_user(http, "super1")
    with http.websocket_connect("/ws/wall") as socket:
        assert [q["name"] for q in socket.receive_json()["queues"]] == ["sales", "support"]
    as_user(http, "op_sales")
    with pytest.raises(WebSocketDisconnect) as closed, http.websocket_connect("/ws/wall") as socket:
        socket.receive_text()
    assert closed.value.code == 4403


def test_a_department_head_runs_their_departments_campaigns_only(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    headers = as_user(http, "head_sales")
    listing = http.get("/campaigns").text
    assert "Sales campaign" in listing and "Service campaign" not in listing
    assert http.get(f"/campaigns/{world['service_campaign']}").status_code == 403
    assert http.get(f"/campaigns/{world['service_campaign']}/skipped.csv").status_code == 403
    csrf = headers["X-CSRF-Token"]
    assert http.post(f"/campaigns/{world['service_campaign']}/status",
                     data={"csrf": csrf, "action": "start"}).status_code == 403
    form = {"csrf": csrf, "name": "Head's own", "rule_set": "ru_230fz", "mode": "progressive", "max_lines": "5",
            "ring_seconds": "30", "statuses": ["active"], "weekdays": ["0", "1", "2", "3", "4"], "start": "09:00",
            "end": "20:00", "time_zone": "Europe/Moscow", "department_id": str(world["service"]),
            "operators": [str(world["op_service"])]}
    for outcome in ("no_answer", "busy", "failed", "machine", "abandoned"):
        form |= {f"retry_{outcome}_delay": "60", f"retry_{outcome}_max": "3"}
    refused = http.post("/campaigns/save", data=form)
    assert refused.status_code == 422
    assert 'data-field="department_id"' in refused.text and 'data-field="operators"' in refused.text
    saved = http.post("/campaigns/save", data={**form, "department_id": str(world["sales"]),
                                               "operators": [str(world["op_sales"])]}, follow_redirects=False)
    assert saved.status_code == 303, saved.text[:500]
    with sessions() as s:
        assert s.scalar(select(Campaign.department_id).where(Campaign.name == "Head's own")) == world["sales"]
    assert ("head_sales", "forbidden", f"/campaigns/{world['service_campaign']}/skipped.csv", "refused") \
        in audit(sessions)


# ---- exports ----------------------------------------------------------------------------------------


def _csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def test_the_client_base_export_is_for_supervising_roles_scoped_and_audited(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    as_user(http, "op_sales")
    assert http.get("/api/supervisor/clients.csv").status_code == 403
    as_user(http, "super1")
    everything = http.get("/api/supervisor/clients.csv")
    assert everything.status_code == 200 and everything.headers["content-type"].startswith("text/csv")
    rows = _csv(everything.content)
    assert rows[0] == ["id", "name", "kind", "segment", "email", "city", "phones", "manager", "debt_open",
                       "created_at"]
    assert len(rows) == 1 + 7
    assert rows[1][6:8] == ["'+73511110000", "op_sales"]  # formula-safe, as every export (reports.safe_cell)
    as_user(http, "head_sales")
    mine = {int(r[0]) for r in _csv(http.get("/api/supervisor/clients.csv").content)[1:]}
    assert mine == {world["managed"], world["taken"]}  # tied to sales; the untied are nobody's to export
    exports = [(who, target) for who, action, target, outcome in audit(sessions) if action == "export"]
    assert exports == [("super1", "client base"), ("head_sales", "client base")]
    with sessions() as s:
        details = s.scalars(select(AuditEntry.details).where(AuditEntry.action == "export")).all()
    assert details == [{"departments": "all"}, {"departments": [world["sales"]]}]


def test_every_csv_export_is_refused_to_operators_and_audited_for_the_rest(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    exports = ["/api/supervisor/reports/queues.csv", "/api/supervisor/clients.csv",
               f"/campaigns/{world['sales_campaign']}/skipped.csv", "/api/supervisor/calls.csv"]
    rejected = "/api/debt-imports/" + "j" * 20 + "/rejected.csv"
    as_user(http, "op_sales")
    assert [http.get(url).status_code for url in exports] == [403] * 4
    assert audit(sessions) == [("op_sales", "forbidden", url, "refused") for url in exports]
    as_user(http, "head_sales")
    assert [http.get(url).status_code for url in exports] == [200] * 4
    assert http.get(rejected).status_code == 403
    assert audit(sessions)[4:] == [("head_sales", "export", target, "ok") for target in
                                   ("queues", "client base", f"campaign {world['sales_campaign']} skipped",
                                    "call log")] + [("head_sales", "forbidden", rejected, "refused")]
    calls = http.get("/api/supervisor/calls.csv").content.decode("utf-8-sig").splitlines()
    assert sorted(line.split(",")[0] for line in calls[1:]) == ["c.ivr", "c.sales", "c.taken"]  # not c.service
    as_user(http, "super1")
    assert http.get(rejected).status_code == 404  # let in; no such job


# ---- the login rate limit -----------------------------------------------------------------------------


def _try(http: TestClient, login: str, password: str) -> Any:
    token = csrf_of(http.get("/login").text)
    return http.post("/login", data={"login": login, "password": password, "csrf": token}, follow_redirects=False)


def test_five_failures_lock_the_login_with_429_and_retry_after(http: TestClient) -> None:
    limit, window = LOGIN_FAILURES
    assert [_try(http, "op_sales", "wrong").status_code for _ in range(limit)] == [401] * limit
    locked = _try(http, "OP_SALES ", PASSWORD)  # the right password, same login in another spelling
    assert locked.status_code == 429
    assert 0 < int(locked.headers["retry-after"]) <= window
    assert "Too many failed sign-in attempts. Try again in 5 min." in locked.text
    assert _try(http, "op_coll", PASSWORD).status_code == 303  # another login is not locked


def test_a_good_login_clears_the_logins_failures(http: TestClient) -> None:
    limit, _ = LOGIN_FAILURES
    assert [_try(http, "op_sales", "wrong").status_code for _ in range(limit - 1)] == [401] * (limit - 1)
    assert _try(http, "op_sales", PASSWORD).status_code == 303
    http.cookies.clear()
    assert [_try(http, "op_sales", "wrong").status_code for _ in range(limit)] == [401] * limit
    assert _try(http, "op_sales", "wrong").status_code == 429


def test_failures_from_one_address_across_logins_lock_the_address(http: TestClient) -> None:
    limit, _ = ADDRESS_FAILURES
    statuses = [_try(http, f"nobody{i}", "wrong").status_code for i in range(limit)]
    assert statuses == [401] * limit
    assert _try(http, "op_sales", PASSWORD).status_code == 429


def test_good_logins_from_one_office_address_are_never_counted(http: TestClient) -> None:
    limit, _ = ADDRESS_FAILURES
    for _ in range(limit + 2):
        http.cookies.clear()
        assert _try(http, "op_sales", PASSWORD).status_code == 303


async def test_the_limit_frees_the_key_when_the_oldest_attempt_ages_out() -> None:
    now = [1000.0]
    limit = RateLimit(MemoryBus(), "t", 2, 60.0, clock=lambda: now[0])
    assert (await limit.attempt("k")).wait is None
    now[0] += 10
    assert (await limit.attempt("k")).wait is None
    now[0] += 5
    assert (await limit.attempt("k")).wait == pytest.approx(45.0)  # the first ages out at 1060
    now[0] = 1060.5
    assert (await limit.attempt("k")).wait is None
    assert retry_after([], 0.0, 1, 5.0) is None and retry_after([0.0, 1.0], 2.0, 2, 5.0) == pytest.approx(3.0)


def test_web_workers_on_redis_share_the_count(sessions, world) -> None:  # type: ignore[no-untyped-def]
    require_service("Redis", "127.0.0.1", 6379)
    prefix = f"callcard-test-{uuid.uuid4().hex[:8]}:"
    limit, _ = LOGIN_FAILURES
    apps = [create_app(Settings(secret_key="scopes"), sessions, RedisBus(REDIS_URL, prefix)) for _ in range(2)]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        try:
            for i in range(limit):
                assert _try(first if i % 2 else second, "op_sales", "wrong").status_code == 401
            assert _try(first, "op_sales", PASSWORD).status_code == 429
            assert _try(second, "op_sales", PASSWORD).status_code == 429
        finally:
            first.portal.call(apps[0].state.desk.bus.close)
            second.portal.call(apps[1].state.desk.bus.close)



def test_merging_clients_is_for_supervising_roles_within_their_reach_and_audited(
        http: TestClient, sessions, world: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:  # twins of the sales client: one the head may see, one they may not
        shared = s.scalars(select(Phone).where(Phone.e164 == "+73511110000")).one()
        for twin in ("free", "called_service"):
            s.add(ClientPhone(client_id=world[twin], phone_id=shared.id))
    twins = {login: [(d["id"], d["reason"]) for d in page_data(http, login, f"/clients/{world['managed']}")["duplicates"]]
             for login in ("head_sales", "super1")}
    assert twins == {"head_sales": [(world["free"], "number")],
                     "super1": sorted([(world["free"], "number"), (world["called_service"], "number")])}
    assert "duplicates" not in page_data(http, "op_sales", f"/clients/{world['managed']}")
    managed = f"/api/clients/{world['managed']}/merge"
    headers = as_user(http, "op_sales")
    assert http.post(managed, json={"duplicate_id": world["free"]}, headers=headers).status_code == 403
    headers = as_user(http, "head_sales")
    assert http.post(managed, json={"duplicate_id": world["called_service"]}, headers=headers).status_code == 403
    assert http.post(managed, json={"duplicate_id": world["managed"]}, headers=headers).status_code == 422
    merged = http.post(managed, json={"duplicate_id": world["free"]}, headers=headers)
    assert merged.status_code == 200 and merged.json()["card"]["id"] == world["managed"]
    assert http.get(f"/api/clients/{world['free']}").status_code == 404
    assert audit(sessions)[0] == ("op_sales", "forbidden", managed, "refused")
    assert audit(sessions)[-1] == ("head_sales", "merge", f"client {world['managed']}", "ok")
    with sessions() as s:
        details = s.scalars(select(AuditEntry.details).where(AuditEntry.action == "merge")).one()
    assert details == {"duplicate": world["free"], "name": "Client free"}
