"""Client services behind the REST API: create, edit, search, timeline, call notes, call lists.

They work inside the caller's session and never commit: the request handler owns the
transaction, so a refused input leaves nothing half-written.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_, select, union, update
from sqlalchemy.orm import Session, joinedload, selectinload

from callcard.refusal import Refusal
from crm_core.call_log import LINKEDID_MAX, OUTCOMES, ensure_call
from crm_core.cards import ClientNotFound, last_interactions
from crm_core.db import insert_or_ignore
from crm_core.models import (
    Call,
    Client,
    ClientPhone,
    ContactPerson,
    Debt,
    Interaction,
    Operator,
    Phone,
    Request,
    as_utc,
    utcnow,
)
from crm_core.phones import normalize_phone, phone_kind, try_normalize
from crm_core.reviews import CallReview
from crm_core.visibility import Viewer, tied, visible_calls, visible_clients

__all__ = [
    "CLIENT_BASE_COLUMNS", "ClientNotFound", "InvalidInput", "NewContact", "add_note", "add_phone", "client_base", "create_client",
    "list_calls", "managed_by", "managed_counts", "merge_clients", "possible_duplicates", "reassign_clients", "remove_phone", "save_call_note", "search_clients", "timeline", "update_client",
]

KINDS = ("person", "company")
NOTE_MAX = 10_000
EDITABLE = {"name": 256, "segment": 32, "email": 256, "city": 128, "notes": NOTE_MAX}  # field: longest
_PHONE_LIKE = re.compile(r"[\d\s()+\-.]+")


class InvalidInput(Refusal):
    """Input the operator has to correct; the message says what is wrong."""


@dataclass(frozen=True)
class NewContact:
    """A contact person to create with a company; `phone` in any form normalize_phone accepts."""

    name: str
    position: str = ""
    email: str = ""
    phone: str = ""


def get_or_create_phone(session: Session, e164: str) -> Phone:
    """The one Phone row of a number; shared by every client and contact that has it."""
    insert_or_ignore(session, Phone, ["e164"], e164=e164, kind=phone_kind(e164))
    return session.execute(select(Phone).where(Phone.e164 == e164)).scalar_one()


def add_phone(session: Session, client: Client, raw: str, region: str = "RU", label: str = "") -> ClientPhone:
    """Link a number to a client (raises PhoneError); a number already linked is returned as is."""
    phone = get_or_create_phone(session, normalize_phone(raw, region))
    link = session.execute(
        select(ClientPhone).where(ClientPhone.client_id == client.id, ClientPhone.phone_id == phone.id)
    ).scalar_one_or_none()
    if link is None:
        link = ClientPhone(client_id=client.id, phone_id=phone.id, label=_text(label, 64, "label"))
        session.add(link)
        session.flush()
    return link


def update_client(session: Session, client_id: int, changes: Mapping[str, object]) -> Client:
    """Change the fields given (EDITABLE, and `manager_id`, None for no manager); the rest stay.

    Raises ClientNotFound, and InvalidInput for a bad value, with nothing changed.
    """
    client = session.get(Client, client_id)
    if client is None:
        raise ClientNotFound(f"no client with id {client_id}")
    values: dict[str, object] = {}
    for key, value in changes.items():
        if key == "manager_id":
            if value is not None and not _active(session, value):
                raise InvalidInput(f"no active operator with id {value} to be the manager")
            values[key] = value
        elif key in EDITABLE:
            values[key] = _text("" if value is None else str(value), EDITABLE[key], key).strip()
            if key == "name" and not values[key]:
                raise InvalidInput("client name is empty", "api.name_empty")
        else:
            raise InvalidInput(f"{key} is not a field of the client that can be changed")
    for key, value in values.items():
        setattr(client, key, value)
    session.flush()
    return client


def remove_phone(session: Session, client_id: int, e164: str) -> bool:
    """Unlink a number from a client; the number stays, as calls logged from it refer to it."""
    link = session.execute(
        select(ClientPhone).join(Phone).where(ClientPhone.client_id == client_id, Phone.e164 == e164)
    ).scalar_one_or_none()
    if link is None:
        return False
    session.delete(link)
    session.flush()
    return True


def reassign_clients(session: Session, from_id: int, to_id: int | None) -> int:
    """Hand every client of one personal manager to another (None: to nobody), as when an employee
    leaves: the clients stay with the company. Returns how many moved."""
    if to_id is not None and not _active(session, to_id):
        raise InvalidInput(f"no active operator with id {to_id} to take the clients")
    moved = session.execute(update(Client).where(Client.manager_id == from_id).values(manager_id=to_id))
    return moved.rowcount or 0


DUPLICATES_SHOWN = 10


def possible_duplicates(session: Session, client_id: int, visible_to: Viewer | None = None) -> list[tuple[Client, str]]:
    """Other clients that may be the same one, with why: ("number", they share a number) before
    ("name", the same name however spelt: case, ё, punctuation and word order aside, on the name
    key's index, as a client page must not scan the base). Imports and hurried desks make such
    twins; merge_clients joins them."""
    client = session.get(Client, client_id)
    if client is None:
        raise ClientNotFound(f"no client with id {client_id}")
    mine = select(ClientPhone.phone_id).where(ClientPhone.client_id == client_id)
    sharing = select(ClientPhone.client_id).where(ClientPhone.phone_id.in_(mine), ClientPhone.client_id != client_id)
    condition = visible_clients(visible_to) if visible_to is not None else None
    visible = [condition] if condition is not None else []
    found: dict[int, tuple[Client, str]] = {}
    for reason, twin in (("number", Client.id.in_(sharing)),
                         ("name", and_(Client.name_key == client.name_key, Client.name_key != "",
                                       Client.id != client_id))):
        for other in session.scalars(select(Client).where(twin, *visible).order_by(Client.id)
                                     .options(selectinload(Client.phone_links).joinedload(ClientPhone.phone))
                                     .limit(DUPLICATES_SHOWN)):
            found.setdefault(other.id, (other, reason))
    return list(found.values())[:DUPLICATES_SHOWN]


def merge_clients(session: Session, keep_id: int, duplicate_id: int) -> Client:
    """Fold a duplicate into the client kept: its numbers, contact persons, calls, notes, requests
    and debts move over, the kept client's empty fields take the duplicate's values, its notes are
    appended, and the duplicate is deleted. A cease-contact request, a legal protection or a number's
    do-not-call status on either stays on the merged client: merging must never let the dialler
    call someone it could not.

    Raises ClientNotFound, and InvalidInput for a client merged into itself; never commits.
    """
    if keep_id == duplicate_id:
        raise InvalidInput("a client cannot be merged into itself", "api.merge_self")
    keep, duplicate = session.get(Client, keep_id), session.get(Client, duplicate_id)
    if keep is None or duplicate is None:
        raise ClientNotFound(f"no client with id {keep_id if keep is None else duplicate_id}")
    kept_links = {link.phone_id: link for link in keep.phone_links}
    for link in list(duplicate.phone_links):
        if link.phone_id in kept_links:  # one link stays: with a label, and the stricter status
            kept = kept_links[link.phone_id]
            kept.label = kept.label or link.label
            kept.status = link.status if kept.status == "valid" else kept.status
            duplicate.phone_links.remove(link)
        else:
            link.client = keep
    for model in (ContactPerson, Call, Interaction, Request, Debt):
        session.execute(update(model).where(model.client_id == duplicate_id).values(client_id=keep_id))
    for name in ("email", "city", "time_zone", "protection"):
        if not getattr(keep, name):
            setattr(keep, name, getattr(duplicate, name))
    if keep.segment == "standard":
        keep.segment = duplicate.segment
    if duplicate.notes and duplicate.notes not in keep.notes:
        keep.notes = f"{keep.notes}\n\n{duplicate.notes}" if keep.notes else duplicate.notes
    keep.manager_id = keep.manager_id or duplicate.manager_id
    keep.debt_open = keep.debt_open or duplicate.debt_open
    keep.contact_refused = keep.contact_refused or duplicate.contact_refused
    keep.created_at = min(as_utc(keep.created_at), as_utc(duplicate.created_at))
    session.flush()
    session.delete(duplicate)
    session.flush()
    return keep


def _active(session: Session, operator_id: object) -> bool:
    """Someone who can be a personal manager: an active operator."""
    return session.scalar(select(Operator.id).where(Operator.id == operator_id, Operator.active.is_(True))) is not None


def managed_counts(session: Session, operator_ids: Sequence[int]) -> dict[int, int]:
    """How many clients each of these operators is personal manager of (on ix_clients_manager_id)."""
    rows = session.execute(select(Client.manager_id, func.count()).where(Client.manager_id.in_(operator_ids))
                           .group_by(Client.manager_id))
    return {manager_id: count for manager_id, count in rows}


def create_client(
    session: Session,
    name: str,
    kind: str,
    phones: Sequence[str],
    region: str = "RU",
    segment: str = "standard",
    email: str = "",
    city: str = "",
    manager_id: int | None = None,
    contacts: Sequence[NewContact] = (),
) -> Client:
    """A new client with its numbers and contact persons; every number is checked before anything is written.

    Raises PhoneError for a number that is not one, InvalidInput for other bad fields.
    """
    name = _text(name, 256, "name").strip()
    if not name:
        raise InvalidInput("client name is empty", "api.name_empty")
    if kind not in KINDS:
        raise InvalidInput(f"client kind must be one of {', '.join(KINDS)}, not {kind!r}")
    numbers = list(dict.fromkeys(normalize_phone(raw, region) for raw in phones))
    contact_numbers = [normalize_phone(c.phone, region) if c.phone.strip() else None for c in contacts]
    for contact in contacts:
        if not _text(contact.name, 256, "contact name").strip():
            raise InvalidInput("contact person name is empty")
    if manager_id is not None and session.get(Operator, manager_id) is None:
        raise InvalidInput(f"no operator with id {manager_id} to be the manager")
    client = Client(
        name=name, kind=kind, segment=_text(segment, 32, "segment"), email=_text(email, 256, "email"),
        city=_text(city, 128, "city"), manager_id=manager_id,
    )
    session.add(client)
    session.flush()
    for e164 in numbers:
        add_phone(session, client, e164, region)
    for contact, e164 in zip(contacts, contact_numbers, strict=True):
        session.add(ContactPerson(
            client_id=client.id, name=contact.name.strip(), position=_text(contact.position, 128, "position"),
            email=_text(contact.email, 256, "contact email"),
            phone_id=get_or_create_phone(session, e164).id if e164 else None,
        ))
    session.flush()
    return client


def search_clients(session: Session, q: str, limit: int = 20, region: str = "RU",
                   visible_to: Viewer | None = None) -> list[Client]:
    """Clients whose name or e-mail contains `q` (any case, Cyrillic too); when `q` looks like a phone
    number, clients whose or whose contacts' numbers contain its digits (`8…` finds `+7…`). With
    `visible_to`, only the clients that viewer may see (crm_core.visibility), in the same query."""
    q = (q or "").strip()[:100]
    if not q:
        return []
    limit = max(1, min(limit, 100))
    digits = re.sub(r"\D", "", q)
    if _PHONE_LIKE.fullmatch(q) and len(digits) >= 3:
        patterns = {digits}
        full = try_normalize(q, region)
        if full:
            patterns.add(full.lstrip("+"))
        elif region == "RU" and digits.startswith("8"):
            patterns.add("7" + digits[1:])
        number_matches = or_(*(Phone.e164.contains(p, autoescape=True) for p in patterns))
        ids = union(
            select(ClientPhone.client_id).join(Phone, ClientPhone.phone_id == Phone.id).where(number_matches),
            select(ContactPerson.client_id).join(Phone, ContactPerson.phone_id == Phone.id).where(number_matches),
        ).subquery()
        condition = Client.id.in_(select(ids.c.client_id))
    else:
        text = q.lower()
        condition = or_(func.lower(Client.name).contains(text, autoescape=True),
                        func.lower(Client.email).contains(text, autoescape=True))
    visible = visible_clients(visible_to) if visible_to is not None else None
    return list(session.scalars(
        select(Client)
        .where(condition, *([visible] if visible is not None else []))
        .options(selectinload(Client.phone_links).joinedload(ClientPhone.phone))
        .order_by(Client.name, Client.id)
        .limit(limit)
    ))


def managed_by(session: Session, operator_id: int, limit: int = 500) -> list[Client]:
    """The clients someone is personal manager of, by name: their portfolio."""
    return list(session.scalars(
        select(Client).where(Client.manager_id == operator_id)
        .options(selectinload(Client.phone_links).joinedload(ClientPhone.phone))
        .order_by(Client.name, Client.id).limit(limit)
    ))


CLIENT_BASE_COLUMNS = ("id", "name", "kind", "segment", "email", "city", "phones", "manager", "debt_open",
                       "created_at")


def client_base(session: Session, departments: frozenset[int] | None, batch: int = 1000) -> Iterator[list[object]]:
    """Every client (None), or the clients tied to `departments`, as export rows in id order.

    Read in batches of `batch` clients (two queries each, keyed by id, no OFFSET), so a base of
    millions streams out in flat memory.
    """
    after = 0
    while True:
        query = (
            select(Client.id, Client.name, Client.kind, Client.segment, Client.email, Client.city,
                   Operator.login, Client.debt_open, Client.created_at)
            .outerjoin(Operator, Operator.id == Client.manager_id)
            .where(Client.id > after).order_by(Client.id).limit(batch)
        )
        if departments is not None:
            query = query.where(tied(departments))
        rows = session.execute(query).all()
        if not rows:
            return
        phones: dict[int, list[str]] = defaultdict(list)
        for client_id, e164 in session.execute(
            select(ClientPhone.client_id, Phone.e164).join(Phone, Phone.id == ClientPhone.phone_id)
            .where(ClientPhone.client_id.in_([r[0] for r in rows])).order_by(ClientPhone.id)
        ):
            phones[client_id].append(e164)
        for cid, name, kind, segment, email, city, manager, debt_open, created_at in rows:
            yield [cid, name, kind, segment, email, city, " ".join(phones[cid]), manager or "", debt_open,
                   as_utc(created_at).isoformat()]
        after = rows[-1][0]


def timeline(session: Session, client_id: int, limit: int = 50) -> list[dict]:
    """A client's calls and notes merged, newest first (same entries as the card's last_interactions)."""
    if session.get(Client, client_id) is None:
        raise ClientNotFound(f"no client with id {client_id}")
    return last_interactions(session, [client_id], max(1, min(limit, 500))).get(client_id, [])


def add_note(session: Session, client_id: int, author_id: int, note: str) -> Interaction:
    """A note in the client's timeline outside any call (a letter, a visit, a call on a mobile)."""
    note = _text(note, NOTE_MAX, "note").strip()
    if not note:
        raise InvalidInput("the note is empty", "api.note_empty")
    if session.get(Client, client_id) is None:
        raise ClientNotFound(f"no client with id {client_id}")
    interaction = Interaction(client_id=client_id, author_id=author_id, note=note)
    session.add(interaction)
    session.flush()
    return interaction


