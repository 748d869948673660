"""Client-base import: the pure parser on a file with every kind of bad row, the upsert against a
real database (SQLite and PostgreSQL), the round trip through callcard's own export, the CLI and
the upload API.

A centre moving to callcard brings its base from the old CRM: each bad row must be refused with
its line and reason while every good row is imported, and loading the file again must change
nothing, so an admin can fix the rejected rows and load the whole file once more.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, selectinload, sessionmaker
from web_login import log_in

from agent_desk.app import create_app
from callcard.bus import MemoryBus
from callcard.cli import main
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.client_import import ClientRow, import_clients, parse_rows
from crm_core.clients import CLIENT_BASE_COLUMNS, client_base
from crm_core.csv_import import RowError
from crm_core.models import Client, ClientPhone, Operator
from crm_core.passwords import hash_password

Sessions = sessionmaker[Session]
HOSTILE = '<img src=x onerror="alert(1)">Иванов'
HEADER = "ФИО;Тип;Телефоны;Почта;Сегмент;Город;Менеджер;Примечание"
ROWS = [
    "Иванов Иван Иванович;физлицо;8 (916) 123-45-67;ivan@example.ru;ВИП;Москва;op_sales;звонить после 18",
    'ООО «Ромашка»;компания;"+7 495 111-22-33, +7 495 111-22-34";;key;Екатеринбург;;',
    "Петрова Анна;;;anna@example.ru;;;;",  # an e-mail is enough
    f"{HOSTILE};;+7 912 000-00-01;;;;;",  # a name is text, whatever it looks like
    "Сидоров Пётр;;12345;;;;;",  # 6: not a number
    "Нет Контакта;;;;;;;",  # 7: neither a number nor an e-mail
    ";;+7 912 000-00-02;;;;;",  # 8: no name
    "Кузнецов;юр. лицо;+7 912 000-00-03;;;;;",  # 9: imported as a company
    "Козлов;робот;+7 912 000-00-04;;;;;",  # 10: unknown kind
    "Смирнов;;+7 701 555-12-34;;;;;",  # 11: a Kazakh number in a Russian base
    "Волков;;+7 912 000-00-05;volkov@;;;;",  # 12: not an e-mail
    "Морозов;;+7 912 000-00-06;;;;nobody;",  # 13: no such manager (refused when written)
    "Лебедев;;+7 912 000-00-07;;Ключевой;;;",  # 14: the segment's Russian name
    "Новиков;;+7 912 000-00-08;;золото;;;",  # 15: a segment of their own, kept with a warning
    "Иванов Иван Иванович;;+7 916 123-45-67;;;;;",  # 16: line 2's client again: nothing new
    "Соколов;;+7 912 000-00-09;;;;;лишнее;поле",  # 17: too many fields
]
VALID = {"Иванов Иван Иванович", "ООО «Ромашка»", "Петрова Анна", HOSTILE, "Кузнецов", "Лебедев", "Новиков"}
REJECTED = {6: "not a phone number", 7: "neither a phone number nor an e-mail", 8: "name is empty",
            10: 'kind "робот"', 11: "is a number in KZ, not in RU", 12: "not an e-mail", 13: "manager nobody",
            17: "9 fields where the header has 8"}


def base_csv() -> str:
    return "\n".join([HEADER, *ROWS]) + "\n"


@pytest.fixture
def staff(sessions: Sessions) -> dict[str, int]:
    with sessions.begin() as s:
        people = [Operator(login=login, name=f"Name {login}", role=role, password_hash=hash_password(f"{login}-pass"),
                           active=login != "op_gone")
                  for login, role in (("op_sales", "operator"), ("op_gone", "operator"), ("super1", "supervisor"))]
        s.add_all(people)
        s.flush()
        return {p.login: p.id for p in people}


def clients_by_name(sessions: Sessions) -> dict[str, Client]:
    with sessions() as s:
        found = s.scalars(select(Client).options(selectinload(Client.phone_links).selectinload(ClientPhone.phone)))
        return {c.name: c for c in found}


def numbers(client: Client) -> set[str]:
    return {link.phone.e164 for link in client.phone_links}


# --- the pure parser -----------------------------------------------------------------------------


def test_parser_refuses_each_bad_row_for_its_reason_and_types_the_good_ones() -> None:
    rows = list(parse_rows(base_csv()))
    rejected = {r.line: r.text() for r in rows if isinstance(r, RowError)}
    assert set(rejected) == set(REJECTED) - {13}  # the manager is the database's to know
    for line, reason in REJECTED.items():
        if line != 13:
            assert reason in rejected[line], (line, rejected[line])
    valid = {r.line: r for r in rows if isinstance(r, ClientRow)}
    ivan, firm = valid[2], valid[3]
    assert (ivan.kind, ivan.phones, ivan.segment, ivan.manager, ivan.notes) == (
        "person", ("+79161234567",), "vip", "op_sales", "звонить после 18")
    assert (firm.kind, firm.phones, firm.segment) == ("company", ("+74951112233", "+74951112234"), "key")
    assert (valid[9].kind, valid[14].segment, valid[15].segment) == ("company", "key", "золото")
    assert [w.code for w in valid[15].warnings] == ["new_segment"]


def test_callcard_export_cells_read_back_as_written() -> None:
    """The export writes numbers space-separated and puts ' before a leading + for Excel."""
    text = ("id,name,kind,segment,email,city,phones,manager,debt_open,created_at\n"
            "7,Иванов,person,vip,,Москва,'+79161234567 +74951112233,,False,2026-01-01T00:00:00+00:00\n")
    (row,) = parse_rows(text)
    assert isinstance(row, ClientRow) and (row.client_id, row.phones) == (7, ("+79161234567", "+74951112233"))


