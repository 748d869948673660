"""Caller cards: what the desk shows about a number while the phone rings.

The card is built in a fixed handful of queries however many clients match, because it
runs between the first ring and the operator's "hello".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, cast, func, null, select, union_all
from sqlalchemy.orm import Session

from crm_core.models import (
    Call,
    Client,
    ClientPhone,
    ContactPerson,
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


def clients_for_number(session: Session, e164: str) -> list[NumberMatch]:
    """Clients owning `e164` through their own phones or a contact person's, by client id."""
    direct = (
        select(ClientPhone.client_id, cast(null(), Integer).label("contact_id"))
        .join(Phone, ClientPhone.phone_id == Phone.id)
        .where(Phone.e164 == e164)
    )
    via_contact = (
        select(ContactPerson.client_id, ContactPerson.id)
        .join(Phone, ContactPerson.phone_id == Phone.id)
        .where(Phone.e164 == e164)
    )
    contact_of: dict[int, int | None] = {}
    for client_id, contact_id in session.execute(union_all(direct, via_contact)):
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
    rows = session.execute(
        select(Client, Operator)
        .outerjoin(Operator, Client.manager_id == Operator.id)
        .where(Client.id.in_(client_ids))
    )
    for client, manager in rows:
        cards[client.id] = {
            "id": client.id,
            "kind": client.kind,
            "name": client.name,
            "segment": client.segment,
            "email": client.email,
            "city": client.city,
            "notes": client.notes,
            "contact": None,
            "contacts": [],
            "phones": [],
            "manager": {"id": manager.id, "name": manager.name, "login": manager.login} if manager else None,
            "open_requests": [],
            "last_interactions": [],
        }
    ids = list(cards)
    if not ids:
        return cards
    phone_rows = session.execute(
        select(ClientPhone.client_id, Phone.e164, Phone.kind, ClientPhone.label)
        .join(Phone, ClientPhone.phone_id == Phone.id)
        .where(ClientPhone.client_id.in_(ids))
        .order_by(ClientPhone.id)
    )
    for client_id, e164, kind, label in phone_rows:
        cards[client_id]["phones"].append(phone_dict(e164, kind, label))
    contact_rows = session.execute(
        select(ContactPerson, Phone.e164, Phone.kind)
        .outerjoin(Phone, ContactPerson.phone_id == Phone.id)
        .where(ContactPerson.client_id.in_(ids))
        .order_by(ContactPerson.id)
    )
    for person, e164, kind in contact_rows:
        cards[person.client_id]["contacts"].append({
            "id": person.id,
            "name": person.name,
            "position": person.position,
            "email": person.email,
            "phones": [phone_dict(e164, kind, "")] if e164 else [],
        })
    request_rows = session.execute(
        select(Request.id, Request.client_id, Request.subject, Department.name, Request.status,
               Request.created_at)
        .outerjoin(Department, Request.department_id == Department.id)
        .where(Request.client_id.in_(ids), Request.status != "closed")
        .order_by(Request.created_at.desc(), Request.id.desc())
    )
    for req_id, client_id, subject, department, status, created_at in request_rows:
        cards[client_id]["open_requests"].append({
            "id": req_id,
            "subject": subject,
            "department": department,
            "status": status,
            "created_at": as_utc(created_at).isoformat(),
        })
    for client_id, entries in last_interactions(session, ids, RECENT_INTERACTIONS).items():
        cards[client_id]["last_interactions"] = entries
    return cards


def phone_dict(e164: str, kind: str, label: str) -> dict[str, str]:
    return {"e164": e164, "display": format_phone(e164), "kind": kind, "label": label}


def last_interactions(session: Session, client_ids: Iterable[int], limit: int) -> dict[int, list[dict]]:
    """Calls and notes of each client merged, newest first, at most `limit` each (two queries)."""
    ids = list(client_ids)
    call_rank = func.row_number().over(
        partition_by=Call.client_id, order_by=(Call.started_at.desc(), Call.id.desc())
    )
    calls = (
        select(Call.client_id, Call.started_at.label("at"), Call.direction, Call.outcome,
               Operator.name.label("operator"), Call.wait_seconds, Call.talk_seconds, Call.disposition,
               call_rank.label("rank"))
        .outerjoin(Operator, Call.operator_id == Operator.id)
        .where(Call.client_id.in_(ids))
        .subquery()
    )
    note_rank = func.row_number().over(
        partition_by=Interaction.client_id, order_by=(Interaction.created_at.desc(), Interaction.id.desc())
    )
    notes = (
        select(Interaction.client_id, Interaction.created_at.label("at"), Operator.name.label("operator"),
               Interaction.note, Call.disposition, note_rank.label("rank"))
        .outerjoin(Operator, Interaction.author_id == Operator.id)
        .outerjoin(Call, Interaction.call_id == Call.id)
        .where(Interaction.client_id.in_(ids))
        .subquery()
    )
    merged: dict[int, list[tuple[datetime, dict]]] = defaultdict(list)
    for row in session.execute(select(calls).where(calls.c.rank <= limit)):
        at = as_utc(row.at)
        merged[row.client_id].append((at, {
            "type": "call", "at": at.isoformat(), "direction": row.direction, "outcome": row.outcome,
            "operator": row.operator, "note": "", "wait_seconds": row.wait_seconds,
            "talk_seconds": row.talk_seconds, "disposition": row.disposition,
        }))
    for row in session.execute(select(notes).where(notes.c.rank <= limit)):
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
