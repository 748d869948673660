"""Caller cards: unknown, known, shared and contact-person numbers, in a handful of queries."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from crm_core.cards import (
    _OPEN_DEBTS,
    _PHONES,
    MAX_MATCHES,
    ClientNotFound,
    _newest_interactions,
    caller_card,
    client_card,
)
from crm_core.clients import NewContact, create_client, save_call_note
from crm_core.db import make_reader, read
from crm_core.models import Call, Debt, Department, Interaction, Operator, Request, utcnow
from crm_core.prepared import prepared

HOSTILE = "<img src=x onerror=alert(1)> Robert'); DROP TABLE clients;-- \"Иван\" & Co"


@pytest.fixture
def crm(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as s:
        service = Department(code="service", name="Сервис", queue="support")
        op1 = Operator(login="op1", name="Анна Смирнова", password_hash="x", interface="Local/101@agents")
        s.add_all([service, op1])
        s.flush()
        ivan = create_client(s, "Иван Петров", "person", ["+73511234567", "+79123456789"], segment="vip",
                             city="Челябинск", manager_id=op1.id)
        create_client(s, "Сидоров Пётр", "person", ["+79120000001"])
        create_client(s, "Сидорова Анна", "person", ["+79120000001"])
        firm = create_client(s, "ООО «Ромашка»", "company", ["+73512000000"], contacts=[
            NewContact("Ольга Белова", "главный бухгалтер", "olga@romashka.ru", "+79120000002"),
            NewContact("Пётр Ильин", "директор", phone="+73512000000"),  # also the office line
        ])
        hostile = create_client(s, HOSTILE, "person", ["+79120000003"], email="<b>@x", city="'; --")
        now = utcnow()
        s.add_all([
            Request(client_id=ivan.id, department_id=service.id, subject="Замена роутера"),
            Request(client_id=ivan.id, department_id=service.id, subject="Старая", status="closed"),
        ])
        for n in range(12):
            s.add(Call(linkedid=f"old-{n}", client_id=ivan.id, operator_id=op1.id, caller_e164="+73511234567",
                       started_at=now - timedelta(days=n + 1), status="ended", outcome="answered",
                       wait_seconds=n, talk_seconds=60, disposition="consulted"))
        s.add(Interaction(client_id=ivan.id, author_id=op1.id, note="Просил перезвонить",
                          created_at=now - timedelta(hours=1)))
        s.flush()
        return {"ivan": ivan.id, "firm": firm.id, "hostile": hostile.id, "op1": op1.id}


def test_unknown_caller_has_no_matches(sessions, crm) -> None:
    with sessions() as s:
        card = caller_card(s, "83517654321")
    assert card == {"caller": {"raw": "83517654321", "e164": "+73517654321", "display": "+7 351 765-43-21",
                               "valid": True}, "matches": []}


@pytest.mark.parametrize("raw,display", [("anonymous", ""), ("", ""), (" Restricted ", ""),
                                         ("<script>alert(1)</script>", "<script>alert(1)</script>"),
                                         ("9" * 500, "9" * 500)])
def test_invalid_caller_is_shown_raw_and_not_matched(sessions, crm, raw: str, display: str) -> None:
    """Shown as it came, except a withheld number's placeholder: "" for the page to say it in words."""
    with sessions() as s:
        card = caller_card(s, raw)
    assert card["caller"] == {"raw": raw, "e164": None, "display": display, "valid": False}
    assert card["matches"] == []


def test_known_caller_card_has_everything_the_desk_shows(sessions, crm) -> None:
    with sessions() as s:
        card = caller_card(s, "8 351 123-45-67")
    assert card["caller"]["e164"] == "+73511234567"
    (ivan,) = card["matches"]
    assert ivan["id"] == crm["ivan"]
    assert {k: ivan[k] for k in ("kind", "name", "segment", "city", "contact", "contacts")} == {
        "kind": "person", "name": "Иван Петров", "segment": "vip", "city": "Челябинск",
        "contact": None, "contacts": []}
    assert ivan["phones"] == [
        {"e164": "+73511234567", "display": "+7 351 123-45-67", "kind": "landline", "label": ""},
        {"e164": "+79123456789", "display": "+7 912 345-67-89", "kind": "mobile", "label": ""},
    ]
    assert ivan["manager"] == {"id": crm["op1"], "name": "Анна Смирнова", "login": "op1"}
    assert [(r["subject"], r["department"], r["status"]) for r in ivan["open_requests"]] == [
        ("Замена роутера", "Сервис", "open")]
    recent = ivan["last_interactions"]
    assert len(recent) == 10
    assert recent[0] == {"type": "note", "at": recent[0]["at"], "direction": None, "outcome": None,
                         "operator": "Анна Смирнова", "note": "Просил перезвонить", "wait_seconds": None,
                         "talk_seconds": None, "disposition": None, "linkedid": None}
    assert [e["wait_seconds"] for e in recent[1:]] == list(range(9))  # calls, newest first
    assert recent[1]["type"] == "call" and recent[1]["operator"] == "Анна Смирнова"
    assert [e["linkedid"] for e in recent[1:]] == [f"old-{n}" for n in range(9)]  # for its recording
    assert recent[1]["at"].endswith("+00:00")
    assert [e["at"] for e in recent] == sorted((e["at"] for e in recent), reverse=True)