@pytest.mark.parametrize(("cell", "code"), [("x1", "bad_id"), ("-3", "bad_id"), ("1" * 30, "bad_id"), ("٣", "bad_id")])
def test_an_id_that_is_no_client_id_is_refused(cell: str, code: str) -> None:
    (row,) = parse_rows(f"id;name;phones\n{cell};Иванов;+79161234567\n")
    assert isinstance(row, RowError) and [r.code for r in row.reasons] == [code]


def test_the_same_id_twice_in_a_file_is_refused_the_second_time() -> None:
    rows = list(parse_rows("id;name;phones\n5;А;+79161234567\n5;Б;+79161234568\n"))
    assert isinstance(rows[0], ClientRow) and isinstance(rows[1], RowError)
    assert "client 5 already appears on line 2" in rows[1].text()
    assert "клиент 5 уже есть в строке 2" in rows[1].text("ru")


# --- the database import -------------------------------------------------------------------------


def test_valid_rows_imported_bad_ones_reported_by_line_and_a_reimport_changes_nothing(
        sessions: Sessions, staff: dict[str, int], tmp_path: Path) -> None:
    source = tmp_path / "base.csv"
    source.write_bytes(base_csv().encode("cp1251"))  # Excel's CSV in Russia
    report = import_clients(sessions, source, report_path=tmp_path / "rejected.csv")
    assert (report.read, report.created, report.updated, report.unchanged, len(report.rejected)) == (
        len(ROWS), len(VALID), 0, 1, len(REJECTED))
    assert [r.line for r in report.rejected] == sorted(REJECTED), "the report lists rejections by line"
    assert "manager nobody is not an active operator's login" in report.rejected[-2].text()
    found = clients_by_name(sessions)
    assert set(found) == VALID
    ivan = found["Иванов Иван Иванович"]
    assert (ivan.manager_id, ivan.segment, ivan.city, ivan.notes) == (staff["op_sales"], "vip", "Москва",
                                                                      "звонить после 18")
    assert numbers(found["ООО «Ромашка»"]) == {"+74951112233", "+74951112234"}
    assert found["ООО «Ромашка»"].kind == "company" and found["Петрова Анна"].email == "anna@example.ru"
    with open(tmp_path / "rejected.csv", encoding="utf-8-sig", newline="") as f:
        listed = list(csv.reader(f, delimiter=";"))
    assert listed[0] == ["line", "name", "reasons", "original row"]
    assert [int(row[0]) for row in listed[1:]] == sorted(REJECTED)

    again = import_clients(sessions, source)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(VALID) + 1)
    assert len(clients_by_name(sessions)) == len(VALID)


