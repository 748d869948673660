"""Every route × every role: who is let in and who is refused, with real logins against a real
database (SQLite and PostgreSQL). A route missing from `MATRIX` fails the test, so a new route
must be classified here (and in README, "Security") before it ships.

Allowed means anything but 401/403 and a redirect to the login form (a 404, 409, 422 or 503 for
a stand-in object or a missing PBX is fine: the role got past the door). Denied means 401 (API)
or the login form (pages) for nobody logged in, and 403 for a logged-in role that may not.
The route's objects belong to the department head's department, so "allowed" for the head is
allowed in earnest; other departments' objects are refused to them in tests/test_access_scopes.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, WebSocketRoute
from starlette.websockets import WebSocketDisconnect
from web_login import csrf_of, log_in

from agent_desk.app import create_app
from callcard.bus import WALL_KEY, MemoryBus
from callcard.settings import Settings
from crm_core.models import Call, Client, Debt, Department, Operator, Request
from crm_core.passwords import hash_password
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator
from routing.wall import SNAPSHOT_FIELD

PASSWORD = "matrix-pass-1"
ROLES = ("anonymous", "operator", "department_head", "supervisor", "admin")
LOGINS = {"operator": "op_sales", "department_head": "head_sales", "supervisor": "super1", "admin": "admin1"}

EVERYONE = frozenset(ROLES)
USERS = EVERYONE - {"anonymous"}
LEADS = frozenset({"department_head", "supervisor", "admin"})
SUPERVISORS = frozenset({"supervisor", "admin"})
ADMIN = frozenset({"admin"})

# (method, path) -> the roles let in; "WS" for websockets, "MOUNT" for static files.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    # operations and the API's own description: no data, no session
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,
    ("GET", "/metrics"): EVERYONE,
    ("GET", "/api/openapi.json"): EVERYONE,
    ("GET", "/api/docs"): EVERYONE,
    ("GET", "/docs/oauth2-redirect"): EVERYONE,
    ("GET", "/redoc"): EVERYONE,
    ("MOUNT", "/static"): EVERYONE,
    # signing in and out
    ("GET", "/"): EVERYONE,
    ("GET", "/login"): EVERYONE,
    ("POST", "/login"): EVERYONE,
    ("POST", "/logout"): EVERYONE,
    ("POST", "/public/requests"): EVERYONE,  # the site's contact form: rate-limited, no session
    # the desk
    ("GET", "/desk"): USERS,
    ("GET", "/calls"): USERS,
    ("GET", "/clients"): USERS,
    ("GET", "/clients/{client_id}"): USERS,
    ("WS", "/ws/desk"): USERS,
    ("GET", "/api/me"): USERS,
    ("PUT", "/api/me/status"): USERS,  # their own queues only: tests/test_desk_status.py
    ("GET", "/api/me/today"): USERS,  # their own day only: tests/test_desk_status.py
    ("GET", "/api/clients"): USERS,
    ("POST", "/api/clients"): USERS,
    ("GET", "/api/clients/{client_id}"): USERS,
    ("PATCH", "/api/clients/{client_id}"): USERS,  # `manager_id` only for LEADS: tests/test_desk_http.py
    ("POST", "/api/clients/{client_id}/phones"): USERS,
    ("POST", "/api/clients/{client_id}/notes"): USERS,
    ("DELETE", "/api/clients/{client_id}/phones/{e164}"): USERS,
    ("POST", "/api/clients/{client_id}/merge"): LEADS,
    ("GET", "/api/calls"): USERS,
    ("POST", "/api/calls/{linkedid}/note"): USERS,
    ("GET", "/api/calls/{linkedid}/recording"): USERS,  # which calls: tests/test_recordings.py
    ("GET", "/api/calls/playable"): USERS,  # which calls: tests/test_recordings.py
    ("PUT", "/api/calls/{linkedid}/review"): LEADS,
    ("POST", "/api/calls/{linkedid}/transfer"): USERS,
    ("POST", "/api/dial"): USERS,
    ("POST", "/api/language"): USERS,
    # requests (each checks the request's department)
    ("GET", "/requests"): USERS,
    ("POST", "/api/requests"): USERS,
    ("GET", "/api/requests/{request_id}"): USERS,
    ("POST", "/api/requests/{request_id}/status"): USERS,
    ("POST", "/api/requests/{request_id}/comment"): USERS,
    ("POST", "/api/requests/{request_id}/assign"): USERS,
    # campaigns, the operator's side (assigned operators only)
    ("GET", "/api/campaigns/mine"): USERS,
    ("POST", "/api/campaigns/{campaign_id}/ready"): USERS,
    ("POST", "/api/campaigns/{campaign_id}/preview"): USERS,
    ("POST", "/api/campaigns/{campaign_id}/preview/{debt_id}/dial"): USERS,
    ("POST", "/api/campaign-calls/{channel_id}/disposition"): USERS,
    # supervising: supervisors, admins, and department heads for their departments
    ("GET", "/wall"): LEADS,
    ("GET", "/api/wall"): LEADS,
    ("WS", "/ws/wall"): LEADS,
    ("GET", "/supervisor/agents"): LEADS,
    ("GET", "/supervisor/thresholds"): LEADS,
    ("GET", "/supervisor/reports"): LEADS,
    ("GET", "/api/supervisor/agents"): LEADS,
    ("GET", "/api/supervisor/audit"): LEADS,
    ("GET", "/api/supervisor/thresholds"): LEADS,
    ("PUT", "/api/supervisor/thresholds/{queue}"): LEADS,
    ("GET", "/api/supervisor/pause-reasons"): LEADS,
    ("PUT", "/api/supervisor/pause-reasons"): SUPERVISORS,  # the centre's, not a department's
    ("GET", "/api/supervisor/reports/{name}"): LEADS,
    ("GET", "/api/supervisor/reports/{name}.csv"): LEADS,
    ("GET", "/api/supervisor/clients.csv"): LEADS,
    ("GET", "/api/supervisor/calls.csv"): LEADS,
    ("POST", "/api/supervisor/agents/{agent_id}/pause"): LEADS,
    ("POST", "/api/supervisor/agents/{agent_id}/unpause"): LEADS,
    ("POST", "/api/supervisor/agents/{agent_id}/queues"): LEADS,
    ("DELETE", "/api/supervisor/agents/{agent_id}/queues/{queue}"): LEADS,
    ("POST", "/api/supervisor/agents/{agent_id}/logout"): LEADS,
    ("POST", "/api/supervisor/agents/{agent_id}/spy"): LEADS,
    ("POST", "/api/supervisor/agents/{agent_id}/clients"): LEADS,
    ("GET", "/campaigns"): LEADS,
    ("GET", "/campaigns/{campaign_id}"): LEADS,
    ("POST", "/campaigns/save"): LEADS,
    ("POST", "/campaigns/{campaign_id}/status"): LEADS,
    ("GET", "/campaigns/{campaign_id}/skipped"): LEADS,
    ("GET", "/campaigns/{campaign_id}/skipped.csv"): LEADS,
    # the debt import writes to every department's client base: supervisors and admins
    ("GET", "/campaigns/import"): SUPERVISORS,
    ("POST", "/api/debt-imports"): SUPERVISORS,
    ("GET", "/api/debt-imports/{job_id}"): SUPERVISORS,
    ("GET", "/api/debt-imports/{job_id}/rejected.csv"): SUPERVISORS,
    ("GET", "/clients/import"): SUPERVISORS,
    ("POST", "/api/client-imports"): SUPERVISORS,
    ("GET", "/api/client-imports/{job_id}"): SUPERVISORS,
    ("GET", "/api/client-imports/{job_id}/rejected.csv"): SUPERVISORS,
    # the centre's configuration: admins
    ("GET", "/admin/routing"): ADMIN,
    ("POST", "/admin/routing/rules"): ADMIN,
    ("POST", "/admin/routing/settings"): ADMIN,
    ("POST", "/admin/routing/numbers"): ADMIN,
    ("POST", "/admin/routing/blocked"): ADMIN,
    ("GET", "/account"): USERS,
    ("POST", "/account/password"): USERS,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("GET", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/users/{user_id}"): ADMIN,
    ("POST", "/admin/users/{user_id}/password"): ADMIN,
    ("POST", "/admin/users/{user_id}/deactivate"): ADMIN,
    ("POST", "/admin/users/{user_id}/reactivate"): ADMIN,
    ("GET", "/admin/ivr"): ADMIN,
    ("POST", "/admin/ivr/menus"): ADMIN,
    ("POST", "/admin/ivr/menus/{name}/delete"): ADMIN,
    ("POST", "/admin/ivr/menus/{name}/options"): ADMIN,
    ("POST", "/admin/ivr/menus/{name}/options/{digit}/delete"): ADMIN,
    ("POST", "/admin/ivr/hours/{department}"): ADMIN,
    ("POST", "/admin/ivr/holidays"): ADMIN,
    ("POST", "/admin/ivr/holidays/{day}/delete"): ADMIN,
}
# Exercised by their own tests below: signing in and out changes whose session the client holds.
OWN_TESTS = {("POST", "/login"), ("POST", "/logout")}
# State-changing routes that take no CSRF token: the login form checks its own (400), the public
# form is posted from another site by design and carries nobody's authority.
CSRF_EXEMPT = {("POST", "/login"), ("POST", "/public/requests")}


@cache
def _hash() -> str:
    return hash_password(PASSWORD)


def app_routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, nested routers included."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)  # FastAPI's included routers
        found = [(ctx.path or ctx.original_route.path, ctx.original_route) for ctx in contexts()] \
            if contexts is not None else [(route.path, route)]
        for path, original in found:
            if isinstance(original, WebSocketRoute):  # FastAPI's (the wall) or Starlette's (the desk)
                yield "WS", path
            elif isinstance(original, Mount):
                yield "MOUNT", path
            else:
                yield from ((method, path) for method in original.methods if method != "HEAD")


@pytest.fixture
def world(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Three departments; the role's users; a client, call, request, debt and campaign of sales."""
    with sessions.begin() as s:
        sales = Department(code="sales", name="Sales", queue="sales")
        service = Department(code="service", name="Service", queue="support")
        collections = Department(code="collections", name="Collections", queue="collections")
        people = {
            "op_sales": Operator(login="op_sales", name="Op Sales", role="operator", interface="Local/101@agents",
                                 departments=[sales]),
            "op_service": Operator(login="op_service", name="Op Service", role="operator",
                                   interface="Local/103@agents", departments=[service]),
            "head_sales": Operator(login="head_sales", name="Head Sales", role="department_head",
                                   interface="Local/201@agents", departments=[sales]),
            "super1": Operator(login="super1", name="Super", role="supervisor", interface="Local/301@agents"),
            "admin1": Operator(login="admin1", name="Admin", role="admin"),
        }
        for person in people.values():
            person.password_hash, person.language = _hash(), "en"
        sales.head = people["head_sales"]
        client = Client(name="Sales Client")
        debtor = Client(name="Debtor", debt_open=True)
        s.add_all([sales, service, collections, *people.values(), client, debtor])
        s.flush()
        s.add(Call(linkedid="m.1", started_at=datetime.now(UTC), queue="sales", department_id=sales.id,
                   client_id=client.id, status="ended", outcome="answered", caller_e164="+73517654321"))
        request = Request(subject="Order", department_id=sales.id, client_id=client.id)
        debt = Debt(client_id=debtor.id, creditor="Bank", contract="M-1", principal=Decimal(100),
                    total_due=Decimal(100))
        campaign = Campaign(name="Sales calls", department_id=sales.id)
        s.add_all([request, debt, campaign])
        s.flush()
        s.add(CampaignDebt(campaign_id=campaign.id, debt_id=debt.id))
        s.add_all(CampaignOperator(campaign_id=campaign.id, operator_id=people[login].id)
                  for login in LOGINS.values())
        return {**{login: row.id for login, row in people.items()}, "client": client.id, "debtor": debtor.id,
                "request": request.id, "debt": debt.id, "campaign": campaign.id, "sales": sales.id}


