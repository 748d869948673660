"""Caller cards: what the desk shows about a number while the phone rings.

The card is built in a fixed handful of queries however many clients match, because it
runs between the first ring and the operator's "hello".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Integer, bindparam, cast, null, select, union_all
from sqlalchemy.orm import Session

from crm_core.models import (
    OPEN_DEBT_STATUSES,
    Call,
    Client,
    ClientPhone,
    ContactPerson,
    Debt,
    Department,
    Interaction,
    Operator,
    Phone,
    Request,
    as_utc,
)
from crm_core.phones import format_phone, try_normalize

MAX_MATCHES = 20  # a number on more clients than this is a switchboard; the operator searches instead
RECENT_INTERACTIONS = 10


class ClientNotFound(LookupError):
    """No client has that id (deleted, or a stale page)."""


@dataclass(frozen=True)
class NumberMatch:
    """A client a number belongs to; `contact_id` when it is a company contact person's phone."""

    client_id: int
    contact_id: int | None


def _number_owners() -> Any:
    direct = (
        select(ClientPhone.client_id, cast(null(), Integer).label("contact_id"))
        .join(Phone, ClientPhone.phone_id == Phone.id)
        .where(Phone.e164 == bindparam("e164"))
    )
    via_contact = (
        select(ContactPerson.client_id, ContactPerson.id)
        .join(Phone, ContactPerson.phone_id == Phone.id)
        .where(Phone.e164 == bindparam("e164"))
    )
    return union_all(direct, via_contact)


# Built once: the card runs while the phone rings, and building these statements cost as much as
# running them (subquery column proxies, coercions). Parameters: e164, ids (expanding), limit.
_NUMBER_OWNERS = _number_owners()


def clients_for_number(session: Session, e164: str) -> list[NumberMatch]:
    """Clients owning `e164` through their own phones or a contact person's, by client id."""
    contact_of: dict[int, int | None] = {}
    for client_id, contact_id in session.execute(_NUMBER_OWNERS, {"e164": e164}):
        known = contact_of.get(client_id)
        if contact_id is not None and (known is None or contact_id < known):
            contact_of[client_id] = contact_id
        else:
            contact_of.setdefault(client_id, None)
    return [NumberMatch(cid, contact_of[cid]) for cid in sorted(contact_of)][:MAX_MATCHES]


def caller_card(session: Session, caller_raw: str, region: str = "RU") -> dict[str, Any]:
    """The card for an incoming number: [] matches for an unknown caller, several for a shared number."""
    e164 = try_normalize(caller_raw, region)
    caller = {
        "raw": caller_raw,
        "e164": e164,
        "display": format_phone(e164) if e164 else caller_raw,
        "valid": e164 is not None,
    }
    if e164 is None:
        return {"caller": caller, "matches": []}
    matches = clients_for_number(session, e164)
    cards = client_cards(session, [m.client_id for m in matches])
    for match in matches:
        card = cards[match.client_id]
        if match.contact_id is not None:
            contact = next(c for c in card["contacts"] if c["id"] == match.contact_id)
            card["contact"] = {k: contact[k] for k in ("id", "name", "position")}
    return {"caller": caller, "matches": [cards[m.client_id] for m in matches]}


def client_card(session: Session, client_id: int) -> dict[str, Any]:
    """One client's card, for opening the client page."""
    card = client_cards(session, [client_id]).get(client_id)
    if card is None:
        raise ClientNotFound(f"no client with id {client_id}")
    return card


