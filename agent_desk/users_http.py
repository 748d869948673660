"""Staff accounts over HTTP: the admin's pages, /admin/users (who works here, in which role,
departments and phone), and each user's own page, /account (their password).

Every change is a POST form with the session's CSRF token, applied in one transaction by
`crm_core.users` (the rules live there, shared with the CLI) and audited, refused ones too;
a refusal comes back as the page's error line in the reader's language. No password is ever
written to the audit log or shown again. A new password signs the account's other sessions out
(`auth.password_stamp`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from agent_desk.auth import (
    CurrentOperator,
    admin_page,
    csrf_ok,
    page_operator,
    password_stamp,
    session_language,
)
from agent_desk.i18n import explain, translate
from agent_desk.pages import _render, login_limits  # the desk's page shell; the login's failure counts
from agent_desk.supervisor import ActionProblem, SupervisorActions
from callcard.bus import desk_topic
from crm_core import users
from crm_core.audit import OK, REFUSED, Actor, record
from crm_core.models import Client, Department, Operator
from crm_core.passwords import verify_password

router = APIRouter(include_in_schema=False)
Admin = Annotated[CurrentOperator, Depends(admin_page)]
Someone = Annotated[CurrentOperator, Depends(page_operator)]
Csrf = Annotated[str, Form(max_length=128)]
Password = Annotated[str, Form(max_length=256)]


def _account(name: str, role: str, departments: list[str] | None, interface: str) -> users.Account:
    return users.Account(name=name, role=role, departments=tuple(departments or ()), interface=interface)


def _departments(session: Session) -> list[tuple[str, str]]:
    return [(d.code, d.name) for d in session.scalars(select(Department).order_by(Department.name))]


def _clients_per_manager(session: Session) -> dict[int, int]:
    return dict(session.execute(select(Client.manager_id, func.count()).where(Client.manager_id.is_not(None))
                                .group_by(Client.manager_id)).all())


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, operator: Admin, error: str = "", done: str = "") -> HTMLResponse:
    with request.app.state.desk.sessions() as session:
        people = session.scalars(select(Operator).options(selectinload(Operator.departments))
                                 .order_by(Operator.active.desc(), Operator.name)).all()
        return _render(request, "users_admin.html", operator, active="users", error=error[:300], done=done[:300],
                       people=people, clients=_clients_per_manager(session), departments=_departments(session),
                       roles=users.ROLES, min_password=users.MIN_PASSWORD)


@router.get("/admin/users/{user_id}", response_class=HTMLResponse)
def user_page(request: Request, operator: Admin, user_id: int, error: str = "", done: str = "") -> HTMLResponse:
    with request.app.state.desk.sessions() as session:
        person = session.get(Operator, user_id)
        if person is None:
            raise HTTPException(404, translate(session_language(request), "api.not_found"))
        heirs = session.scalars(select(Operator).where(Operator.active, Operator.id != user_id)
                                .order_by(Operator.name)).all()
        return _render(request, "user_admin.html", operator, active="users", error=error[:300], done=done[:300],
                       person=person, mine={d.code for d in person.departments}, heirs=heirs,
                       clients=_clients_per_manager(session).get(user_id, 0), departments=_departments(session),
                       roles=users.ROLES, min_password=users.MIN_PASSWORD)


def _apply(request: Request, operator: CurrentOperator, csrf: str, back: str, action: str, target: str,
           details: dict[str, Any], change: Callable[[Session], str]) -> RedirectResponse:
    """One change in one transaction, audited either way; `change` returns what the page says it
    did, and the browser goes `back` to the page with that, or with why it was refused."""
    lang = session_language(request)
    if not csrf_ok(request, csrf):
        raise HTTPException(403, translate(lang, "api.csrf"))
    actor, sessions = Actor(operator.id, operator.login), request.app.state.desk.sessions
    try:
        with sessions.begin() as session:
            done = change(session)
    except users.UserError as exc:
        record(sessions, actor, action, target, details, REFUSED, str(exc))
        return RedirectResponse(f"{back}?error={quote(explain(lang, exc))}", status_code=303)
    record(sessions, actor, action, target, details, OK)
    return RedirectResponse(f"{back}?done={quote(done)}", status_code=303)


@router.post("/admin/users")
def create(
    request: Request, operator: Admin, csrf: Csrf = "", login: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=128)] = "", role: Annotated[str, Form(max_length=16)] = "operator",
    departments: Annotated[list[str] | None, Form()] = None, interface: Annotated[str, Form(max_length=128)] = "",
    password: Password = "",
) -> RedirectResponse:
    account = _account(name, role, departments, interface)
    lang = request.app.state.desk.settings.default_language

    def change(session: Session) -> str:
        user = users.create_user(session, login, account, password, lang)
        return translate(session_language(request), "users.created", login=user.login)

    return _apply(request, operator, csrf, "/admin/users", "user_create", login.strip().lower(),
                  _details(account), change)


@router.post("/admin/users/{user_id}")
def update(
    request: Request, operator: Admin, user_id: int, csrf: Csrf = "",
    name: Annotated[str, Form(max_length=128)] = "", role: Annotated[str, Form(max_length=16)] = "operator",
    departments: Annotated[list[str] | None, Form()] = None, interface: Annotated[str, Form(max_length=128)] = "",
) -> RedirectResponse:
    account = _account(name, role, departments, interface)

    def change(session: Session) -> str:
        users.update_user(session, user_id, account)
        return translate(session_language(request), "users.saved")

    return _apply(request, operator, csrf, f"/admin/users/{user_id}", "user_update", _login(request, user_id),
                  _details(account), change)


@router.post("/admin/users/{user_id}/password")
async def password(request: Request, operator: Admin, user_id: int, csrf: Csrf = "",
                   password: Password = "") -> RedirectResponse:
    stamps: list[str] = []

    def change(session: Session) -> str:
        user = users.set_password(session, user_id, password)
        stamps.append(password_stamp(user.password_hash))
        if user.id == operator.id:  # the admin's own: this session goes on
            request.session["stamp"] = stamps[0]
        return translate(session_language(request), "users.password_set")

    back = await asyncio.to_thread(_apply, request, operator, csrf, f"/admin/users/{user_id}", "user_password",
                                   await asyncio.to_thread(_login, request, user_id), {}, change)
    if stamps:
        await _end_other_desks(request, user_id, stamps[0])
    return back


@router.post("/admin/users/{user_id}/deactivate")
async def deactivate(
    request: Request, operator: Admin, user_id: int, csrf: Csrf = "",
    clients_to: Annotated[str, Form(max_length=16)] = "",
) -> RedirectResponse:
    """`clients_to`: the colleague's id, or "none" to leave the clients without a manager. The
    person also leaves their queues, or the PBX would go on ringing a phone nobody answers."""
    heir = int(clients_to) if clients_to.isdigit() else None
    phones: list[str | None] = []

    def change(session: Session) -> str:
        person = session.get(Operator, user_id)
        phone = person.interface if person else None
        moved = users.deactivate_user(session, user_id, heir, clients_to_nobody=clients_to == "none")
        phones.append(phone)
        return translate(session_language(request), "users.deactivated", count=moved)

    back = await asyncio.to_thread(_apply, request, operator, csrf, f"/admin/users/{user_id}", "user_deactivate",
                                   await asyncio.to_thread(_login, request, user_id), {"clients_to": clients_to},
                                   change)
    if phones:
        await _end_other_desks(request, user_id, "")
    if phones and phones[0]:
        try:
            await SupervisorActions(request.app.state.desk.sessions, request.app.state.desk.supervision).logout(
                Actor(operator.id, operator.login), user_id, phones[0])
        except ActionProblem as problem:  # audited by the action; the page says what is left to do
            lang = session_language(request)
            back.headers["location"] += "&error=" + quote(translate(lang, "users.queues_left",
                                                                    interface=phones[0], reason=problem.text(lang)))
    return back


async def _end_other_desks(request: Request, user_id: int, stamp: str) -> None:
    """Open desks whose session does not hold `stamp` (every one, for "") close with 4401; the
    pages already sign such sessions out at their next request."""
    await request.app.state.desk.bus.publish(desk_topic(user_id), {"type": "account", "stamp": stamp})


@router.post("/admin/users/{user_id}/reactivate")
def reactivate(request: Request, operator: Admin, user_id: int, csrf: Csrf = "") -> RedirectResponse:
    def change(session: Session) -> str:
        users.reactivate_user(session, user_id)
        return translate(session_language(request), "users.reactivated")

    return _apply(request, operator, csrf, f"/admin/users/{user_id}", "user_reactivate", _login(request, user_id),
                  {}, change)


def _details(account: users.Account) -> dict[str, Any]:
    return {"name": account.name, "role": account.role, "departments": list(account.departments),
            "interface": account.interface}


def _login(request: Request, user_id: int) -> str:
    with request.app.state.desk.sessions() as session:
        return session.scalar(select(Operator.login).where(Operator.id == user_id)) or str(user_id)


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request, operator: Someone, error: str = "", done: str = "") -> HTMLResponse:
    return _render(request, "account.html", operator, active="account", error=error[:300], done=done[:300],
                   min_password=users.MIN_PASSWORD)


@router.post("/account/password")
async def own_password(
    request: Request, operator: Someone, csrf: Csrf = "", current: Password = "", password: Password = "",
    repeat: Password = "",
) -> RedirectResponse:
    """The current password first (an unlocked desk is not enough), counted with the login's failures."""
    lang = session_language(request)
    if not csrf_ok(request, csrf):
        raise HTTPException(403, translate(lang, "api.csrf"))
    limit = login_limits(request).login
    attempt = await limit.attempt(operator.login)
    if attempt.wait is not None:
        return _account_back("error", translate(lang, "login.too_many", minutes=max(1, -(-int(attempt.retry_after) // 60))))
    actor, sessions = Actor(operator.id, operator.login), request.app.state.desk.sessions

    def change() -> str | None:
        with sessions.begin() as session:
            if not verify_password(session.get(Operator, operator.id).password_hash, current):
                return None
            if password != repeat:
                raise users.UserError("the two new passwords differ", "users.err.repeat")
            return password_stamp(users.set_password(session, operator.id, password).password_hash)

    try:
        stamp = await asyncio.to_thread(change)
    except users.UserError as exc:
        await asyncio.to_thread(record, sessions, actor, "password_own", operator.login, {}, REFUSED, str(exc))
        return _account_back("error", explain(lang, exc))
    if stamp is None:
        await asyncio.to_thread(record, sessions, actor, "password_own", operator.login, {}, REFUSED,
                                "wrong current password")
        return _account_back("error", translate(lang, "users.err.current"))
    await limit.clear(operator.login)
    request.session["stamp"] = stamp  # this session goes on; the others end
    await _end_other_desks(request, operator.id, stamp)
    await asyncio.to_thread(record, sessions, actor, "password_own", operator.login, {}, OK)
    return _account_back("done", translate(lang, "users.password_set"))


def _account_back(kind: str, text: str) -> RedirectResponse:
    return RedirectResponse(f"/account?{kind}={quote(text)}", status_code=303)