@pytest.fixture
def bus() -> MemoryBus:
    bus = MemoryBus()
    asyncio.run(bus.keep(WALL_KEY, SNAPSHOT_FIELD, {"type": "wall", "at": 0, "queues": [], "agents": []}, 3600))
    return bus


@pytest.fixture
def app(sessions, bus, world):  # type: ignore[no-untyped-def]
    return create_app(Settings(secret_key="matrix", default_language="en"), sessions, bus)


def concrete(path: str, ids: dict[str, int]) -> str:
    """The route's path with the world's objects (the head's department's) in its parameters."""
    values: dict[str, object] = {
        "client_id": ids["client"], "linkedid": "m.1", "agent_id": ids["op_sales"], "queue": "sales",
        "campaign_id": ids["campaign"], "debt_id": ids["debt"], "channel_id": "no-such-channel",
        "job_id": "j" * 20, "request_id": ids["request"], "digit": "1", "department": "sales",
        "day": "2030-01-01", "name": "queues" if "/reports/" in path else "main", "e164": "+73517654321",
        "user_id": ids["op_sales"],
    }
    return re.sub(r"{(\w+)}", lambda m: str(values[m.group(1)]), path)


def send(http: TestClient, method: str, path: str, csrf: str | None) -> httpx.Response:
    """One request as the page would make it: JSON with the CSRF header for /api, a form otherwise."""
    if method == "MOUNT":
        return http.get(f"{path}/common.js", follow_redirects=False)
    if method == "GET":
        return http.get(path, follow_redirects=False)
    if path.startswith(("/api/", "/public/")):
        headers = {"X-CSRF-Token": csrf} if csrf else {}
        return http.request(method, path, json={}, headers=headers, follow_redirects=False)
    return http.request(method, path, data={"csrf": csrf} if csrf else {}, follow_redirects=False)


