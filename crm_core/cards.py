"""Caller cards: what the desk shows about a number while the phone rings.

The card is built in a fixed handful of queries however many clients match, because it
runs between the first ring and the operator's "hello".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    literal,
    null,
    select,
    true,
    union_all,
)
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
from crm_core.phones import format_phone, shown_number, try_normalize
from crm_core.prepared import fetch

MAX_MATCHES = 20  # a number on more clients than this is a switchboard; the operator searches instead
RECENT_INTERACTIONS = 10


class ClientNotFound(LookupError):
    """No client has that id (deleted, or a stale page)."""


@dataclass(frozen=True)
class NumberMatch:
    """A client a number belongs to; `contact_id` when it is a company contact person's phone."""

    client_id: int
    contact_id: int | None


def _number_owners(*, many: bool) -> Any:
    """(client_id, contact_id) of the owners of one number (`e164`), or (e164, client_id,
    contact_id) of the owners of several (`e164s`, expanding)."""
    number = Phone.e164.in_(bindparam("e164s", expanding=True)) if many else Phone.e164 == bindparam("e164")
    first = (Phone.e164,) if many else ()
    direct = (
        select(*first, ClientPhone.client_id, cast(null(), Integer).label("contact_id"))
        .join(Phone, ClientPhone.phone_id == Phone.id)
        .where(number)
    )
    via_contact = (
        select(*first, ContactPerson.client_id, ContactPerson.id)
        .join(Phone, ContactPerson.phone_id == Phone.id)
        .where(number)
    )
    return union_all(direct, via_contact)


# Built once: the card runs while the phone rings, and building these statements cost as much as
# running them (subquery column proxies, coercions). Parameters: e164, ids (expanding), limit.
_NUMBER_OWNERS = _number_owners(many=False)
_NUMBERS_OWNERS = _number_owners(many=True)


def clients_for_number(session: Session, e164: str) -> list[NumberMatch]:
    """Clients owning `e164` through their own phones or a contact person's, by client id."""
    return _matches(session.execute(_NUMBER_OWNERS, {"e164": e164}))


def clients_for_numbers(connection: Connection, e164s: Collection[str]) -> dict[str, list[NumberMatch]]:
    """`clients_for_number` of each of `e164s` in one statement (the call logger's batch)."""
    owners: dict[str, list[tuple[int, int | None]]] = {e164: [] for e164 in e164s}
    if owners:
        (found,) = fetch(connection, [(_NUMBERS_OWNERS, {"e164s": list(owners)})])
        for e164, client_id, contact_id in found:
            owners[e164].append((client_id, contact_id))
    return {e164: _matches(found) for e164, found in owners.items()}


def _matches(owners: Iterable[tuple[int, int | None]]) -> list[NumberMatch]:
    """One match per client (with its first contact person on the number, if any), by client id,
    at most MAX_MATCHES."""
    contact_of: dict[int, int | None] = {}
    for client_id, contact_id in owners:
        known = contact_of.get(client_id)
        if contact_id is not None and (known is None or contact_id < known):
            contact_of[client_id] = contact_id
        else:
            contact_of.setdefault(client_id, None)
    return [NumberMatch(cid, contact_of[cid]) for cid in sorted(contact_of)][:MAX_MATCHES]


def caller_card(db: Session | Connection, caller_raw: str, region: str = "RU") -> dict[str, Any]:
    """The card for an incoming number: [] matches for an unknown caller, several for a shared number.
    The desk popper passes a reader's Connection (`crm_core.db.read`), pages their Session."""
    e164 = try_normalize(caller_raw, region)
    caller = {
        "raw": caller_raw,
        "e164": e164,
        "display": shown_number(caller_raw, e164),
        "valid": e164 is not None,
    }
    if e164 is None:
        return {"caller": caller, "matches": []}
    number = {"e164": e164}
    connection = db if isinstance(db, Connection) else db.connection()
    by_number = connection.dialect.name == "postgresql"
    if by_number:  # one round trip: the sections select their clients through the number (_BY_NUMBER)
        rows, *sections = fetch(connection, [(_OWNED_CLIENTS, number), *((s, number) for s in _BY_NUMBER)])
    else:
        (rows,) = fetch(connection, [(_OWNED_CLIENTS, number)])
    matches = _matches((row.id, row.contact_id) for row in rows)
    chosen = {m.client_id for m in matches}
    if not by_number:
        sections = _sections(connection, [m.client_id for m in matches])
    cards = _fill({row.id: _head(row) for row in rows if row.id in chosen}, sections)
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
    cards = {row.id: _head(row) for row in session.execute(_CLIENTS, {"ids": list(client_ids)})}
    return _fill(cards, _sections(session.connection(), list(cards)))


