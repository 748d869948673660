"""Campaign dispositions: every result's effects on the debt, the list, the phones, the ledger and the
tasks, and bad input refused with nothing changed, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_core.cards import client_card
from crm_core.models import (
    Call,
    Client,
    ClientPhone,
    Debt,
    DebtContact,
    Department,
    Interaction,
    Operator,
    Phone,
    Request,
    as_utc,
)
from routing.campaigns.dispositions import DISPOSITIONS, DispositionError, record_disposition
from routing.campaigns.models import Campaign, CampaignDebt, DialAttempt

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 13:00 in Moscow
CHANNEL = "dial-0123456789abcdef"
DIALLED = "+79161234567"
OTHER_PHONE = "+79167654321"


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> dict[str, int]:
    """A debtor in Moscow with two phones and two debts, on two campaigns; one campaign call on the
    first debt, put through to Anna, a conversation in the ledger, ended and rescheduled by the
    dialler (as routing.campaigns.service does) before Anna records its result."""
    with sessions.begin() as s:
        collections = Department(code="collections", name="Взыскание", queue="collections")
        anna = Operator(login="anna", name="Анна", password_hash="x", interface="Local/101@agents")
        client = Client(name="Должник Иван", time_zone="Europe/Moscow", debt_open=True)
        client.phone_links.append(ClientPhone(phone=Phone(e164=DIALLED, kind="mobile")))
        client.phone_links.append(ClientPhone(phone=Phone(e164=OTHER_PHONE, kind="mobile")))
        s.add_all([collections, anna, client])
        s.flush()
        debt = Debt(client_id=client.id, creditor="Банк", contract="K-1", principal=Decimal("9000.00"),
                    total_due=Decimal("12500.50"), days_past_due=45)
        second = Debt(client_id=client.id, creditor="МФО", contract="K-2", principal=Decimal("1000.00"),
                      total_due=Decimal("1500.00"), days_past_due=10)
        campaign = Campaign(name="Просрочка 30+", status="running",
                            retry={"no_answer": {"delay_minutes": 90, "max_attempts": 3},
                                   "busy": {"delay_minutes": 20, "max_attempts": 5}},
                            schedule={"time_zone": "Europe/Moscow"})
        other = Campaign(name="Все долги", status="running")
        s.add_all([debt, second, campaign, other])
        s.flush()
        s.add_all([
            CampaignDebt(campaign_id=campaign.id, debt_id=debt.id, state="pending", attempts=1,
                         next_at=NOW + timedelta(days=1), last_outcome="answered"),
            CampaignDebt(campaign_id=other.id, debt_id=debt.id, state="pending", attempts=0),
            DialAttempt(channel_id=CHANNEL, campaign_id=campaign.id, debt_id=debt.id, phone_e164=DIALLED,
                        placed_at=NOW - timedelta(minutes=5), answered_at=NOW - timedelta(minutes=4),
                        connected_at=NOW - timedelta(minutes=4), ended_at=NOW - timedelta(minutes=1),
                        operator_id=anna.id, outcome="answered"),
            DebtContact(debt_id=debt.id, at=NOW - timedelta(minutes=5), kind="conversation", phone_e164=DIALLED,
                        linkedid=CHANNEL),
        ])
        return {"collections": collections.id, "anna": anna.id, "client": client.id, "debt": debt.id,
                "second": second.id, "campaign": campaign.id, "other": other.id}


def record(sessions: sessionmaker[Session], code: str, operator_id: int | None, **fields: object) -> None:
    with sessions.begin() as s:
        record_disposition(s, CHANNEL, code, operator_id, now=NOW, **fields)  # type: ignore[arg-type]


def rows(sessions: sessionmaker[Session], world: dict[str, int]) -> dict[str, object]:
    """Everything a disposition may change, as plain values."""
    with sessions() as s:
        debt = s.get(Debt, world["debt"])
        client = s.get(Client, world["client"])
        here = s.get(CampaignDebt, (world["campaign"], world["debt"]))
        there = s.get(CampaignDebt, (world["other"], world["debt"]))
        attempt = s.scalar(select(DialAttempt).where(DialAttempt.channel_id == CHANNEL))
        call = s.scalar(select(Call).where(Call.linkedid == CHANNEL))
        ledger = s.scalar(select(DebtContact.kind).where(DebtContact.linkedid == CHANNEL))
        phones = dict(s.execute(select(Phone.e164, ClientPhone.status).join(ClientPhone.phone)).all())
        requests = [(r.kind, r.department_id, as_utc(r.due_at), r.assignee_id, r.subject, r.client_id)
                    for r in s.scalars(select(Request).order_by(Request.id))]
        notes = [(n.note, n.author_id, n.call_id is not None) for n in s.scalars(select(Interaction))]
        assert debt is not None and client is not None and here is not None and there is not None
        assert attempt is not None
        return {
            "debt": (debt.status, debt.promised_amount, debt.promised_date),
            "client": (client.debt_open, client.contact_refused),
            "here": (here.state, as_utc(here.next_at) if here.next_at else None, here.last_outcome),
            "there": (there.state, as_utc(there.next_at) if there.next_at else None),
            "attempt": attempt.disposition,
            "call": (call.disposition, call.client_id, call.direction) if call else None,
            "ledger": ledger, "phones": phones, "requests": requests, "notes": notes,
        }


def test_promise_to_pay_holds_the_debt_until_the_day_after_and_files_a_reminder(sessions, world) -> None:
    record(sessions, "promise_to_pay", world["anna"], amount="5 000,5", promised_date=date(2026, 11, 30),
           note="Заплатит с зарплаты")
    after = rows(sessions, world)
    assert after["debt"] == ("promised", Decimal("5000.50"), date(2026, 11, 30))
    day_after = datetime(2026, 11, 30, 21, 0, tzinfo=UTC)  # 1 December, 00:00 in Moscow
    assert after["here"] == ("pending", day_after, "answered")
    assert after["there"] == ("pending", day_after), "a promise holds the debt in every campaign"
    (reminder,) = after["requests"]
    kind, department, due, _, subject, client_id = reminder
    assert (kind, department, client_id) == ("promise", world["collections"], world["client"])
    assert due == datetime(2026, 12, 1, 21, 0, tzinfo=UTC), "due by the end of the day after the date"
    assert "K-1" in subject and "5000.50" in subject
    assert after["attempt"] == "promise_to_pay"
    assert after["call"] == ("promise_to_pay", world["client"], "outbound")
    ((note, author, on_call),) = after["notes"]
    assert "5000.50 RUB" in note and "2026-11-30" in note and "Заплатит с зарплаты" in note
    assert (author, on_call) == (world["anna"], True)
    assert after["client"] == (True, False), "a promised debt is still open"
    assert after["ledger"] == "conversation"


def test_promise_shows_in_the_clients_timeline_with_its_disposition(sessions, world) -> None:
    record(sessions, "promise_to_pay", world["anna"], amount="100", promised_date=date(2026, 11, 23))
    with sessions() as s:
        card = client_card(s, world["client"])
    assert card["last_interactions"][0]["type"] == "note"
    assert card["last_interactions"][0]["disposition"] == "promise_to_pay"
    assert {d["id"]: d["status"] for d in card["debts"]}[world["debt"]] == "promised"


def test_paid_closes_the_debt_everywhere_and_the_client_stays_a_debtor_while_another_is_open(sessions,
                                                                                           world) -> None:
    record(sessions, "paid", world["anna"])
    after = rows(sessions, world)
    assert after["debt"][0] == "paid"
    assert after["here"][0] == "done" and after["there"] == ("done", None)
    assert after["client"] == (True, False), "K-2 is still open"
    with sessions.begin() as s:
        s.get(Debt, world["second"]).status = "closed"  # type: ignore[union-attr]
    with sessions.begin() as s:  # a later disposition on another call re-checks the flag
        s.add(DialAttempt(channel_id="dial-2", campaign_id=world["campaign"], debt_id=world["second"],
                          phone_e164=DIALLED, placed_at=NOW, operator_id=world["anna"]))
    with sessions.begin() as s:
        record_disposition(s, "dial-2", "paid", world["anna"], now=NOW)
    with sessions() as s:
        assert s.get(Client, world["client"]).debt_open is False  # type: ignore[union-attr]


def test_dispute_marks_the_debt_disputed_and_drops_it_from_the_lists(sessions, world) -> None:
    record(sessions, "dispute", world["anna"], note="Не брал кредит")
    after = rows(sessions, world)
    assert after["debt"][0] == "disputed"
    assert after["here"][0] == "excluded" and after["there"][0] == "excluded"
    assert after["client"] == (True, False), "a disputed debt is still open"


def test_wrong_number_flags_only_the_dialled_phone_and_the_call_was_no_conversation(sessions, world) -> None:
    record(sessions, "wrong_number", world["anna"], note="Номер принадлежит другому человеку")
    after = rows(sessions, world)
    assert after["phones"] == {DIALLED: "wrong_number", OTHER_PHONE: "valid"}
    assert after["ledger"] == "attempt"
    assert after["here"] == ("pending", None, "answered"), "the other number may still be tried"
    assert after["debt"][0] == "active"


def test_refused_stops_all_interaction_with_the_debtor(sessions, world) -> None:
    record(sessions, "refused", world["anna"])
    after = rows(sessions, world)
    assert after["client"] == (True, True)
    assert after["here"][0] == "excluded"


def test_callback_schedules_the_debt_and_a_task_for_that_time(sessions, world) -> None:
    at = datetime(2026, 11, 24, 15, 30, tzinfo=UTC)
    record(sessions, "callback", world["anna"], callback_at=at)
    after = rows(sessions, world)
    assert after["here"] == ("pending", at, "answered")
    ((kind, department, due, assignee, _, client_id),) = after["requests"]
    assert (kind, department, due, assignee, client_id) == ("callback", world["collections"], at, world["anna"],
                                                            world["client"])


@pytest.mark.parametrize(("code", "delay"), [("no_answer", 90), ("busy", 20), ("machine", 240)])
def test_no_answer_busy_and_machine_follow_the_campaigns_retry_rules(sessions, world, code, delay) -> None:
    record(sessions, code, world["anna"])
    after = rows(sessions, world)
    assert after["here"] == ("pending", NOW + timedelta(minutes=delay), code)
    assert after["ledger"] == "attempt", "nobody who owes the debt was talked to"


def test_the_last_allowed_attempt_ends_the_debt_for_the_campaign(sessions, world) -> None:
    with sessions.begin() as s:
        s.get(CampaignDebt, (world["campaign"], world["debt"])).attempts = 3  # type: ignore[union-attr]
    record(sessions, "no_answer", world["anna"])  # the third of at most three
    assert rows(sessions, world)["here"] == ("done", None, "no_answer")


def test_during_the_call_the_debt_stays_dialling_and_the_call_counts_as_an_attempt(sessions, world) -> None:
    with sessions.begin() as s:
        row = s.get(CampaignDebt, (world["campaign"], world["debt"]))
        row.state, row.attempts, row.next_at = "dialling", 2, None  # type: ignore[union-attr]
        s.scalar(select(DialAttempt).where(DialAttempt.channel_id == CHANNEL)).ended_at = None  # type: ignore[union-attr]
    record(sessions, "busy", world["anna"])
    assert rows(sessions, world)["here"] == ("dialling", NOW + timedelta(minutes=20), "busy"), \
        "the dialler makes it pending when the call ends; never dialled twice at once"
    with sessions.begin() as s:
        s.get(CampaignDebt, (world["campaign"], world["debt"])).attempts = 4  # type: ignore[union-attr]
    with sessions.begin() as s:
        s.add(DialAttempt(channel_id="dial-live", campaign_id=world["campaign"], debt_id=world["debt"],
                          phone_e164=DIALLED, placed_at=NOW, operator_id=world["anna"]))
    with sessions.begin() as s:
        record_disposition(s, "dial-live", "busy", world["anna"], now=NOW)  # 4 ended + this one = 5 of 5
    assert rows(sessions, world)["here"][0] == "done"


def test_a_call_the_logger_has_not_stored_yet_gets_its_row(sessions, world) -> None:
    record(sessions, "busy", None)
    with sessions() as s:
        call = s.scalar(select(Call).where(Call.linkedid == CHANNEL))
        assert call is not None and (call.client_id, call.disposition) == (world["client"], "busy")


def test_every_disposition_is_offered_and_recordable(sessions, world) -> None:
    assert set(DISPOSITIONS) == {"promise_to_pay", "paid", "dispute", "wrong_number", "refused", "callback",
                                 "no_answer", "busy", "machine"}


BAD = [
    ("sale", {}, "unknown_code"),
    ("promise_to_pay", {"promised_date": date(2026, 11, 30)}, "amount_required"),
    ("promise_to_pay", {"amount": "много", "promised_date": date(2026, 11, 30)}, "bad_amount"),
    ("promise_to_pay", {"amount": "0", "promised_date": date(2026, 11, 30)}, "bad_amount"),
    ("promise_to_pay", {"amount": "-5", "promised_date": date(2026, 11, 30)}, "bad_amount"),
    ("promise_to_pay", {"amount": "10.005", "promised_date": date(2026, 11, 30)}, "bad_amount"),
    ("promise_to_pay", {"amount": "NaN", "promised_date": date(2026, 11, 30)}, "bad_amount"),
    ("promise_to_pay", {"amount": "1" * 20, "promised_date": date(2026, 11, 30)}, "bad_amount"),
    ("promise_to_pay", {"amount": "100"}, "date_required"),
    ("promise_to_pay", {"amount": "100", "promised_date": date(2026, 11, 22)}, "date_in_past"),
    ("callback", {}, "callback_required"),
    ("callback", {"callback_at": NOW - timedelta(minutes=1)}, "callback_not_ahead"),
    ("callback", {"callback_at": NOW + timedelta(days=400)}, "callback_not_ahead"),
    ("callback", {"callback_at": datetime(2026, 11, 24, 12, 0)}, "bad_callback"),
    ("paid", {"amount": "100"}, "extra_field"),
    ("no_answer", {"callback_at": NOW + timedelta(hours=1)}, "extra_field"),
    ("paid", {"note": "x" * 10_001}, "note_too_long"),
]


@pytest.mark.parametrize(("code", "fields", "problem"), BAD, ids=[f"{c}-{p}" for c, _, p in BAD])
def test_bad_input_is_refused_with_its_reason_and_changes_nothing(sessions, world, code, fields, problem) -> None:
    before = rows(sessions, world)
    with pytest.raises(DispositionError) as refused:
        record(sessions, code, world["anna"], **fields)
    assert refused.value.code == problem
    assert str(refused.value)
    assert rows(sessions, world) == before


def test_an_unknown_call_or_operator_is_refused(sessions, world) -> None:
    with sessions.begin() as s, pytest.raises(DispositionError) as unknown:
        record_disposition(s, "dial-nope", "paid", world["anna"], now=NOW)
    assert unknown.value.code == "unknown_call"
    with pytest.raises(DispositionError) as nobody:
        record(sessions, "paid", 999_999)
    assert nobody.value.code == "unknown_operator"


def test_a_call_takes_one_disposition_only(sessions, world) -> None:
    record(sessions, "busy", world["anna"])
    before = rows(sessions, world)
    with pytest.raises(DispositionError) as again:
        record(sessions, "paid", world["anna"])
    assert again.value.code == "already_recorded" and again.value.values == {"code": "busy"}
    assert rows(sessions, world) == before