def refused(response: httpx.Response) -> bool:
    return response.status_code in (401, 403) or (
        response.is_redirect and response.headers["location"].endswith("/login"))


def signed_in(http: TestClient, role: str) -> str:
    """Log the role's user in (or not, for anonymous); the session's CSRF token."""
    if role == "anonymous":
        return csrf_of(http.get("/login").text)
    return log_in(http, LOGINS[role], PASSWORD)


def socket_verdict(http: TestClient, path: str) -> str:
    """allowed (the first message came) or the close code."""
    try:
        with http.websocket_connect(path) as socket:
            socket.receive_text()
            return "allowed"
    except WebSocketDisconnect as closed:
        return str(closed.code)


def test_every_route_is_in_the_matrix(app) -> None:  # type: ignore[no-untyped-def]
    served = set(app_routes(app))
    assert not served - set(MATRIX), f"classify these routes in MATRIX and README: {sorted(served - set(MATRIX))}"
    assert not set(MATRIX) - served, f"MATRIX names routes that are gone: {sorted(set(MATRIX) - served)}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_its_routes(app, world, role: str) -> None:  # type: ignore[no-untyped-def]
    wrong: list[str] = []
    with TestClient(app) as http:
        csrf = signed_in(http, role)
        for (method, path), allowed in sorted(MATRIX.items()):
            if (method, path) in OWN_TESTS:
                continue
            url = concrete(path, world)
            if method == "WS":
                verdict = socket_verdict(http, url)
                expected = "allowed" if role in allowed else ("4401" if role == "anonymous" else "4403")
                if verdict != expected:
                    wrong.append(f"WS {url}: {verdict}, expected {expected}")
                continue
            response = send(http, method, url, csrf)
            if refused(response) == (role in allowed):
                wrong.append(f"{method} {url}: {response.status_code} {response.text[:120]!r}")
            elif role == "anonymous" and role not in allowed:
                expected = 401 if path.startswith("/api/") else 303
                if response.status_code != expected:
                    wrong.append(f"{method} {url}: {response.status_code} for nobody, expected {expected}")
            elif role not in allowed and response.status_code != 403:
                wrong.append(f"{method} {url}: {response.status_code} for {role}, expected 403")
    assert not wrong, f"{role}:\n" + "\n".join(wrong)


