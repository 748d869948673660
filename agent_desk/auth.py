"""Who is at the desk: session login with argon2, roles, CSRF tokens.

The session cookie (Starlette's signed SessionMiddleware) carries only the operator id,
the language and a CSRF token; the operator row (and, below supervisor, their departments) is
re-read on every request, so a deactivated account or a changed role loses access at once.
What each role may do is the table in README, "Security".
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import HTTPException, Request, WebSocket
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from agent_desk.i18n import pick_language, translate
from crm_core.audit import REFUSED, Actor, record
from crm_core.models import Operator
from crm_core.passwords import hash_password, verify_password
from crm_core.visibility import Viewer, department_ids, department_queues

SEES_ALL = ("supervisor", "admin")  # every department, client and call
SUPERVISING = ("department_head", "supervisor", "admin")  # supervisor pages; a head's limited to their departments
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class CurrentOperator:
    """The logged-in user as the desk needs it, detached from any DB session."""

    id: int
    login: str
    name: str
    role: str
    interface: str | None
    language: str
    departments: frozenset[int] = frozenset()  # belonged to or headed; empty for SEES_ALL roles
    stamp: str = ""  # password_stamp of the password in use

    @classmethod
    def of(cls, row: Operator, departments: frozenset[int] = frozenset()) -> CurrentOperator:
        return cls(row.id, row.login, row.name, row.role, row.interface, row.language, departments,
                   password_stamp(row.password_hash))

    @property
    def sees_all(self) -> bool:
        return self.role in SEES_ALL

    @property
    def viewer(self) -> Viewer:
        """What the operator may see of clients and calls (crm_core.visibility)."""
        return Viewer(self.id, None if self.sees_all else self.departments)


class LoginRequired(Exception):
    """A page was asked for without a session; the app answers with a redirect to /login."""


def password_stamp(password_hash: str) -> str:
    """What a session keeps of the password it was opened with: a new password (the user's own or
    an admin's reset) signs every other session out at its next request. A digest of the argon2
    hash, whose salt is secret, so the signed (not encrypted) cookie tells nothing of the password."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))


def authenticate(session: Session, login: str, password: str) -> CurrentOperator | None:
    """The active operator with that login and password, else None.

    An unknown login still costs one argon2 verification, so response time does not
    tell which logins exist.
    """
    row = session.scalar(select(Operator).where(Operator.login == login.strip(), Operator.active.is_(True)))
    if row is None:
        verify_password(_dummy_hash(), password)
        return None
    if not verify_password(row.password_hash, password):
        return None
    return CurrentOperator.of(row)


def start_session(request: Request, operator: CurrentOperator) -> None:
    """A fresh session for the operator: nothing from before login survives (no fixation)."""
    request.session.clear()
    request.session["operator_id"] = operator.id
    request.session["stamp"] = operator.stamp
    request.session["lang"] = operator.language
    request.session["csrf"] = secrets.token_urlsafe(32)


def end_session(request: Request) -> None:
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (the login form needs one before login)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, token: str | None) -> bool:
    expected = request.session.get("csrf")
    return bool(expected and token and secrets.compare_digest(expected, token))


def session_language(request: Request | WebSocket) -> str:
    return pick_language(request.session.get("lang"), request.app.state.desk.settings.default_language)


def load_operator(sessions: sessionmaker[Session], cookie: Mapping[str, Any]) -> CurrentOperator | None:
    """The active operator behind a session, with their departments; None when there is none, they
    left, or their password changed since the session was opened."""
    operator_id = cookie.get("operator_id")
    if not isinstance(operator_id, int):
        return None
    with sessions() as session:
        row = session.get(Operator, operator_id)
        if row is None or not row.active or cookie.get("stamp") != password_stamp(row.password_hash):
            return None
        return CurrentOperator.of(row, frozenset() if row.role in SEES_ALL else department_ids(session, row.id))


def _from_session(request: Request | WebSocket) -> CurrentOperator | None:
    return load_operator(request.app.state.desk.sessions, request.session)


def api_operator(request: Request) -> CurrentOperator:
    """Dependency for /api routes: the operator, or 401."""
    operator = _from_session(request)
    if operator is None:
        raise HTTPException(401, translate(session_language(request), "api.unauthenticated"))
    return operator


def api_role(request: Request, roles: tuple[str, ...], refusal: str = "", csrf: bool = False) -> CurrentOperator:
    """The /api operator (401) if their role is one of `roles` (403; with a `refusal` reason the
    attempt is also audited as refused), and with `csrf` the page's CSRF header (403)."""
    operator = api_operator(request)
    lang = session_language(request)
    if operator.role not in roles:
        if refusal:
            record(request.app.state.desk.sessions, Actor(operator.id, operator.login), "forbidden",
                   request.url.path, {"method": request.method, "role": operator.role}, REFUSED, refusal)
        raise HTTPException(403, translate(lang, "api.forbidden"))
    if csrf and not csrf_ok(request, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, translate(lang, "api.csrf"))
    return operator


def page_operator(request: Request) -> CurrentOperator:
    """Dependency for HTML pages: the operator, or a redirect to the login form."""
    operator = _from_session(request)
    if operator is None:
        raise LoginRequired()
    return operator


def admin_page(request: Request) -> CurrentOperator:
    """Dependency for the admin's pages and forms (/admin/...): an admin, else 403."""
    operator = page_operator(request)
    if operator.role != "admin":
        raise HTTPException(403, translate(session_language(request), "api.forbidden"))
    return operator


def socket_operator(websocket: WebSocket) -> CurrentOperator | None:
    return _from_session(websocket)


def supervised_queues(sessions: sessionmaker[Session], operator: CurrentOperator) -> frozenset[str] | None:
    """The queues a supervisor page shows this person: None (every queue) for supervisors and admins,
    their departments' queues for a department head."""
    if operator.sees_all:
        return None
    with sessions() as session:
        return department_queues(session, operator.departments)


def require_role(*roles: str) -> Callable[[Request], CurrentOperator]:
    """Dependency factory: the operator if their role is one of `roles`, else 403."""

    def dependency(request: Request) -> CurrentOperator:
        operator = api_operator(request)
        if operator.role not in roles:
            raise HTTPException(403, translate(session_language(request), "api.forbidden"))
        return operator

    return dependency


def api_writer(request: Request) -> CurrentOperator:
    """Dependency for state-changing /api calls: logged in (401) and the page's CSRF token
    sent back in a header (403), which no other site can read or forge."""
    operator = api_operator(request)
    if not csrf_ok(request, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, translate(session_language(request), "api.csrf"))
    return operator
