"""Client services: creation with numbers and contacts, search, timeline, call notes, call lists."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEvent, CallEventKind
from crm_core.call_log import CallLogger
from crm_core.clients import (
    ClientNotFound,
    InvalidInput,
    NewContact,
    create_client,
    list_calls,
    merge_clients,
    possible_duplicates,
    save_call_note,
    search_clients,
    timeline,
)
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
)
from crm_core.phones import PhoneError


@pytest.fixture
def op1(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        op = Operator(login="op1", name="Анна", password_hash="x", interface="Local/101@agents")
        s.add(op)
        s.flush()
        return op.id


def count(s: Session, model: type) -> int:
    return s.scalar(select(func.count()).select_from(model))


def test_create_client_normalises_and_dedupes_numbers(sessions, op1) -> None:
    with sessions.begin() as s:
        client = create_client(s, "  Иван Петров ", "person", ["8 (351) 123-45-67", "+73511234567",
                                                              "+7 912 345 67 89"], manager_id=op1)
        client_id = client.id
    with sessions() as s:
        client = s.get(Client, client_id)
        assert client.name == "Иван Петров" and client.manager_id == op1
        assert sorted((link.phone.e164, link.phone.kind) for link in client.phone_links) == [
            ("+73511234567", "landline"), ("+79123456789", "mobile")]


def test_invalid_number_is_refused_with_a_clear_message_and_nothing_written(sessions) -> None:
    with sessions() as s:
        with pytest.raises(PhoneError, match="not a valid phone number: '12345'"):
            create_client(s, "Иван", "person", ["+73511234567", "12345"])
        with pytest.raises(PhoneError, match="'abc'"):
            create_client(s, "ООО «Ромашка»", "company", [], contacts=[NewContact("Ольга", phone="abc")])
        assert count(s, Client) == 0 and count(s, Phone) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "  "}, "name is empty"),
        ({"kind": "robot"}, "kind must be one of person, company"),
        ({"manager_id": 424242}, "no operator with id 424242"),
        ({"name": "x" * 300}, "name is too long"),
        ({"contacts": [NewContact(" ")]}, "contact person name is empty"),
    ],
)
def test_bad_client_fields_are_refused(sessions, kwargs: dict, message: str) -> None:
    args = {"name": "Иван", "kind": "person", "phones": [], **kwargs}
    with sessions() as s, pytest.raises(InvalidInput, match=message):
        create_client(s, **args)


def test_number_already_on_another_client_is_linked_not_duplicated(sessions) -> None:
    with sessions.begin() as s:
        create_client(s, "Сидоров Пётр", "person", ["+79120000001"])
        create_client(s, "Сидорова Анна", "person", ["89120000001"])
    with sessions() as s:
        assert count(s, Phone) == 1 and count(s, ClientPhone) == 2


def test_company_contacts_get_their_own_numbers(sessions) -> None:
    with sessions.begin() as s:
        firm = create_client(s, "ООО «Ромашка»", "company", ["+73512000000"], contacts=[
            NewContact("Ольга Белова", "бухгалтер", "olga@x.ru", "8 912 000-00-02"), NewContact("Пётр")])
        firm_id = firm.id
    with sessions() as s:
        contacts = s.scalars(select(ContactPerson).where(ContactPerson.client_id == firm_id)
                             .order_by(ContactPerson.id)).all()
        assert [(c.name, c.phone.e164 if c.phone else None) for c in contacts] == [
            ("Ольга Белова", "+79120000002"), ("Пётр", None)]


@pytest.fixture
def people(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as s:
        ids = {
            "ivan": create_client(s, "ИВАН Петров", "person", ["+73511234567"], email="Ivan@Mail.ru").id,
            "petrova": create_client(s, "Петрова Ёлка", "person", ["+79120000001"]).id,
            "firm": create_client(s, "ООО «Ромашка» 100%_", "company", ["+73512000000"],
                                  contacts=[NewContact("Ольга", phone="+79220000009")]).id,
        }
    return ids


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("иван", ["ivan"]),
        ("ПЕТР", ["ivan", "petrova"]),
        ("ёлка", ["petrova"]),
        ("ivan@mail", ["ivan"]),
        ("ромашка", ["firm"]),
        ("100%_", ["firm"]),
        ("%", ["firm"]),  # a literal percent sign, not a wildcard
        ("а_", []),
        ("", []),
        ("8 351 123-45-67", ["ivan"]),
        ("+7 912", ["petrova"]),
        ("8912", ["petrova"]),
        ("1234", ["ivan"]),
        ("922 000", ["firm"]),  # a contact person's mobile finds the company
        ("99999", []),
    ],
)
def test_search_by_name_any_case_or_by_phone_digits(sessions, people, q: str, expected: list[str]) -> None:
    with sessions() as s:
        found = search_clients(s, q, limit=10)
        assert sorted(c.id for c in found) == sorted(people[k] for k in expected)


def test_timeline_merges_calls_and_notes_newest_first(sessions, people, op1) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as s:
        for n in range(3):
            s.add(Call(linkedid=f"c{n}", client_id=people["ivan"], started_at=now - timedelta(hours=2 * n),
                       status="ended", outcome="answered", operator_id=op1))
            s.add(Interaction(client_id=people["ivan"], author_id=op1, note=f"note {n}",
                              created_at=now - timedelta(hours=2 * n + 1)))
    with sessions() as s:
        entries = timeline(s, people["ivan"], limit=5)
        assert [(e["type"], e["note"]) for e in entries] == [
            ("call", ""), ("note", "note 0"), ("call", ""), ("note", "note 1"), ("call", "")]
        assert timeline(s, people["petrova"]) == []
        with pytest.raises(ClientNotFound):
            timeline(s, 999_999)


def test_call_note_saves_disposition_and_links_the_chosen_client(sessions, people, op1) -> None:
    logger = CallLogger(sessions)
    logger.apply(CallEvent(CallEventKind.OFFERED, "shared.1", 1_800_000_000.0, caller_num="+79120000001"))
    with sessions.begin() as s:
        note = save_call_note(s, "shared.1", op1, "Клиент выбран вручную", "consulted",
                              client_id=people["petrova"])
        note_id = note.id
    with sessions() as s:
        note = s.get(Interaction, note_id)
        assert (note.client_id, note.author_id, note.note) == (people["petrova"], op1, "Клиент выбран вручную")
        assert (note.call.linkedid, note.call.disposition, note.call.client_id) == (
            "shared.1", "consulted", people["petrova"])
        assert count(s, Call) == 1


def test_call_note_before_the_logger_saw_the_call_creates_it_and_events_fill_it_in(
    sessions, people, op1
) -> None:
    with sessions.begin() as s:
        save_call_note(s, "early.1", op1, "", "callback", client_id=people["firm"])
    offered = time.time() - 60  # the bus was slower than the operator
    logger = CallLogger(sessions)
    logger.apply(CallEvent(CallEventKind.OFFERED, "early.1", offered, caller_num="+73511234567", queue="sales"))
    with sessions() as s:
        call = s.scalars(select(Call)).one()
        assert (call.client_id, call.disposition, call.caller_e164) == (people["firm"], "callback", "+73511234567")
        assert as_utc(call.started_at) == datetime.fromtimestamp(offered, tz=UTC)


def test_call_note_refuses_what_it_cannot_store(sessions, people, op1) -> None:
    with sessions() as s:
        with pytest.raises(ClientNotFound):
            save_call_note(s, "x.1", op1, "", "", client_id=999_999)
        with pytest.raises(InvalidInput, match="disposition is too long"):
            save_call_note(s, "x.1", op1, "", "d" * 33)
        with pytest.raises(InvalidInput, match="not a call id"):
            save_call_note(s, " ", op1, "note", "")
        with pytest.raises(InvalidInput, match="no operator"):
            save_call_note(s, "x.1", 999_999, "note", "")


def test_list_calls_filters_and_pages_newest_first(sessions, people, op1) -> None:
    now = datetime.now(UTC)
    with sessions.begin() as s:
        for n, outcome in enumerate(["answered", "abandoned", "answered", "missed", "answered"]):
            s.add(Call(linkedid=f"l{n}", started_at=now - timedelta(minutes=n), status="ended", outcome=outcome,
                       operator_id=op1 if outcome == "answered" else None, client_id=people["ivan"]))
    with sessions() as s:
        assert [c.linkedid for c in list_calls(s)] == ["l0", "l1", "l2", "l3", "l4"]
        assert [c.linkedid for c in list_calls(s, outcome="answered")] == ["l0", "l2", "l4"]
        assert [c.linkedid for c in list_calls(s, operator_id=op1, limit=2, offset=1)] == ["l2", "l4"]
        assert [c.linkedid for c in list_calls(s, since=now - timedelta(minutes=1, seconds=30))] == ["l0", "l1"]
        first = list_calls(s, limit=1)[0]
        assert (first.operator.login, first.client.name) == ("op1", "ИВАН Петров")
        with pytest.raises(InvalidInput):
            list_calls(s, outcome="exploded")


# --- duplicates and merging --------------------------------------------------------------------


def test_twins_are_found_by_a_shared_number_before_the_same_name(sessions, op1) -> None:
    with sessions.begin() as s:
        ivan = create_client(s, "Иван Петров", "person", ["+79161234567"])
        home = create_client(s, "Мария Петрова", "person", ["+79161234567"])  # the same home line
        namesake = create_client(s, "Иван Петров", "person", ["+79031112233"])
        create_client(s, "Пётр Иванов", "person", ["+79035550000"])
        ids = (ivan.id, home.id, namesake.id)
    with sessions() as s:
        found = [(c.id, reason) for c, reason in possible_duplicates(s, ids[0])]
    assert found == [(ids[1], "number"), (ids[2], "name")]


@pytest.mark.parametrize(("one", "other"), [
    ("Петров Иван", "иван  ПЕТРОВ"),
    ("Фёдоров Артём", "Федоров Артем"),
    ("ООО «Ромашка»", "Ромашка, ООО"),
    ('АО "Кыштымтехснаб"', "ао кыштымтехснаб"),
])
def test_a_twin_spelt_another_way_is_found_by_its_name(sessions, op1, one: str, other: str) -> None:
    with sessions.begin() as s:
        first = create_client(s, one, "person", ["+79161234567"])
        second = create_client(s, other, "person", ["+79031112233"])
        create_client(s, "Петрова Ирина", "person", ["+79035550000"])  # a namesake in part only
        ids = (first.id, second.id)
    with sessions() as s:
        assert [(c.id, reason) for c, reason in possible_duplicates(s, ids[0])] == [(ids[1], "name")]


def test_a_renamed_client_gets_its_new_name_key(sessions, op1) -> None:
    with sessions.begin() as s:
        client = create_client(s, "Иван Петров", "person", ["+79161234567"])
        twin = create_client(s, "Сидоров Пётр", "person", ["+79031112233"])
        ids = (client.id, twin.id)
    with sessions.begin() as s:
        s.get(Client, ids[0]).name = "Петр Сидоров"
    with sessions() as s:
        assert s.get(Client, ids[0]).name_key == "петр сидоров"
        assert [c.id for c, _ in possible_duplicates(s, ids[1])] == [ids[0]]


def test_merge_moves_everything_to_the_kept_client_and_deletes_the_duplicate(sessions, op1) -> None:
    with sessions.begin() as s:
        keep = create_client(s, "ООО «Ромашка»", "company", ["+74951112233"], city="Москва")
        twin = create_client(s, "ООО Ромашка", "company", ["+74951112233", "+74951112234"], email="info@romashka.ru",
                             manager_id=op1, contacts=[NewContact("Ольга", phone="+79161112233")])
        twin.notes, twin.contact_refused, twin.debt_open = "перезванивать после обеда", True, True
        s.flush()
        twin.phone_links[0].status = "do_not_call"  # asked not to be called on the shared number
        call = Call(linkedid="twin.1", started_at=datetime.now(UTC), client_id=twin.id, status="ended")
        s.add(call)
        s.flush()
        s.add(Interaction(client_id=twin.id, call_id=call.id, author_id=op1, note="просили счёт"))
        s.add(Request(client_id=twin.id, subject="Счёт"))
        s.add(Debt(client_id=twin.id, creditor="Банк", contract="R-1", principal=100, total_due=100))
        keep_id, twin_id = keep.id, twin.id
    with sessions.begin() as s:
        merge_clients(s, keep_id, twin_id)
    with sessions() as s:
        kept = s.get(Client, keep_id)
        assert s.get(Client, twin_id) is None
        assert sorted((link.phone.e164, link.status) for link in kept.phone_links) == [
            ("+74951112233", "do_not_call"), ("+74951112234", "valid")], "the stricter status of a shared number stays"
        assert (kept.name, kept.city, kept.email, kept.manager_id) == ("ООО «Ромашка»", "Москва", "info@romashka.ru", op1)
        assert kept.notes == "перезванивать после обеда"
        assert kept.contact_refused and kept.debt_open, "a cease-contact request survives the merge"
        for model in (ContactPerson, Call, Interaction, Request, Debt):
            assert s.scalars(select(model.client_id)).all() == [keep_id], model.__name__
        assert [entry["note"] for entry in timeline(s, keep_id) if entry.get("note")] == ["просили счёт"]


def test_a_client_is_not_merged_into_itself_or_a_missing_one(sessions) -> None:
    with sessions.begin() as s:
        client_id = create_client(s, "Иван", "person", ["+79161234567"]).id
    with sessions() as s:
        with pytest.raises(InvalidInput, match="itself"):
            merge_clients(s, client_id, client_id)
        with pytest.raises(ClientNotFound):
            merge_clients(s, client_id, client_id + 100)