def test_a_filled_cell_replaces_an_empty_one_changes_nothing_and_notes_and_numbers_are_only_added(
        sessions: Sessions, staff: dict[str, int]) -> None:
    import_clients(sessions, "name;phones;city;segment;notes;manager\n"
                             "Иванов;+79161234567;Москва;vip;первый звонок;op_sales\n".encode())
    report = import_clients(sessions, "name;phones;city;segment;notes;manager\n"
                                      "Иванов;+79161234567, +79031112233;;;просил перезвонить;\n".encode())
    assert (report.created, report.updated) == (0, 1)
    ivan = clients_by_name(sessions)["Иванов"]
    assert (ivan.city, ivan.segment, ivan.manager_id) == ("Москва", "vip", staff["op_sales"])
    assert ivan.notes == "первый звонок\n\nпросил перезвонить"
    assert numbers(ivan) == {"+79161234567", "+79031112233"}


def test_a_namesake_with_another_number_is_another_client_and_a_shared_number_is_warned(
        sessions: Sessions, staff: dict[str, int]) -> None:
    import_clients(sessions, "name;phones;email\nИванов;+79161234567;\nПетров;;petrov@example.ru\n".encode())
    report = import_clients(sessions, "name;phones;email\n"
                                      "Иванов;+79990000000;\n"  # a namesake
                                      "Иванова Мария;+79161234567;\n"  # the same home line, another person
                                      "Петров;+79035550000;PETROV@example.ru\n".encode())  # known by e-mail
    assert (report.created, report.updated) == (2, 1)
    assert [(w.line, w.reason.code) for w in report.warnings] == [(3, "shared_number")]
    assert "+79161234567 also belongs to Иванов" in report.warnings[0].reason.text()
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Client).where(Client.name == "Иванов")) == 2
    assert numbers(clients_by_name(sessions)["Петров"]) == {"+79035550000"}


def test_a_row_finds_its_client_by_the_name_however_spelt(sessions: Sessions, staff: dict[str, int]) -> None:
    """The old CRM wrote "Фёдоров Артём", the new file "федоров артем": the same client, by its
    number or its e-mail, and the file's spelling replaces the card's."""
    import_clients(sessions, "name;phones;email\nФёдоров Артём;+79161234567;\nООО «Ромашка»;;info@romashka.ru\n".encode())
    report = import_clients(sessions, "name;phones;email\n"
                                      "федоров артем;+79161234567;\n"
                                      "Ромашка, ООО;;INFO@romashka.ru\n".encode())
    assert (report.created, report.updated, report.warnings) == (0, 2, [])
    assert set(clients_by_name(sessions)) == {"федоров артем", "Ромашка, ООО"}


def test_an_unknown_id_or_a_departed_manager_refuses_the_row_and_nothing_else(
        sessions: Sessions, staff: dict[str, int]) -> None:
    report = import_clients(sessions, "id;name;phones;manager\n"
                                      "999999;Призрак;+79161234567;\n"
                                      ";Иванов;+79161234568;op_gone\n"
                                      ";Петров;+79161234569;op_sales\n".encode(), lang="ru")
    assert [(r.line, r.text("ru")) for r in report.rejected] == [
        (2, "в callcard нет клиента с id 999999: оставьте id пустым, чтобы добавить клиента"),
        (3, "manager: op_gone — не логин действующего оператора")]
    assert set(clients_by_name(sessions)) == {"Петров"}