def save_call_note(
    session: Session,
    linkedid: str,
    author_id: int | None,
    note: str,
    disposition: str,
    client_id: int | None = None,
) -> Interaction:
    """The operator's wrap-up of a call: a note in the timeline, the disposition on the call.

    `client_id` picks the client among several matches (or one created during the call); a
    call the logger has not stored yet gets its row now and the events fill it in later.
    """
    linkedid = (linkedid or "").strip()
    if not linkedid or len(linkedid) > LINKEDID_MAX:
        raise InvalidInput(f"not a call id: {linkedid[:80]!r}")
    disposition = _text(disposition, 32, "disposition").strip()
    note = _text(note, NOTE_MAX, "note")
    if author_id is not None and session.get(Operator, author_id) is None:
        raise InvalidInput(f"no operator with id {author_id}")
    if client_id is not None and session.get(Client, client_id) is None:
        raise ClientNotFound(f"no client with id {client_id}")
    call = ensure_call(session, linkedid, utcnow())
    if disposition:
        call.disposition = disposition
    if client_id is not None:
        call.client_id = client_id
    interaction = Interaction(client_id=call.client_id, call_id=call.id, author_id=author_id, note=note)
    session.add(interaction)
    session.flush()
    return interaction


def list_calls(
    session: Session,
    *,
    outcome: str | None = None,
    operator_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    number: str | None = None,
    queue: str | None = None,
    reviewed: bool | None = None,
    region: str = "RU",
    limit: int = 100,
    offset: int = 0,
    before: tuple[datetime, int] | None = None,
    visible_to: Viewer | None = None,
) -> list[Call]:
    """The call log, newest first, with operator, client and department loaded; with `visible_to`,
    only the calls that viewer may see. `number` is the caller's in any form a phone number takes
    (matched on the normalised number), or as Asterisk gave it (`anonymous`); `reviewed`: only the
    calls with (True) or without (False) a quality review."""
    query = select(Call)
    visible = visible_calls(visible_to) if visible_to is not None else None
    if visible is not None:
        query = query.where(visible)
    if outcome is not None:
        if outcome not in OUTCOMES:
            raise InvalidInput(f"unknown outcome {outcome!r}")
        query = query.where(Call.outcome == outcome)
    if operator_id is not None:
        query = query.where(Call.operator_id == operator_id)
    if since is not None:
        query = query.where(Call.started_at >= since)
    if until is not None:
        query = query.where(Call.started_at < until)
    if number is not None:
        e164 = try_normalize(number, region)
        query = query.where(Call.caller_e164 == e164 if e164 else Call.caller_raw == number.strip())
    if queue is not None:
        query = query.where(Call.queue == queue)
    if reviewed is not None:
        review = select(CallReview.call_id).where(CallReview.call_id == Call.id).exists()
        query = query.where(review if reviewed else ~review)
    if before is not None:  # the next page after the call (started_at, id), for exports of any length
        query = query.where(or_(Call.started_at < before[0], and_(Call.started_at == before[0], Call.id < before[1])))
    return list(session.scalars(
        query.options(joinedload(Call.operator), joinedload(Call.client), joinedload(Call.department))
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(max(1, min(limit, 1000)))
        .offset(max(0, offset))
    ))


def _text(value: str, limit: int, what: str) -> str:
    value = value or ""
    if len(value) > limit:
        raise InvalidInput(f"{what} is too long ({len(value)} characters, at most {limit})", "api.too_long",
                           limit=limit)
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character")
    return value
