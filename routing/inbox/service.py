"""Requests to departments: typed, routed by type and client, with an SLA deadline and a history.

Every change (status, assignment, comment, escalation) is a RequestEvent, so the inbox can
show who did what when. Times are passed in (`now`), which keeps SLA tests exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from crm_core.db import insert_or_ignore
from crm_core.models import Client, Department, Operator, Request, as_utc
from crm_core.phones import format_phone
from routing.inbox.models import RequestEvent


@dataclass(frozen=True)
class RequestType:
    department: str  # department code that handles it by default
    sla: timedelta


REQUEST_TYPES = {
    "question": RequestType("service", timedelta(hours=8)),
    "complaint": RequestType("service", timedelta(hours=4)),
    "order": RequestType("sales", timedelta(hours=2)),
    "service": RequestType("service", timedelta(hours=24)),
    "callback": RequestType("sales", timedelta(minutes=15)),  # "call back within 15 minutes"
    "promise": RequestType("collections", timedelta(days=1)),  # check that a promised payment came
}
STATUSES = ("open", "in_progress", "closed")
AGAIN = "again"  # a request's history event: the caller missed us once more while it was open
# Where a request may go from each status: closed is final (a follow-up is a new request).
NEXT_STATUSES = {"open": ("in_progress", "closed"), "in_progress": ("open", "closed"), "closed": ()}


class RequestError(ValueError):
    """A change the request cannot take (unknown type or status, closed already)."""


def department_for(session: Session, kind: str, client: Client | None) -> Department | None:
    """A debtor's request goes to collections, a managed client's to the manager's department,
    anyone else's to the type's department."""
    code = REQUEST_TYPES[kind].department
    if client is not None and client.debt_open:
        code = "collections"
    elif client is not None and client.manager is not None and client.manager.departments:
        code = client.manager.departments[0].code
    return session.scalar(select(Department).where(Department.code == code))


def create_request(
    session: Session,
    kind: str,
    subject: str,
    now: datetime,
    *,
    body: str = "",
    source: str = "desk",
    client_id: int | None = None,
    contact: str = "",
    author_id: int | None = None,
    department_id: int | None = None,
    due_at: datetime | None = None,
) -> Request:
    if kind not in REQUEST_TYPES:
        raise RequestError(f"unknown request type {kind!r}; one of {', '.join(REQUEST_TYPES)}")
    client = session.get(Client, client_id) if client_id is not None else None
    if department_id is None:
        dept = department_for(session, kind, client)
        department_id = dept.id if dept is not None else None
    request = Request(
        kind=kind, subject=subject[:256], body=body, source=source, client_id=client_id, contact=contact[:256],
        department_id=department_id, created_at=now, due_at=due_at or now + REQUEST_TYPES[kind].sla,
        assignee_id=client.manager_id if client is not None and not client.debt_open else None,
    )
    session.add(request)
    session.flush()
    session.add(RequestEvent(request_id=request.id, at=now, author_id=author_id, kind="created", value=kind))
    return request


def create_callback_for_call(
    session: Session, linkedid: str, client_id: int | None, department_id: int | None, caller: str, now: datetime,
    why: str,
) -> bool:
    """The callback task of a missed call, once per Linkedid however often the event comes; None
    `client_id`: a caller the CRM does not know, or a number several clients share (the callback
    asks who it was). A number with a callback still open gets no second task: the call goes into
    that one's history (`again`, value its Linkedid), so two operators never ring the same caller."""
    if session.scalar(select(Request.id).where(Request.linkedid == linkedid)) is not None:
        return False
    if session.scalar(select(RequestEvent.id).where(RequestEvent.kind == AGAIN, RequestEvent.value == linkedid)):
        return False
    if join_open_callback(session, caller, linkedid, now, why) is not None:
        return False
    sla = REQUEST_TYPES["callback"].sla
    if department_id is None:
        dept = department_for(session, "callback", session.get(Client, client_id) if client_id is not None else None)
        department_id = dept.id if dept is not None else None
    insert_or_ignore(  # a concurrent consumer inserting the same Linkedid is not an error
        session, Request, ["linkedid"], linkedid=linkedid, kind="callback",
        subject=f"Перезвонить: {format_phone(caller)} ({why})",
        body="", source="call", client_id=client_id, contact=caller, department_id=department_id, status="open",
        created_at=now, due_at=now + sla,
    )
    request_id = session.scalar(select(Request.id).where(Request.linkedid == linkedid))
    session.add(RequestEvent(request_id=request_id, at=now, kind="created", value="callback", text=why))
    return True


