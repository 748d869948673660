"""Requests over HTTP: the department inbox page, the desk's request API and the public web form.

Every route that shows or changes a request checks that it is one of the operator's
departments' (`service.check_access`); supervisors and admins see all of them.

The public form needs no login, so it is small by construction: a size cap on every field,
a honeypot field that people leave empty and bots fill, and a per-address rate limit.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from agent_desk.auth import CurrentOperator, api_operator, api_writer, page_operator
from agent_desk.pages import _render  # the desk's page shell: same header, language and CSRF blob
from callcard.ratelimit import RateLimit
from crm_core.models import Operator, as_utc
from crm_core.models import Request as RequestRow
from crm_core.phones import format_phone, try_normalize
from routing.inbox import intake, service
from routing.inbox.followups import publish_overdue

router = APIRouter()
Reader = Annotated[CurrentOperator, Depends(api_operator)]
Writer = Annotated[CurrentOperator, Depends(api_writer)]
Kind = Annotated[str, Field(pattern="^(" + "|".join(service.REQUEST_TYPES) + ")$")]
WEB_FORM_PER_MINUTE = 5  # per client address, counted across web workers (callcard.ratelimit)


class RequestIn(BaseModel):
    """A request filed on the desk: for a client, or for a caller the CRM does not know (`contact`:
    their number, stored normalised, so the inbox can ring them back)."""

    kind: Kind = "question"
    subject: str = Field(min_length=1, max_length=256)
    body: str = Field("", max_length=intake.MAX_BODY)
    client_id: int | None = None
    contact: str = Field("", max_length=64)


class StatusIn(BaseModel):
    status: str = Field(pattern="^(open|in_progress|closed)$")
    follow_up_minutes: int | None = Field(None, ge=1, le=60 * 24 * 90)


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class AssignIn(BaseModel):
    operator_id: int


class WebFormIn(BaseModel):
    name: str = Field("", max_length=128)
    email: str = Field("", max_length=256)
    phone: str = Field("", max_length=32)
    kind: Kind = "question"
    subject: str = Field("", max_length=256)
    message: str = Field(min_length=1, max_length=4000)
    website: str = Field("", max_length=256)  # honeypot: hidden in the form, only bots fill it


def _row(request: RequestRow, now: datetime, region: str) -> dict[str, Any]:
    due = as_utc(request.due_at) if request.due_at else None
    e164 = try_normalize(request.contact, region) if request.contact else None
    return {
        "id": request.id, "kind": request.kind, "subject": request.subject, "status": request.status,
        "source": request.source, "client_id": request.client_id, "contact": request.contact,
        "client": request.client.name if request.client else "",
        "department_id": request.department_id, "department": request.department.name if request.department else "",
        "assignee_id": request.assignee_id,
        "assignee": request.assignee.name if request.assignee else "",
        "created_at": as_utc(request.created_at).isoformat(), "due_at": due.isoformat() if due else None,
        "overdue": bool(due and due < now and request.status != "closed"),
        "phone": {"e164": e164, "display": format_phone(e164)} if e164 else None,  # the contact, to call back
    }


def _region(request: Request) -> str:
    return request.app.state.desk.settings.default_region


def _now() -> datetime:
    return datetime.now(UTC)


def _call(request: Request, work: Any, operator: CurrentOperator | None = None, request_id: int = 0) -> Any:
    """Run `work` in a transaction, after the access check when an operator and a request are named."""
    with request.app.state.desk.sessions.begin() as session:
        if operator is not None:
            try:
                service.check_access(session, request_id, operator.id, operator.role)
            except service.RequestForbidden as exc:
                raise HTTPException(403, str(exc)) from None
            except service.RequestError as exc:
                raise HTTPException(404, str(exc)) from None
        try:
            return work(session)
        except service.RequestError as exc:
            raise HTTPException(422, str(exc)) from None


@router.post("/api/requests", status_code=201, tags=["requests"])
def create(request: Request, operator: Writer, body: RequestIn) -> dict[str, Any]:
    now = _now()
    contact = ""
    if body.contact.strip():
        contact = try_normalize(body.contact, _region(request)) or ""
        if not contact:
            raise HTTPException(422, f"{body.contact!r} is not a phone number")
    return _call(request, lambda s: _row(service.create_request(
        s, body.kind, body.subject, now, body=body.body, client_id=body.client_id, contact=contact,
        author_id=operator.id), now, _region(request)))


@router.get("/api/requests/{request_id}", tags=["requests"])
def show(request: Request, operator: Reader, request_id: int) -> dict[str, Any]:
    """The request with its history and whom it may be assigned to."""

    def work(session: Session) -> dict[str, Any]:
        row = session.get(RequestRow, request_id)
        events = [{"at": as_utc(e.at).isoformat(), "kind": e.kind, "value": e.value, "text": e.text,
                   "author_id": e.author_id, "author": e.author.name if e.author else "",
                   "assignee": _name(session, e.value) if e.kind == "assigned" else ""}
                  for e in service.history(session, request_id)]
        people = [{"id": o.id, "name": o.name} for o in service.colleagues(session, row.department_id)]
        return {**_row(row, _now(), _region(request)), "body": row.body, "history": events, "colleagues": people,
                "next_statuses": list(service.NEXT_STATUSES.get(row.status, ()))}

    return _call(request, work, operator, request_id)


def _name(session: Session, operator_id: str) -> str:
    operator = session.get(Operator, int(operator_id)) if operator_id.isdigit() else None
    return operator.name if operator is not None else operator_id


@router.post("/api/requests/{request_id}/status", tags=["requests"])
async def status(request: Request, operator: Writer, request_id: int, body: StatusIn) -> dict[str, Any]:
    """Closing an escalated request takes it off its department's desks' overdue count."""
    follow_up = timedelta(minutes=body.follow_up_minutes) if body.follow_up_minutes else None

    def work(session: Session) -> tuple[int | None, service.OverdueCount | None]:
        created = service.change_status(session, request_id, body.status, operator.id, _now(), follow_up)
        row = session.get(RequestRow, request_id)
        counted = body.status == "closed" and row.escalated_at is not None and row.department_id is not None
        return created.id if created else None, service.overdue_count(session, row.department_id) if counted else None

    follow_up_id, overdue = await asyncio.to_thread(_call, request, work, operator, request_id)
    if overdue is not None:
        await publish_overdue(request.app.state.desk.bus, overdue)
    return {"id": request_id, "status": body.status, "follow_up_id": follow_up_id}


@router.post("/api/requests/{request_id}/comment", status_code=201, tags=["requests"])
def add_comment(request: Request, operator: Writer, request_id: int, body: CommentIn) -> dict[str, Any]:
    _call(request, lambda s: service.comment(s, request_id, operator.id, body.text, _now()), operator, request_id)
    return {"id": request_id}


@router.post("/api/requests/{request_id}/assign", tags=["requests"])
def assign(request: Request, operator: Writer, request_id: int, body: AssignIn) -> dict[str, Any]:
    _call(request, lambda s: service.assign(s, request_id, body.operator_id, operator.id, _now()), operator,
          request_id)
    return {"id": request_id, "assignee_id": body.operator_id}


@router.get("/requests", response_class=HTMLResponse, include_in_schema=False)
def inbox_page(request: Request, operator: Annotated[CurrentOperator, Depends(page_operator)],
               department: str = "", view: Annotated[str, Query(pattern="^(" + "|".join(service.INBOX_VIEWS) + ")$")] = "open",
               request_id: Annotated[int | None, Query(alias="request")] = None) -> HTMLResponse:
    """The inbox of one of the operator's departments (any department for supervisors and admins),
    in one of its views (`service.inbox`); `?request=N` (a card's link) opens that request in its
    department's inbox, if the operator may see it."""
    now = _now()
    with request.app.state.desk.sessions() as session:
        mine = service.departments_of(session, operator.id, operator.role)
        shown = _visible(session, request_id, operator)
        if shown is not None:
            department = next((d.code for d in mine if d.id == shown.department_id), department)
        chosen = next((d for d in mine if d.code == department), mine[0] if mine else None)
        rows, counts = [], {}
        if chosen is not None:
            rows = [_row(r, now, _region(request)) for r in service.inbox(session, chosen.id, view, operator.id, now)]
            counts = service.inbox_counts(session, chosen.id, operator.id, now)
        tabs = [(d.code, d.name) for d in mine]
    return _render(request, "inbox.html", operator, active="requests", rows=rows, tabs=tabs, view=view,
                   views=service.INBOX_VIEWS, counts=counts, chosen=chosen.code if chosen else "",
                   data={"open_request": shown.id if shown else None})


def _visible(session: Session, request_id: int | None, operator: CurrentOperator) -> RequestRow | None:
    """The request named, or None when there is none or it is another department's."""
    if request_id is None:
        return None
    try:
        return service.check_access(session, request_id, operator.id, operator.role)
    except (service.RequestError, service.RequestForbidden):
        return None


def _limit_of(request: Request) -> RateLimit:
    """The app's limit, made on first use from its bus."""
    state = request.app.state
    if getattr(state, "web_form_limit", None) is None:
        state.web_form_limit = RateLimit(state.desk.bus, "web-form", WEB_FORM_PER_MINUTE, 60.0)
    return state.web_form_limit


@router.post("/public/requests", status_code=202, tags=["public"])
async def web_form(request: Request, body: WebFormIn) -> dict[str, str]:
    """The site's contact form; answers the same to bots (honeypot) as to people, files only people.

    No session and no CSRF token: it is posted from the company's own site, carries no one's
    authority, and is held back by its size caps, the honeypot and the rate limit instead."""
    if not (body.email.strip() or body.phone.strip()):
        raise HTTPException(422, "an e-mail or a phone number is required")
    attempt = await _limit_of(request).attempt(request.client.host if request.client else "?")
    if attempt.wait is not None:
        raise HTTPException(429, "too many requests; try again in a minute",
                            headers={"Retry-After": attempt.retry_after})
    if body.website:
        return {"status": "accepted"}
    incoming = intake.Incoming(subject=body.subject or body.message[:80], body=f"{body.name}\n\n{body.message}".strip(),
                               email=body.email.strip(), phone=body.phone.strip(), kind=body.kind)
    region = request.app.state.desk.settings.default_region

    def file() -> None:
        with request.app.state.desk.sessions.begin() as session:
            intake.file_request(session, incoming, "web", _now(), region)

    await asyncio.to_thread(file)
    return {"status": "accepted"}
