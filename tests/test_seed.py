"""Demo data: realistic, valid numbers, the callers of the recordings, and safe to run twice."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from crm_core.cards import caller_card
from crm_core.models import (
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
    utcnow,
)
from crm_core.passwords import verify_password
from crm_core.phones import normalize_phone, phone_kind
from crm_core.seed import demo_callers, seed_demo
from routing.inbox.models import RequestEvent

COUNTED = (Department, Operator, Client, ContactPerson, Phone, ClientPhone, Request, Interaction, Call, Debt)


def counts(s: Session) -> dict[str, int]:
    return {m.__name__: s.scalar(select(func.count()).select_from(m)) for m in COUNTED}


def test_seed_twice_adds_nothing_the_second_time(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        first = seed_demo(s)
    with sessions() as s:
        before = counts(s)
    with sessions.begin() as s:
        second = seed_demo(s)
    with sessions() as s:
        assert counts(s) == before
    assert first.clients == before["Client"] and first.operators == 9
    assert (second.clients, second.operators, second.departments, second.calls, second.debts) == (0, 0, 0, 0, 0)
    assert str(second) == "already seeded, nothing added"
    assert second.passwords == first.passwords and first.passwords["op1"] == "op1-demo"
    _check_staff(sessions, first.passwords)


def _check_staff(sessions: sessionmaker[Session], passwords: dict[str, str]) -> None:
    with sessions() as s:
        queues = dict(s.execute(select(Department.code, Department.queue)).all())
        assert queues == {"sales": "sales", "service": "support", "collections": "collections"}
        staff = {o.login: o for o in s.scalars(select(Operator))}
        assert set(staff) == {"op1", "op2", "op3", "op4", "super1", "admin", "head_sales", "head_service",
                              "head_collections"}
        heads = {code: login for code, login in s.execute(
            select(Department.code, Operator.login).join(Operator, Department.head_id == Operator.id))}
        assert heads == {"sales": "head_sales", "service": "head_service", "collections": "head_collections"}
        assert all(staff[login].role == "department_head" for login in heads.values())
        assert {login: staff[login].interface for login in ("op1", "op2", "op3", "op4")} == {
            "op1": "Local/101@agents", "op2": "Local/102@agents", "op3": "Local/103@agents",
            "op4": "Local/104@agents"}
        assert {login: [d.code for d in staff[login].departments] for login in ("op1", "op2", "op3", "op4")} == {
            "op1": ["sales"], "op2": ["sales"], "op3": ["service"], "op4": ["collections"]}
        assert (staff["super1"].role, staff["admin"].role) == ("supervisor", "admin")
        for login, password in passwords.items():
            assert verify_password(staff[login].password_hash, password)


def test_client_base_is_realistic_with_the_recorded_callers(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        seed_demo(s)
    _check_client_base(sessions)
    _check_recorded_callers(sessions)
    _check_demo_callers(sessions)


def _check_requests(s: Session) -> None:
    """Filed as the desk files them: a deadline, a history; some open ones overdue, not most."""
    now = utcnow()
    requests = s.scalars(select(Request)).all()
    assert all(r.due_at is not None and r.department_id is not None for r in requests)
    with_history = set(s.scalars(select(RequestEvent.request_id).where(RequestEvent.kind == "created")))
    assert with_history == {r.id for r in requests}
    unfinished = [r for r in requests if r.status != "closed"]
    overdue = [r for r in unfinished if as_utc(r.due_at) < now]
    assert 0 < len(overdue) < len(unfinished) / 2
    assert all(r.closed_at is not None for r in requests if r.status == "closed")
    assert all(r.assignee_id is not None for r in requests if r.status == "in_progress")
    assert {r.kind for r in requests} >= {"question", "complaint", "service", "order"}


def _check_client_base(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        clients = s.scalars(select(Client)).all()
        persons = [c for c in clients if c.kind == "person"]
        companies = [c for c in clients if c.kind == "company"]
        assert len(persons) >= 250 and len(companies) == 50
        assert all(len(p.name.split()) == 3 for p in persons if p.name != "Иван Петров")
        assert all(c.name.startswith(("ООО «", "АО «")) and c.name.endswith("»") for c in companies)
        for phone in s.scalars(select(Phone)):
            assert normalize_phone(phone.e164) == phone.e164
            assert phone.e164.startswith(("+79", "+7351")) and phone.kind == phone_kind(phone.e164)
        per_company = s.execute(select(ContactPerson.client_id, func.count()).group_by(ContactPerson.client_id))
        assert all(n >= 2 for _, n in per_company)
        assert {c.segment for c in clients} == {"standard", "vip"}
        assert sum(c.manager_id is not None for c in clients) >= 10
        assert s.scalar(select(func.count()).select_from(Request).where(Request.status == "open")) >= 10
        _check_requests(s)
        shared = s.execute(select(ClientPhone.phone_id).group_by(ClientPhone.phone_id).having(func.count() > 1))
        assert len(shared.all()) >= 3
        debts = s.scalars(select(Debt)).all()
        assert len(debts) == 40 and len({d.client_id for d in debts}) == 40
        assert all(d.client.kind == "person" and d.client.phone_links and d.client.debt_open for d in debts)
        assert s.scalar(select(func.count()).select_from(Client).where(Client.debt_open)) == 40
        assert {d.status for d in debts} == {"active", "promised"}
        assert all(d.total_due >= d.principal > 0 and d.days_past_due >= 5 for d in debts)
        assert all(d.promised_amount and d.promised_date for d in debts if d.status == "promised")


def _check_recorded_callers(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        (ivan,) = caller_card(s, "+73511234567")["matches"]
        assert ivan["name"] == "Иван Петров" and ivan["last_interactions"]
        assert caller_card(s, "83517654321")["matches"] == []


def _check_demo_callers(sessions: sessionmaker[Session]) -> None:
    """Known persons, a shared number, a company contact and unknown numbers, as Asterisk presents them."""
    with sessions() as s:
        callers = demo_callers(s)
        assert ("+73511234567", "Ivan Petrov") in callers and ("83517654321", "") in callers
        cards = [caller_card(s, number)["matches"] for number, _ in callers]
    assert sum(len(m) == 1 for m in cards) >= 4
    assert any(len(m) > 1 for m in cards)
    assert any(len(m) == 1 and m[0]["debts"] for m in cards), "a debtor calls in too"
    assert any(len(m) == 1 and m[0]["contact"] for m in cards)
    assert sum(not m for m in cards) >= 3
    assert all(isinstance(n, str) and isinstance(name, str) for n, name in callers)