def withdraw_callback(session: Session, linkedid: str, now: datetime, why: str) -> bool:
    """Close the callback task a call's end filed (`create_callback_for_call`) when the call turns
    out to need none, with `why` in its history; only while nobody has started on it. True when
    one was closed."""
    task = session.scalar(select(Request).where(Request.linkedid == linkedid, Request.kind == "callback",
                                                Request.source == "call", Request.status == "open"))
    if task is None:
        return False
    session.add(RequestEvent(request_id=task.id, at=now, kind="comment", text=why))
    change_status(session, task.id, "closed", None, now)
    return True


def join_open_callback(session: Session, contact: str, linkedid: str, now: datetime, why: str) -> int | None:
    """The number's callback still open, with this call added to its history (`again`); None when
    it has none. Whatever asks for a callback (a missed call, the IVR) asks here first, so two
    operators never ring the same caller."""
    waiting = session.scalar(select(Request.id).where(
        Request.kind == "callback", Request.contact == contact, Request.status != "closed").order_by(Request.id).limit(1))
    if waiting is not None:
        session.add(RequestEvent(request_id=waiting, at=now, kind=AGAIN, value=linkedid, text=why))
    return waiting


def change_status(
    session: Session, request_id: int, status: str, author_id: int | None, now: datetime,
    follow_up_in: timedelta | None = None,
) -> Request | None:
    """Move a request on; closing it may schedule a follow-up call, returned as a new callback request."""
    if status not in STATUSES:
        raise RequestError(f"unknown status {status!r}")
    request = _get(session, request_id)
    if not NEXT_STATUSES.get(request.status):
        raise RequestError("the request is closed already")
    request.status = status
    session.add(RequestEvent(request_id=request.id, at=now, author_id=author_id, kind="status", value=status))
    if status != "closed":
        return None
    request.closed_at = now
    if follow_up_in is None:
        return None
    return create_request(
        session, "callback", f"Follow-up: {request.subject}"[:256], now, source="follow_up",
        client_id=request.client_id, contact=request.contact, author_id=author_id,
        department_id=request.department_id, due_at=now + follow_up_in,
    )


SEES_ALL = ("supervisor", "admin")


class RequestForbidden(PermissionError):
    """The operator may not see or change this request: it is another department's."""


def departments_of(session: Session, operator_id: int, role: str) -> list[Department]:
    """The departments whose requests an operator works with: supervisors and admins all of them,
    everyone else the ones they belong to and the ones they head."""
    everything = list(session.scalars(select(Department).order_by(Department.code)))
    if role in SEES_ALL:
        return everything
    operator = session.get(Operator, operator_id)
    mine = {d.id for d in operator.departments} if operator is not None else set()
    return [d for d in everything if d.id in mine or d.head_id == operator_id]


def check_access(session: Session, request_id: int, operator_id: int, role: str) -> Request:
    """The request, if the operator may see and change it; a request of no department is the
    supervisors' to sort out."""
    request = _get(session, request_id)
    if role in SEES_ALL:
        return request
    if request.department_id not in {d.id for d in departments_of(session, operator_id, role)}:
        raise RequestForbidden(f"request {request_id} belongs to another department")
    return request


def colleagues(session: Session, department_id: int | None) -> list[Operator]:
    """Who a department's request can be assigned to: its active members and its head."""
    department = session.get(Department, department_id) if department_id is not None else None
    if department is None:
        return []
    people = {o.id: o for o in department.operators if o.active}
    if department.head is not None and department.head.active:
        people[department.head.id] = department.head
    return sorted(people.values(), key=lambda o: o.name)


def assign(session: Session, request_id: int, assignee_id: int, author_id: int | None, now: datetime) -> None:
    """Assign to someone of the request's department (a supervisor may pick anyone)."""
    request = _get(session, request_id)
    assignee = session.get(Operator, assignee_id)
    if assignee is None:
        raise RequestError(f"no operator {assignee_id}")
    if assignee.role not in SEES_ALL and assignee not in colleagues(session, request.department_id):
        raise RequestError(f"{assignee.name} does not work in this request's department")
    request.assignee_id = assignee_id
    session.add(RequestEvent(request_id=request.id, at=now, author_id=author_id, kind="assigned",
                             value=str(assignee_id)))


def comment(session: Session, request_id: int, author_id: int | None, text: str, now: datetime) -> None:
    text = text.strip()
    if not text:
        raise RequestError("an empty comment")
    _get(session, request_id)
    session.add(RequestEvent(request_id=request_id, at=now, author_id=author_id, kind="comment", text=text))


