"""HTML pages: login, the desk, the calls list, client search and the client card.

Server-rendered with Jinja (autoescape on, so caller IDs and names from Asterisk are
text); the desk and the client card are drawn by web_static modules from a JSON blob
that carries the data and the translated strings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from agent_desk import schemas
from agent_desk.auth import (
    SUPERVISING,
    CurrentOperator,
    authenticate,
    csrf_ok,
    csrf_token,
    end_session,
    load_operator,
    page_operator,
    session_language,
    start_session,
)
from agent_desk.http import CallFilterQuery, call_filter, call_row, client_page, client_summary
from agent_desk.i18n import CATALOGS, DISPOSITIONS, LANGUAGES, translate
from agent_desk.recordings_http import may_play, playable, recordings_root
from agent_desk.status_http import stored_status
from callcard.ratelimit import Attempt, RateLimit
from crm_core import clients, pause_reasons
from crm_core.call_log import OUTCOMES
from crm_core.models import Department, Operator, operator_departments
from crm_core.reviews import reviews_of
from crm_core.visibility import queue_names
from routing.campaigns.dispositions import DISPOSITIONS as CAMPAIGN_DISPOSITIONS
from routing.inbox import service as inbox

router = APIRouter(include_in_schema=False)
PageOperator = Annotated[CurrentOperator, Depends(page_operator)]
CALLS_PER_PAGE = 50
LOGIN_FAILURES = (5, 300.0)  # per login: 5 failed attempts in 5 minutes, then 429 until the oldest ages out
ADDRESS_FAILURES = (20, 300.0)  # per client address: more, since a whole office may sit behind one NAT


def _render(
    request: Request,
    name: str,
    operator: CurrentOperator | None,
    status_code: int = 200,
    data: dict[str, Any] | None = None,
    **context: Any,
) -> HTMLResponse:
    lang = session_language(request)
    page_data = {
        "lang": lang,
        "strings": CATALOGS[lang],
        "csrf": csrf_token(request),
        "operator": {"id": operator.id, "name": operator.name, "role": operator.role,
                     "interface": operator.interface} if operator else None,
        **(data or {}),
    }
    templates = request.app.state.desk.templates
    return templates.TemplateResponse(
        request, name, {"operator": operator, "page_data": page_data, **context}, status_code=status_code
    )


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/desk", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, lang: str | None = None) -> Response:
    if lang in LANGUAGES:
        request.session["lang"] = lang
    if load_operator(request.app.state.desk.sessions, request.session):
        return RedirectResponse("/desk", status_code=303)
    return _render(request, "login.html", None, login_value="", error=None)


@dataclass(frozen=True)
class LoginLimits:
    """Failed logins counted per login and per client address, shared by every web worker."""

    login: RateLimit
    address: RateLimit


def login_limits(request: Request) -> LoginLimits:
    """The app's limits, made on first use from its bus."""
    state = request.app.state
    if getattr(state, "login_limits", None) is None:
        bus = state.desk.bus
        state.login_limits = LoginLimits(RateLimit(bus, "login", *LOGIN_FAILURES),
                                         RateLimit(bus, "login-address", *ADDRESS_FAILURES))
    return state.login_limits


def _too_many(request: Request, login: str, attempt: Attempt) -> HTMLResponse:
    minutes = max(1, -(-int(attempt.retry_after) // 60))
    page = _render(request, "login.html", None, 429, login_value=login,
                   error=translate(session_language(request), "login.too_many", minutes=minutes))
    page.headers["Retry-After"] = attempt.retry_after
    return page


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    login: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """One message for an unknown login and a wrong password, so logins cannot be probed; after
    too many failures for a login or from an address, 429 with Retry-After and no password check."""
    lang = session_language(request)
    if not csrf_ok(request, csrf):
        return _render(request, "login.html", None, 400, login_value=login,
                       error=translate(lang, "login.expired"))
    limits = login_limits(request)
    address = await limits.address.attempt(request.client.host if request.client else "?")
    if address.wait is not None:
        return _too_many(request, login, address)
    account_key = login.strip().lower()
    account = await limits.login.attempt(account_key)
    if account.wait is not None:
        await limits.address.undo(address)
        return _too_many(request, login, account)

    def check() -> CurrentOperator | None:
        with request.app.state.desk.sessions() as session:
            return authenticate(session, login, password)

    operator = await asyncio.to_thread(check)
    if operator is None:
        return _render(request, "login.html", None, 401, login_value=login,
                       error=translate(lang, "login.failed"))
    await limits.login.clear(account_key)
    await limits.address.undo(address)  # a good login does not count against the office's address
    start_session(request, operator)
    return RedirectResponse("/desk", status_code=303)


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=128)] = "") -> RedirectResponse:
    if not csrf_ok(request, csrf):
        return RedirectResponse("/desk", status_code=303)
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, operator: PageOperator) -> HTMLResponse:
    with request.app.state.desk.sessions() as session:
        departments = session.execute(
            select(Department.code, Department.name, Department.queue)
            .where(Department.queue != "")
            .order_by(Department.code)
        ).all()
        colleagues = session.execute(  # whom a call can be handed to in person: anyone with a phone
            select(Operator.id, Operator.name)
            .where(Operator.active.is_(True), Operator.interface.is_not(None), Operator.id != operator.id)
            .order_by(Operator.name)
        ).all()
        status = stored_status(session, operator.id)
        reasons = pause_reasons.load(session)
        overdue = [(d.code, d.name, n) for d, n in inbox.overdue_counts(
            session, inbox.departments_of(session, operator.id, operator.role))]
    lang = session_language(request)
    return _render(request, "desk.html", operator, active="desk", dispositions=DISPOSITIONS,
                   data={"queue_names": {queue: name for _, name, queue in departments}, "status": status,
                         "pause_names": pause_reasons.names(reasons, lang)},
                   campaign_dispositions=CAMPAIGN_DISPOSITIONS, departments=departments, colleagues=colleagues,
                   pause_reasons=[r for r in reasons if r.active], status=status, overdue=overdue)