def test_shared_number_offers_every_owner(sessions, crm) -> None:
    with sessions() as s:
        card = caller_card(s, "+79120000001")
    assert [m["name"] for m in card["matches"]] == ["Сидоров Пётр", "Сидорова Анна"]
    assert all(m["contact"] is None for m in card["matches"])


def test_each_owner_of_a_shared_number_gets_their_own_newest_calls(sessions, crm) -> None:
    """The newest ten per client, not ten for the number: a busy owner does not crowd out a quiet one."""
    with sessions.begin() as s:
        busy, quiet = (m["id"] for m in caller_card(s, "+79120000001")["matches"])
        now = utcnow()
        for n in range(25):
            s.add(Call(linkedid=f"busy-{n}", client_id=busy, caller_e164="+79120000001", status="ended",
                       started_at=now - timedelta(minutes=n), outcome="answered", wait_seconds=n))
        for n in range(3):
            s.add(Call(linkedid=f"quiet-{n}", client_id=quiet, caller_e164="+79120000001", status="ended",
                       started_at=now - timedelta(days=30 + n), outcome="abandoned", wait_seconds=100 + n))
    with sessions() as s:
        first, second = caller_card(s, "+79120000001")["matches"]
    assert [e["wait_seconds"] for e in first["last_interactions"]] == list(range(10))
    assert [e["wait_seconds"] for e in second["last_interactions"]] == [100, 101, 102]


def test_contact_person_number_matches_the_company_with_the_contact(sessions, crm) -> None:
    with sessions() as s:
        card = caller_card(s, "89120000002")
    (firm,) = card["matches"]
    assert firm["id"] == crm["firm"] and firm["kind"] == "company"
    assert firm["contact"] == {"id": firm["contacts"][0]["id"], "name": "Ольга Белова",
                               "position": "главный бухгалтер"}
    assert firm["contacts"][0]["phones"] == [
        {"e164": "+79120000002", "display": "+7 912 000-00-02", "kind": "mobile", "label": ""}]
    assert firm["contacts"][0]["email"] == "olga@romashka.ru"


def test_office_line_that_is_also_a_contact_gives_one_match_with_that_contact(sessions, crm) -> None:
    with sessions() as s:
        card = caller_card(s, "+73512000000")
    (firm,) = card["matches"]
    assert firm["contact"]["name"] == "Пётр Ильин"


def test_hostile_client_text_comes_back_verbatim(sessions, crm) -> None:
    with sessions() as s:
        (card,) = caller_card(s, "+79120000003")["matches"]
    assert (card["name"], card["email"], card["city"]) == (HOSTILE, "<b>@x", "'; --")


def _traced_card(connection: Connection, number: str, trace: Path) -> tuple[int, int]:
    """(statements, round trips) of one card, as the database driver sent them."""
    raw = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        sent: list[str] = []
        raw.set_trace_callback(sent.append)
        try:
            caller_card(connection, number)
        finally:
            raw.set_trace_callback(None)
        return len(sent), len(sent)
    with trace.open("w") as out:  # libpq's protocol trace: each Sync ends a round trip
        raw.pgconn.trace(out.fileno())
        try:
            caller_card(connection, number)
        finally:
            raw.pgconn.untrace()
    sent_messages = re.findall(r"^\S+ \S+\tF\t\d+\t(\w+)", trace.read_text(), re.MULTILINE)
    return sent_messages.count("Execute"), sent_messages.count("Sync")


def test_card_takes_a_handful_of_queries_however_many_matches(sessions, crm, tmp_path) -> None:
    reader = make_reader(sessions)  # as the desk popper reads: no BEGIN/ROLLBACK around the card
    try:
        with reader.connect() as connection:
            shared = _traced_card(connection, "+79120000001", tmp_path / "shared.trace")
            known = _traced_card(connection, "+73511234567", tmp_path / "known.trace")
    finally:
        reader.dispose()
    # the owners with their clients, then one per section: phones, contacts, requests, debts, calls
    # and notes together; on PostgreSQL all six go in one pipeline (one round trip)
    expected = (6, 1) if reader.dialect.name == "postgresql" else (6, 6)
    assert shared == known == expected