def client_cards(session: Session, client_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Cards of several clients at once: one query per section, not per client."""
    if not client_ids:
        return {}
    cards: dict[int, dict[str, Any]] = {}
    ids_param = {"ids": list(client_ids)}
    for row in session.execute(_CLIENTS, ids_param):
        cards[row.id] = {
            "id": row.id,
            "kind": row.kind,
            "name": row.name,
            "segment": row.segment,
            "email": row.email,
            "city": row.city,
            "notes": row.notes,
            "contact": None,
            "contacts": [],
            "phones": [],
            "manager": (
                {"id": row.manager_id, "name": row.manager_name, "login": row.manager_login}
                if row.manager_id is not None else None
            ),
            "open_requests": [],
            "last_interactions": [],
            "debts": [],
        }
    ids = list(cards)
    if not ids:
        return cards
    ids_param = {"ids": ids}
    for client_id, e164, kind, label in session.execute(_PHONES, ids_param):
        cards[client_id]["phones"].append(phone_dict(e164, kind, label))
    for person_id, client_id, name, position, email, e164, kind in session.execute(_CONTACTS, ids_param):
        cards[client_id]["contacts"].append({
            "id": person_id,
            "name": name,
            "position": position,
            "email": email,
            "phones": [phone_dict(e164, kind, "")] if e164 else [],
        })
    for req_id, client_id, subject, department, status, created_at in session.execute(_OPEN_REQUESTS, ids_param):
        cards[client_id]["open_requests"].append({
            "id": req_id,
            "subject": subject,
            "department": department,
            "status": status,
            "created_at": as_utc(created_at).isoformat(),
        })
    for row in session.execute(_OPEN_DEBTS, ids_param):
        cards[row.client_id]["debts"].append(debt_dict(row))
    for client_id, entries in last_interactions(session, ids, RECENT_INTERACTIONS).items():
        cards[client_id]["last_interactions"] = entries
    return cards


_CLIENTS = (
    select(Client.id, Client.kind, Client.name, Client.segment, Client.email, Client.city, Client.notes,
           Operator.id.label("manager_id"), Operator.name.label("manager_name"),
           Operator.login.label("manager_login"))
    .outerjoin(Operator, Client.manager_id == Operator.id)
    .where(Client.id.in_(bindparam("ids", expanding=True)))
)
_PHONES = (
    select(ClientPhone.client_id, Phone.e164, Phone.kind, ClientPhone.label)
    .join(Phone, ClientPhone.phone_id == Phone.id)
    .where(ClientPhone.client_id.in_(bindparam("ids", expanding=True)))
    .order_by(ClientPhone.id)
)
_CONTACTS = (
    select(ContactPerson.id, ContactPerson.client_id, ContactPerson.name, ContactPerson.position,
           ContactPerson.email, Phone.e164, Phone.kind)
    .outerjoin(Phone, ContactPerson.phone_id == Phone.id)
    .where(ContactPerson.client_id.in_(bindparam("ids", expanding=True)))
    .order_by(ContactPerson.id)
)
_OPEN_REQUESTS = (
    select(Request.id, Request.client_id, Request.subject, Department.name, Request.status, Request.created_at)
    .outerjoin(Department, Request.department_id == Department.id)
    .where(Request.client_id.in_(bindparam("ids", expanding=True)), Request.status != "closed")
    .order_by(Request.created_at.desc(), Request.id.desc())
)

_OPEN_DEBTS = (
    select(Debt.id, Debt.client_id, Debt.contract, Debt.creditor, Debt.principal, Debt.total_due, Debt.currency,
           Debt.days_past_due, Debt.status, Debt.promised_amount, Debt.promised_date)
    .where(Debt.client_id.in_(bindparam("ids", expanding=True)), Debt.status.in_(OPEN_DEBT_STATUSES))
    .order_by(Debt.days_past_due.desc(), Debt.id)
)


def debt_dict(row: Any) -> dict[str, Any]:
    """A debt as the card shows it; amounts as strings, so no float ever rounds a kopeck away."""
    return {
        "id": row.id,
        "contract": row.contract,
        "creditor": row.creditor,
        "principal": str(row.principal),
        "total_due": str(row.total_due),
        "currency": row.currency,
        "days_past_due": row.days_past_due,
        "status": row.status,
        "promised_amount": None if row.promised_amount is None else str(row.promised_amount),
        "promised_date": None if row.promised_date is None else row.promised_date.isoformat(),
    }


def phone_dict(e164: str, kind: str, label: str) -> dict[str, str]:
    return {"e164": e164, "display": format_phone(e164), "kind": kind, "label": label}


@lru_cache(maxsize=MAX_MATCHES)
def _last_calls(n: int) -> Any:
    """The newest `:limit` calls of each of `n` clients (`:id0`…), built once per n."""
    return union_all(*(
        select(
            select(Call.client_id, Call.started_at.label("at"), Call.direction, Call.outcome,
                   Operator.name.label("operator"), Call.wait_seconds, Call.talk_seconds, Call.disposition)
            .outerjoin(Operator, Call.operator_id == Operator.id)
            .where(Call.client_id == bindparam(f"id{i}", type_=Integer))
            .order_by(Call.started_at.desc(), Call.id.desc())
            .limit(bindparam("limit", type_=Integer))
            .subquery()
        )
        for i in range(n)
    ))


@lru_cache(maxsize=MAX_MATCHES)
def _last_notes(n: int) -> Any:
    """The newest `:limit` notes of each of `n` clients, as `_last_calls`."""
    return union_all(*(
        select(
            select(Interaction.client_id, Interaction.created_at.label("at"), Operator.name.label("operator"),
                   Interaction.note, Call.disposition)
            .outerjoin(Operator, Interaction.author_id == Operator.id)
            .outerjoin(Call, Interaction.call_id == Call.id)
            .where(Interaction.client_id == bindparam(f"id{i}", type_=Integer))
            .order_by(Interaction.created_at.desc(), Interaction.id.desc())
            .limit(bindparam("limit", type_=Integer))
            .subquery()
        )
        for i in range(n)
    ))


def last_interactions(session: Session, client_ids: Iterable[int], limit: int) -> dict[int, list[dict]]:
    """Calls and notes of each client merged, newest first, at most `limit` each (two queries)."""
    ids = list(dict.fromkeys(client_ids))
    if not ids:
        return {}
    params: dict[str, int] = {f"id{i}": client_id for i, client_id in enumerate(ids)}
    params["limit"] = limit
    merged: dict[int, list[tuple[datetime, dict]]] = defaultdict(list)
    for row in session.execute(_last_calls(len(ids)), params):
        at = as_utc(row.at)
        merged[row.client_id].append((at, {
            "type": "call", "at": at.isoformat(), "direction": row.direction, "outcome": row.outcome,
            "operator": row.operator, "note": "", "wait_seconds": row.wait_seconds,
            "talk_seconds": row.talk_seconds, "disposition": row.disposition,
        }))
    for row in session.execute(_last_notes(len(ids)), params):
        at = as_utc(row.at)
        merged[row.client_id].append((at, {
            "type": "note", "at": at.isoformat(), "direction": None, "outcome": None,
            "operator": row.operator, "note": row.note, "wait_seconds": None, "talk_seconds": None,
            "disposition": row.disposition,
        }))
    return {
        client_id: [entry for _, entry in sorted(entries, key=lambda e: e[0], reverse=True)[:limit]]
        for client_id, entries in merged.items()
    }
