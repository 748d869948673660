"""Who may see which clients and calls: by department, so a sales operator does not browse
collections' debtors (README, "Security").

A client is *tied* to a department by its personal manager's department, by a call or a request
of that department, or (collections) by an open debt. Supervisors and admins see every client;
anyone else sees a client tied to one of their departments, a client tied to none (a new or
unassigned client, so a caller is never hidden), and the clients they work with in person: the
ones they manage, whose calls they took, whose requests are assigned to them, or whose debts are
on a campaign they work. Each rule is a SQL condition, so a search stays one query.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, or_, select, union
from sqlalchemy.orm import Session

from crm_core.models import Call, Client, Debt, Department, Request, operator_departments
from routing.campaigns.models import CampaignDebt, CampaignOperator
from routing.models import CallTransfer

COLLECTIONS = "collections"  # the department an open debt ties its debtor to


@dataclass(frozen=True)
class Viewer:
    """Whose eyes: an operator and the departments they work for; `departments=None` sees everything."""

    operator_id: int
    departments: frozenset[int] | None


def department_ids(session: Session, operator_id: int) -> frozenset[int]:
    """The departments someone works for: the ones they belong to and the ones they head."""
    member = select(operator_departments.c.department_id).where(operator_departments.c.operator_id == operator_id)
    headed = select(Department.id).where(Department.head_id == operator_id)
    return frozenset(session.scalars(union(member, headed)))


def department_queues(session: Session, departments: frozenset[int]) -> frozenset[str]:
    """The Asterisk queues of those departments."""
    if not departments:
        return frozenset()
    return frozenset(session.scalars(
        select(Department.queue).where(Department.id.in_(departments), Department.queue != "")))


def queue_names(session: Session) -> dict[str, str]:
    """Each Asterisk queue's department name, for people to read (codes stay in links, data and CSV)."""
    rows = session.execute(select(Department.queue, Department.name).where(Department.queue != ""))
    return {queue: name for queue, name in rows}


def _of(column: ColumnElement[int | None] | object, departments: frozenset[int] | None) -> ColumnElement[bool]:
    return column.is_not(None) if departments is None else column.in_(departments)  # type: ignore[attr-defined]


def tied(departments: frozenset[int] | None) -> ColumnElement[bool]:
    """The client (correlated to `Client`) is tied to one of `departments`, or to any when None."""
    collections = select(Department.id).where(Department.code == COLLECTIONS)
    if departments is not None:
        collections = collections.where(Department.id.in_(departments))
    return or_(
        exists().where(operator_departments.c.operator_id == Client.manager_id,
                       _of(operator_departments.c.department_id, departments)),
        exists().where(Call.client_id == Client.id, _of(Call.department_id, departments)),
        exists().where(Request.client_id == Client.id, _of(Request.department_id, departments)),
        and_(Client.debt_open.is_(True), exists(collections)),
    )


def _in_person(operator_id: int) -> ColumnElement[bool]:
    """The clients someone works with themselves, whatever their departments."""
    campaign = (
        select(CampaignDebt.debt_id)
        .join(Debt, Debt.id == CampaignDebt.debt_id)
        .join(CampaignOperator, CampaignOperator.campaign_id == CampaignDebt.campaign_id)
        .where(Debt.client_id == Client.id, CampaignOperator.operator_id == operator_id)
    )
    return or_(
        Client.manager_id == operator_id,
        exists().where(Call.client_id == Client.id, Call.operator_id == operator_id),
        exists().where(Request.client_id == Client.id, Request.assignee_id == operator_id),
        exists(campaign),
    )


def visible_clients(viewer: Viewer) -> ColumnElement[bool] | None:
    """A WHERE condition on `Client` for what the viewer may see; None when they see everything."""
    if viewer.departments is None:
        return None
    return or_(tied(viewer.departments), ~tied(None), _in_person(viewer.operator_id))


def may_see_client(session: Session, viewer: Viewer, client_id: int) -> bool:
    """Whether the viewer may open that client (False for a client that does not exist)."""
    query = select(Client.id).where(Client.id == client_id)
    condition = visible_clients(viewer)
    if condition is not None:
        query = query.where(condition)
    return session.scalar(query) is not None


def handed_over(operator_id: int) -> ColumnElement[bool]:
    """The call (correlated to `Call`) is one the operator answered and transferred to a colleague:
    still theirs to note, find and play, though another operator and department finished it."""
    return exists().where(CallTransfer.linkedid == Call.linkedid, CallTransfer.from_operator_id == operator_id)


def visible_calls(viewer: Viewer) -> ColumnElement[bool] | None:
    """A WHERE condition on `Call`: the viewer's own calls (handed over ones too), their departments'
    and the calls of no department (abandoned before any queue, so someone can call back); None when
    they see all."""
    if viewer.departments is None:
        return None
    return or_(Call.operator_id == viewer.operator_id, Call.department_id.in_(viewer.departments),
               Call.department_id.is_(None), handed_over(viewer.operator_id))