def test_card_statements_bind_as_sqlalchemy_expands_them(sessions) -> None:
    """Each statement's SQL is expanded once per length of its lists and reused: the same SQL and
    driver parameters as SQLAlchemy's own expansion, whichever lengths come and in what order;
    constants the statement fixes (a literal list, a literal) included."""
    dialect = sessions.kw["bind"].dialect
    cases = [(_PHONES, {"ids": [3]}), (_PHONES, {"ids": [4, 5, 6]}), (_PHONES, {"ids": [7]}),
             (_OPEN_DEBTS, {"ids": [1, 2]}), (_newest_interactions(2), {"id0": 8, "id1": 9, "limit": 10}),
             (_newest_interactions(2), {"id0": 1, "id1": 2, "limit": 3})]
    for statement, values in cases:
        expanded = prepared(statement, dialect).compiled.construct_expanded_state(values)
        expected = list(expanded.positional_parameters) if expanded.positiontup else expanded.parameters
        assert prepared(statement, dialect).bind(values) == (expanded.statement, expected)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_card_reader_keeps_sqlite_statements_prepared(sessions, crm) -> None:
    """No isolation level is set per checkout: `PRAGMA read_uncommitted` (how SQLAlchemy resets it
    on SQLite) expires every statement the connection prepared, and each card compiled anew."""
    reader = make_reader(sessions)
    ran: list[str] = []
    try:
        with reader.connect() as connection:
            connection.connection.driver_connection.set_trace_callback(ran.append)
        for _ in range(2):
            card = read(reader, lambda connection: caller_card(connection, "+73511234567"))
            assert [m["id"] for m in card["matches"]] == [crm["ivan"]]
    finally:
        reader.dispose()
    assert sum(statement.startswith("SELECT") for statement in ran) == 12
    assert not [statement for statement in ran if "PRAGMA" in statement]


def test_client_card_opens_a_client_page(sessions, crm) -> None:
    with sessions() as s:
        save_call_note(s, "old-0", crm["op1"], "Перезвонить завтра", "callback")
        card = client_card(s, crm["ivan"])
        assert card["name"] == "Иван Петров" and card["contact"] is None
        assert card["last_interactions"][0]["note"] == "Перезвонить завтра"
        assert card["last_interactions"][0]["disposition"] == "callback"
        with pytest.raises(ClientNotFound):
            client_card(s, 999_999)


def test_card_lists_open_debts_with_amounts_as_text_and_promise(sessions, crm) -> None:
    with sessions.begin() as s:
        s.add_all([
            Debt(client_id=crm["ivan"], creditor="Банк «Восток»", contract="K-100", principal=Decimal("9000"),
                 total_due=Decimal("12500.5"), currency="RUB", days_past_due=45, status="promised",
                 promised_amount=Decimal("5000"), promised_date=date(2026, 12, 1)),
            Debt(client_id=crm["ivan"], creditor="МФО", contract="K-101", principal=Decimal("100"),
                 total_due=Decimal("150"), days_past_due=200),
            Debt(client_id=crm["ivan"], creditor="МФО", contract="K-102", principal=Decimal("1"),
                 total_due=Decimal("1"), status="paid"),
            Debt(client_id=crm["firm"], creditor="Лизинг", contract="F-1", principal=Decimal("1"),
                 total_due=Decimal("2"), status="disputed"),
        ])
    with sessions() as s:
        ivan = client_card(s, crm["ivan"])
        shared = caller_card(s, "+79120000001")["matches"]
        firm = client_card(s, crm["firm"])
    assert [(d["contract"], d["status"]) for d in ivan["debts"]] == [("K-101", "active"), ("K-100", "promised")], \
        "open debts only, most overdue first"
    promised = ivan["debts"][1]
    assert {k: v for k, v in promised.items() if k != "id"} == {
        "contract": "K-100", "creditor": "Банк «Восток»", "principal": "9000.00", "total_due": "12500.50",
        "currency": "RUB", "days_past_due": 45, "status": "promised", "promised_amount": "5000.00",
        "promised_date": "2026-12-01"}
    assert ivan["debts"][0]["promised_amount"] is None and ivan["debts"][0]["promised_date"] is None
    assert [d["contract"] for d in firm["debts"]] == ["F-1"], "a disputed debt is still open"
    assert all(m["debts"] == [] for m in shared)


def test_a_switchboard_number_shows_the_first_clients_each_with_their_own_sections(sessions, crm) -> None:
    with sessions.begin() as s:
        ids = [create_client(s, f"Абонент {n}", "person", ["+79125550000", f"+7912555{n + 1:04d}"]).id
               for n in range(MAX_MATCHES + 2)]
        for n, client_id in enumerate(ids):
            s.add(Call(linkedid=f"sb-{n}", client_id=client_id, caller_e164="+79125550000", status="ended",
                       started_at=utcnow() - timedelta(minutes=n), outcome="answered", wait_seconds=n))
    with sessions() as s:
        matches = caller_card(s, "89125550000")["matches"]
    assert [m["id"] for m in matches] == ids[:MAX_MATCHES]
    for n, card in enumerate(matches):
        assert [p["e164"] for p in card["phones"]] == ["+79125550000", f"+7912555{n + 1:04d}"]
        assert [e["wait_seconds"] for e in card["last_interactions"]] == [n]