INBOX_VIEWS = ("open", "mine", "overdue", "closed")
CLOSED_SHOWN = 200  # the closed view lists the latest this many


def inbox(session: Session, department_id: int, view: str, me: int, now: datetime) -> list[Request]:
    """A department's requests as its inbox shows them, with their clients and assignees: `open`
    the unfinished ones, `mine` those of them assigned to `me`, `overdue` those past their deadline
    at `now`, each the most urgent first (those without a deadline last, where SQLite would put them
    first); `closed` the latest closed ones, the last closed first."""
    if view not in INBOX_VIEWS:
        raise RequestError(f"unknown inbox view {view!r}; one of {', '.join(INBOX_VIEWS)}")
    query = (select(Request).where(Request.department_id == department_id)
             .options(joinedload(Request.client), joinedload(Request.assignee)))
    if view == "closed":
        return list(session.scalars(query.where(Request.status == "closed").order_by(
            Request.closed_at.is_(None), Request.closed_at.desc(), Request.id.desc()).limit(CLOSED_SHOWN)))
    query = query.where(Request.status != "closed")
    if view == "mine":
        query = query.where(Request.assignee_id == me)
    elif view == "overdue":
        query = query.where(Request.due_at < now)
    return list(session.scalars(query.order_by(Request.due_at.is_(None), Request.due_at, Request.id)))


def inbox_counts(session: Session, department_id: int, me: int, now: datetime) -> dict[str, int]:
    """How many requests the inbox's unfinished views hold, in one pass: the numbers on their tabs."""
    total, mine, overdue = session.execute(
        select(func.count(), func.count().filter(Request.assignee_id == me), func.count().filter(Request.due_at < now))
        .where(Request.department_id == department_id, Request.status != "closed")).one()
    return {"open": total, "mine": mine, "overdue": overdue}


def overdue_counts(session: Session, departments: list[Department]) -> list[tuple[Department, int]]:
    """The departments with unfinished requests the escalator found overdue, and how many: the desk
    shows them on load, and `overdue_count` pushes each change. Escalated ones only, as the
    escalator counts them, so a request past its deadline shows in the same round everywhere."""
    counts = dict(session.execute(
        select(Request.department_id, func.count())
        .where(Request.department_id.in_([d.id for d in departments]), Request.status != "closed",
               Request.escalated_at.is_not(None))
        .group_by(Request.department_id)).all())
    return [(d, counts[d.id]) for d in departments if d.id in counts]


def history(session: Session, request_id: int) -> list[RequestEvent]:
    return list(session.scalars(select(RequestEvent).where(RequestEvent.request_id == request_id)
                                .order_by(RequestEvent.at, RequestEvent.id)))


@dataclass(frozen=True)
class Escalation:
    """An overdue request and the head of department whose desk must hear about it (None: the
    department has no head; its desks' overdue count still goes up)."""

    request_id: int
    head_id: int | None
    department_id: int
    department: str
    subject: str
    due_at: datetime


def escalate_overdue(session: Session, now: datetime) -> list[Escalation]:
    """Mark every newly overdue open request escalated; each is reported once."""
    rows = session.execute(
        select(Request, Department)
        .join(Department, Request.department_id == Department.id)
        .where(Request.status != "closed", Request.escalated_at.is_(None), Request.due_at < now)
        .order_by(Request.due_at)
    ).all()
    found = []
    for request, dept in rows:
        request.escalated_at = now
        session.add(RequestEvent(request_id=request.id, at=now, kind="escalated",
                                 value=str(dept.head_id or "")))
        found.append(Escalation(request.id, dept.head_id, dept.id, dept.name, request.subject,
                                as_utc(request.due_at)))
    return found


@dataclass(frozen=True)
class OverdueCount:
    """A department's escalated unfinished requests now, and the desks whose overdue line shows
    them: its people and head, supervisors and admins (those `departments_of` gives it to)."""

    department_code: str
    department: str
    count: int
    desks: tuple[int, ...]


def overdue_count(session: Session, department_id: int) -> OverdueCount:
    department = session.get(Department, department_id)
    if department is None:
        raise RequestError(f"no department {department_id}")
    count = dict(overdue_counts(session, [department])).get(department, 0)
    desks = {o.id for o in colleagues(session, department_id)} | set(session.scalars(
        select(Operator.id).where(Operator.role.in_(SEES_ALL), Operator.active)))
    return OverdueCount(department.code, department.name, count, tuple(sorted(desks)))


def _get(session: Session, request_id: int) -> Request:
    request = session.get(Request, request_id)
    if request is None:
        raise RequestError(f"no request {request_id}")
    return request