@router.get("/calls", response_class=HTMLResponse)
def calls(
    request: Request,
    operator: PageOperator,
    given: Annotated[CallFilterQuery, Depends()],
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> HTMLResponse:
    """The call log with its filters: outcome, queue, who answered, the caller's number and a day."""
    with request.app.state.desk.sessions() as session:
        chosen = call_filter(session, operator, given, request.app.state.desk.settings.default_region)
        rows = clients.list_calls(session, **chosen.calls, limit=CALLS_PER_PAGE + 1, offset=page * CALLS_PER_PAGE,
                                  visible_to=operator.viewer)
        listed = rows[:CALLS_PER_PAGE]
        calls = [call_row(row) for row in listed]
        recorded = playable(recordings_root(request), session, operator, listed)
        allowed = may_play(session, operator, listed)
        readable = {row.id: row.linkedid for row in listed if row.linkedid in allowed}  # and read its review
        reviews = {readable[i]: r for i, r in reviews_of(session, list(readable)).items()}
        names = queue_names(session)
        people = people_in_reach(session, operator) if operator.role in SUPERVISING else [(operator.id, operator.name)]
    shown = {k: v for k, v in chosen.query.items() if v}
    return _render(
        request, "calls.html", operator, active="calls", calls=calls, recorded=recorded, reviews=reviews,
        data={"may_review": operator.role in SUPERVISING}, outcomes=OUTCOMES, filters=chosen.query,
        queue_names=names, people=people, page=page, has_more=len(rows) > CALLS_PER_PAGE,
        pages={n: urlencode({**shown, "page": n}) for n in (page - 1, page + 1)},
        export=urlencode(shown) if operator.role in SUPERVISING else None,
    )


@router.get("/clients", response_class=HTMLResponse)
def client_search(
    request: Request, operator: PageOperator, q: Annotated[str, Query(max_length=128)] = ""
) -> HTMLResponse:
    """Search results, or with nothing searched, the clients the operator is personal manager of."""
    with request.app.state.desk.sessions() as session:
        if q.strip():
            region = request.app.state.desk.settings.default_region
            found = [client_summary(c) for c in clients.search_clients(session, q, 50, region, operator.viewer)]
            mine = []
        else:
            found, mine = [], [client_summary(c) for c in clients.managed_by(session, operator.id)]
    return _render(request, "clients.html", operator, active="clients", q=q, found=found, mine=mine)


def people_in_reach(session: Session, operator: CurrentOperator) -> list[tuple[int, str]]:
    """Active people within a supervising role's reach: everyone for a supervisor or admin, a head's
    departments' people for a head (whom PATCH /api/clients/{id} may make a manager, whose calls
    the head may list)."""
    query = select(Operator.id, Operator.name).where(Operator.active.is_(True)).order_by(Operator.name)
    if not operator.sees_all:  # members or heads of the head's departments (visibility.department_ids)
        deps = operator.departments
        query = query.where(or_(
            Operator.id.in_(select(operator_departments.c.operator_id)
                            .where(operator_departments.c.department_id.in_(deps))),
            Operator.id.in_(select(Department.head_id).where(Department.id.in_(deps)))))
    return [(i, n) for i, n in session.execute(query)]


@router.get("/clients/{client_id}", response_class=HTMLResponse)
def client(request: Request, operator: PageOperator, client_id: int) -> HTMLResponse:
    with request.app.state.desk.sessions() as session:
        page = client_page(request, session, client_id, operator)  # a refusal: the app's page for it
        data = schemas.ClientPage.model_validate(page).model_dump(mode="json")
        if operator.role in SUPERVISING:  # who may change the personal manager, and to whom; twins to merge
            data["managers"] = [{"id": i, "name": n} for i, n in people_in_reach(session, operator)]
            data["duplicates"] = [{**client_summary(other).model_dump(mode="json"), "reason": reason}
                                  for other, reason in clients.possible_duplicates(session, client_id, operator.viewer)]
    return _render(request, "client.html", operator, active="clients", data=data, card=data["card"])