def test_every_state_change_needs_the_csrf_token(app, world) -> None:  # type: ignore[no-untyped-def]
    """An admin may do anything, yet without the page's token every write is refused before it runs."""
    changing = [(m, p) for m, p in MATRIX if m in ("POST", "PUT", "DELETE") and (m, p) not in CSRF_EXEMPT]
    wrong = []
    with TestClient(app) as http:
        log_in(http, LOGINS["admin"], PASSWORD)
        for method, path in sorted(changing):
            for token in (None, "forged"):
                response = send(http, method, concrete(path, world), token)
                if (method, path) == ("POST", "/logout"):  # refused means still signed in
                    if http.get("/api/me").status_code != 200:
                        wrong.append("POST /logout logged out without the token")
                elif response.status_code != 403:
                    wrong.append(f"{method} {path} with token {token!r}: {response.status_code}")
    assert not wrong, "\n".join(wrong)


def test_login_and_logout_follow_the_session(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as http:
        token = csrf_of(http.get("/login").text)
        assert http.post("/login", data={"login": "op_sales", "password": PASSWORD}).status_code == 400
        assert http.get("/api/me").status_code == 401
        signed = http.post("/login", data={"login": "op_sales", "password": PASSWORD, "csrf": token},
                           follow_redirects=False)
        assert (signed.status_code, signed.headers["location"]) == (303, "/desk")
        assert http.get("/api/me").json()["role"] == "operator"
        token = csrf_of(http.get("/desk").text)
        out = http.post("/logout", data={"csrf": token}, follow_redirects=False)
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        assert http.get("/api/me").status_code == 401


@pytest.mark.parametrize("secure", [False, True])
def test_the_session_cookie_is_httponly_lax_and_secure_when_configured(sessions, world, secure: bool) -> None:  # type: ignore[no-untyped-def]
    app = create_app(Settings(secret_key="matrix", secure_cookies=secure), sessions, MemoryBus())
    with TestClient(app, base_url="https://testserver") as http:
        token = csrf_of(http.get("/login").text)
        answer = http.post("/login", data={"login": "op_sales", "password": PASSWORD, "csrf": token},
                           follow_redirects=False)
    header = next(h for h in answer.headers.get_list("set-cookie") if h.startswith("callcard_session="))
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attributes
    assert "samesite=lax" in header.lower()
    assert ("secure" in attributes) is secure