def test_the_exported_base_edited_and_loaded_back_changes_only_the_edited_client(
        sessions: Sessions, staff: dict[str, int], tmp_path: Path) -> None:
    import_clients(sessions, base_csv().encode())
    with sessions() as s:
        exported = [CLIENT_BASE_COLUMNS, *client_base(s, None)]
    out = io.StringIO()
    writer = csv.writer(out)
    for row in exported:
        writer.writerow(["'" + c if isinstance(c, str) and c.startswith("+") else c for c in row])  # as Excel keeps it
    edited = out.getvalue().replace(",Москва,", ",Тверь,")
    report = import_clients(sessions, edited.encode())
    assert (report.created, report.updated, report.unchanged, report.rejected) == (0, 1, len(VALID) - 1, [])
    assert clients_by_name(sessions)["Иванов Иван Иванович"].city == "Тверь"


# --- the command line ----------------------------------------------------------------------------


def test_cli_imports_the_base_and_writes_the_rejected_rows(db_url: str, engine: Engine, sessions: Sessions,
                                                           staff: dict[str, int], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CALLCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCARD_DEFAULT_LANGUAGE", "en")
    source = tmp_path / "clients.csv"
    source.write_text(base_csv(), encoding="utf-8")
    assert main(["clients", "import", str(source)]) == 0
    out, err = capsys.readouterr()
    assert f"read {len(ROWS)}, created {len(VALID)}, updated 0, unchanged 1, rejected {len(REJECTED)}" in out
    assert str(tmp_path / "clients.rejected.csv") in out and (tmp_path / "clients.rejected.csv").exists()
    assert "line 15: segment \"золото\" is not one of standard, vip, key, debtor, new" in err
    assert main(["clients", "import", str(tmp_path / "missing.csv")]) == 2


# --- the upload API ------------------------------------------------------------------------------


@pytest.fixture
def http(sessions: Sessions, staff: dict[str, int]) -> Iterator[TestClient]:
    app = create_app(Settings(secret_key="test-secret", default_language="en"), sessions, MemoryBus())
    with TestClient(app) as client:
        yield client


def finished(http: TestClient, job_id: str, deadline: float = 30.0) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status = http.get(f"/api/client-imports/{job_id}").json()
        if status["state"] != "running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} still running after {deadline} s")


def test_a_supervisor_uploads_the_base_and_an_operator_may_not(http: TestClient, sessions: Sessions) -> None:
    csrf = log_in(http, "op_sales", "op_sales-pass")
    assert http.get("/clients/import").status_code == 403
    assert http.post("/api/client-imports", content=base_csv().encode(),
                     headers={"X-CSRF-Token": csrf}).status_code == 403
    http.post("/logout", data={"csrf": csrf})
    csrf = log_in(http, "super1", "super1-pass")
    page = http.get("/clients/import")
    assert page.status_code == 200 and 'id="import-file"' in page.text and "<code>manager</code>" in page.text
    job = http.post("/api/client-imports?name=base.csv", content=base_csv().encode(),
                    headers={"X-CSRF-Token": csrf}).json()["job_id"]
    status = finished(http, job)
    assert status["state"] == "done" and status["counts"]["created"] == len(VALID)
    assert [row["line"] for row in status["rejected"]] == sorted(REJECTED)
    assert status["rejected"][0]["key"] == "Сидоров Пётр"
    report = http.get(f"/api/client-imports/{job}/rejected.csv")
    assert report.status_code == 200 and "base.rejected.csv" in report.headers["content-disposition"]
    with sessions() as s:
        actions = [(e.actor_login, e.action, e.outcome) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert ("op_sales", "forbidden", "refused") in actions
    assert actions[-2:] == [("super1", "client_import", "ok"), ("super1", "export", "ok")]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_on_postgresql_the_tables_an_import_fills_are_analysed(sessions: Sessions, staff: dict[str, int]) -> None:
    """The planner must not keep picturing the tables as empty: lookups would scan them whole."""
    rows = "\n".join(f"Клиент {i};+7912{i:07d}" for i in range(2500))
    import_clients(sessions, f"name;phones\n{rows}\n".encode())
    with sessions() as s:
        counted = {table: s.scalar(text(f"SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass"))
                   for table in ("clients", "phones", "client_phones")}
    assert counted == {"clients": 2500, "phones": 2500, "client_phones": 2500}