def _head(row: Any) -> dict[str, Any]:
    """A card with the client's own fields and manager, its sections still empty."""
    return {
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


def _fill(cards: dict[int, dict[str, Any]], sections: list[list[Any]]) -> dict[int, dict[str, Any]]:
    """The cards with their sections' rows (see `_sections`) put in."""
    phones, contacts, requests, debts, interactions = sections
    for client_id, e164, kind, label in phones:
        cards[client_id]["phones"].append(phone_dict(e164, kind, label))
    for person_id, client_id, name, position, email, e164, kind in contacts:
        cards[client_id]["contacts"].append({
            "id": person_id,
            "name": name,
            "position": position,
            "email": email,
            "phones": [phone_dict(e164, kind, "")] if e164 else [],
        })
    for req_id, client_id, subject, department, status, created_at in requests:
        cards[client_id]["open_requests"].append({
            "id": req_id,
            "subject": subject,
            "department": department,
            "status": status,
            "created_at": as_utc(created_at).isoformat(),
        })
    for row in debts:
        cards[row.client_id]["debts"].append(debt_dict(row))
    for client_id, entries in _merged(interactions, RECENT_INTERACTIONS).items():
        cards[client_id]["last_interactions"] = entries
    return cards


def _sections(connection: Connection, ids: list[int]) -> list[list[Any]]:
    """The rows of phones, contacts, open requests, open debts and newest interactions of `ids`
    (one psycopg pipeline on PostgreSQL, see `crm_core.prepared.fetch`); no query at all for no ids."""
    if not ids:
        return [[], [], [], [], []]
    newest = {f"id{i}": client_id for i, client_id in enumerate(ids)} | {"limit": RECENT_INTERACTIONS}
    statements = [(_PHONES, {"ids": ids}), (_CONTACTS, {"ids": ids}), (_OPEN_REQUESTS, {"ids": ids}),
                  (_OPEN_DEBTS, {"ids": ids}), (_newest_interactions(len(ids)), newest)]
    return fetch(connection, statements)


_CLIENTS = (
    select(Client.id, Client.kind, Client.name, Client.segment, Client.email, Client.city, Client.notes,
           Operator.id.label("manager_id"), Operator.name.label("manager_name"),
           Operator.login.label("manager_login"))
    .outerjoin(Operator, Client.manager_id == Operator.id)
    .where(Client.id.in_(bindparam("ids", expanding=True)))
)
_OWNED = _NUMBER_OWNERS.subquery()
_OWNED_CLIENTS = (
    select(Client.id, _OWNED.c.contact_id, Client.kind, Client.name, Client.segment, Client.email, Client.city,
           Client.notes, Operator.id.label("manager_id"), Operator.name.label("manager_name"),
           Operator.login.label("manager_login"))
    .join(Client, Client.id == _OWNED.c.client_id)
    .outerjoin(Operator, Client.manager_id == Operator.id)
    .order_by(Client.id)
)
def _section_statements(owners: Any) -> tuple[Any, Any, Any, Any]:
    """Phones, contacts, open requests and open debts of the clients `owners` selects."""
    phones = (
        select(ClientPhone.client_id, Phone.e164, Phone.kind, ClientPhone.label)
        .join(Phone, ClientPhone.phone_id == Phone.id)
        .where(ClientPhone.client_id.in_(owners))
        .order_by(ClientPhone.id)
    )
    contacts = (
        select(ContactPerson.id, ContactPerson.client_id, ContactPerson.name, ContactPerson.position,
               ContactPerson.email, Phone.e164, Phone.kind)
        .outerjoin(Phone, ContactPerson.phone_id == Phone.id)
        .where(ContactPerson.client_id.in_(owners))
        .order_by(ContactPerson.id)
    )
    requests = (
        select(Request.id, Request.client_id, Request.subject, Department.name, Request.status, Request.created_at)
        .outerjoin(Department, Request.department_id == Department.id)
        .where(Request.client_id.in_(owners), Request.status != "closed")
        .order_by(Request.created_at.desc(), Request.id.desc())
    )
    debts = (
        select(Debt.id, Debt.client_id, Debt.contract, Debt.creditor, Debt.principal, Debt.total_due, Debt.currency,
               Debt.days_past_due, Debt.status, Debt.promised_amount, Debt.promised_date)
        .where(Debt.client_id.in_(owners), Debt.status.in_(OPEN_DEBT_STATUSES))
        .order_by(Debt.days_past_due.desc(), Debt.id)
    )
    return phones, contacts, requests, debts


_PHONES, _CONTACTS, _OPEN_REQUESTS, _OPEN_DEBTS = _section_statements(bindparam("ids", expanding=True))


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
def _newest_interactions(n: int) -> Any:
    """The newest `:limit` calls and the newest `:limit` notes of each of `n` clients (`:id0`…), in
    one query built once per n.

    One `ORDER BY … LIMIT` per client and kind walks the (client_id, time) index and stops after
    `limit` rows, where a window over all of a client's rows would read a busy company's 50,000
    calls to keep 10; operators are joined to the kept rows only.
    """
    limit = bindparam("limit", type_=Integer)
    parts = []
    for i in range(n):
        client_id = bindparam(f"id{i}", type_=Integer)
        parts += [select(_newest_calls(client_id, limit).subquery()), select(_newest_notes(client_id, limit).subquery())]
    return _with_operator(union_all(*parts).subquery())


def _newest_of_chosen(chosen: Any) -> Any:
    """`_newest_interactions` for the clients `chosen` selects (its `client_id` column), with LATERAL:
    the same per-client `ORDER BY … LIMIT` walks, without knowing the ids beforehand (PostgreSQL)."""
    limit = bindparam("limit", type_=Integer, value=RECENT_INTERACTIONS)
    calls = _newest_calls(chosen.c.client_id, limit).lateral()
    notes = _newest_notes(chosen.c.client_id, limit).lateral()
    return _with_operator(union_all(
        select(calls).select_from(chosen).join(calls, true()),
        select(notes).select_from(chosen).join(notes, true()),
    ).subquery())


def _newest_calls(client_id: Any, limit: Any) -> Any:
    """A client's newest `limit` calls, in the timeline's columns."""
    return (
        select(Call.client_id, Call.started_at.label("at"), literal("call").label("type"), Call.id.label("row_id"),
               Call.operator_id.label("author_id"), Call.direction, Call.outcome, Call.wait_seconds,
               Call.talk_seconds, Call.disposition, cast(null(), Text).label("note"), Call.linkedid)
        .where(Call.client_id == client_id)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    )


def _newest_notes(client_id: Any, limit: Any) -> Any:
    """A client's newest `limit` notes, in the timeline's columns (the disposition of their call)."""
    return (
        select(Interaction.client_id, Interaction.created_at.label("at"), literal("note").label("type"),
               Interaction.id.label("row_id"), Interaction.author_id, cast(null(), String).label("direction"),
               cast(null(), String).label("outcome"), cast(null(), Integer).label("wait_seconds"),
               cast(null(), Integer).label("talk_seconds"), Call.disposition, Interaction.note,
               cast(null(), String).label("linkedid"))
        .outerjoin(Call, Interaction.call_id == Call.id)
        .where(Interaction.client_id == client_id)
        .order_by(Interaction.created_at.desc(), Interaction.id.desc())
        .limit(limit)
    )


def _with_operator(kept: Any) -> Any:
    """Timeline rows with their operator's name, joined to the kept rows only."""
    return select(kept, Operator.name.label("operator")).outerjoin(Operator, Operator.id == kept.c.author_id)


# The clients a number's card shows (the first MAX_MATCHES owners by id), and the five sections
# selected through them, so that on PostgreSQL the whole card is one pipeline with no ids to wait for.
_CHOSEN = select(_OWNED.c.client_id).distinct().order_by(_OWNED.c.client_id).limit(MAX_MATCHES)
_BY_NUMBER = (*_section_statements(_CHOSEN.scalar_subquery()), _newest_of_chosen(_CHOSEN.subquery()))


def last_interactions(session: Session, client_ids: Iterable[int], limit: int) -> dict[int, list[dict]]:
    """Calls and notes of each client merged, newest first, at most `limit` in all (one query)."""
    ids = list(dict.fromkeys(client_ids))
    if not ids:
        return {}
    params: dict[str, int] = {f"id{i}": client_id for i, client_id in enumerate(ids)}
    params["limit"] = limit
    return _merged(session.execute(_newest_interactions(len(ids)), params), limit)


def _merged(rows: Iterable[Any], limit: int) -> dict[int, list[dict]]:
    """`_newest_interactions` rows as each client's timeline entries, newest first."""
    merged: dict[int, list[tuple[tuple[datetime, bool, int], dict]]] = defaultdict(list)
    for row in rows:
        at = as_utc(row.at)
        merged[row.client_id].append(((at, row.type == "call", row.row_id), {
            "type": row.type, "at": at.isoformat(), "direction": row.direction, "outcome": row.outcome,
            "operator": row.operator, "note": row.note or "", "wait_seconds": row.wait_seconds,
            "talk_seconds": row.talk_seconds, "disposition": row.disposition, "linkedid": row.linkedid,
        }))
    return {
        client_id: [entry for _, entry in sorted(entries, key=lambda e: e[0], reverse=True)[:limit]]
        for client_id, entries in merged.items()
    }
