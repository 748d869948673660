"""Debt import: the region table, the pure CSV parser on broken files, the upsert against a real
database (SQLite and PostgreSQL), the CLI and the upload page.

The broken file carries every kind of bad row the import must refuse (wrong column count, bad
amounts, 31 February, future dates, garbage phones, numbers of another country, a duplicate
contract, an unknown status, a control character, a hostile name) among valid ones: the valid rows
are imported, every bad line is reported with its reason, and nothing is lost.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from debt_files import HEADER, HOSTILE, TODAY, VALID, broken_csv, debt, expected_rejections
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services import REDIS_URL, require_service
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from web_login import log_in

from agent_desk import imports
from agent_desk.app import create_app
from callcard.bus import MemoryBus, RedisBus
from callcard.cli import _ProgressPrinter, main
from callcard.settings import Settings
from crm_core.audit import AuditEntry
from crm_core.csv_import import ImportFailed, ImportFileError, RowError, decode_csv
from crm_core.debt_import import DebtRow, import_debts, parse_rows
from crm_core.models import Client, ClientPhone, Debt, Operator, Phone
from crm_core.passwords import hash_password
from crm_core.regions import REGIONS, find_region, time_zone_for_region

Sessions = sessionmaker[Session]
Web = tuple[TestClient, Any]
SAMPLES = Path(__file__).resolve().parent.parent / "deploy" / "samples"


def write(tmp_path: Path, content: str | bytes, name: str = "debts.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def counts(sessions: Sessions) -> dict[str, int]:
    with sessions() as s:
        return {model.__name__: s.scalar(select(func.count()).select_from(model))
                for model in (Client, Phone, ClientPhone, Debt)}


# --- regions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "name", "zone"), [
    ("Москва", "Москва", "Europe/Moscow"),
    ("г. Москва", "Москва", "Europe/Moscow"),
    ("город Москва", "Москва", "Europe/Moscow"),
    ("Москва г", "Москва", "Europe/Moscow"),
    ("МОСКВА", "Москва", "Europe/Moscow"),
    ("77", "Москва", "Europe/Moscow"),
    ("Московская область", "Московская область", "Europe/Moscow"),
    ("Московская обл", "Московская область", "Europe/Moscow"),
    ("Свердловская обл.", "Свердловская область", "Asia/Yekaterinburg"),
    ("66", "Свердловская область", "Asia/Yekaterinburg"),
    ("Россия, Свердловская обл., г. Екатеринбург", "Свердловская область", "Asia/Yekaterinburg"),
    ("Приморский край", "Приморский край", "Asia/Vladivostok"),
    ("Респ. Татарстан", "Республика Татарстан", "Europe/Moscow"),
    ("Татарстан Респ", "Республика Татарстан", "Europe/Moscow"),
    ("Башкирия", "Республика Башкортостан", "Asia/Yekaterinburg"),
    ("2", "Республика Башкортостан", "Asia/Yekaterinburg"),
    ("Удмуртия", "Удмуртская Республика", "Europe/Samara"),
    ("ХМАО - Югра", "Ханты-Мансийский автономный округ — Югра", "Asia/Yekaterinburg"),
    ("Ханты-Мансийский Автономный округ - Югра АО", "Ханты-Мансийский автономный округ — Югра",
     "Asia/Yekaterinburg"),
    ("Кемеровская область - Кузбасс", "Кемеровская область — Кузбасс", "Asia/Novokuznetsk"),
    ("С.-Петербург", "Санкт-Петербург", "Europe/Moscow"),
    ("СПб", "Санкт-Петербург", "Europe/Moscow"),
    ("Алтай", "Республика Алтай", "Asia/Barnaul"),
    ("Алтайский край", "Алтайский край", "Asia/Barnaul"),
    ("Калининградская обл.", "Калининградская область", "Europe/Kaliningrad"),
    ("Камчатский край", "Камчатский край", "Asia/Kamchatka"),
    ("Чукотский АО", "Чукотский автономный округ", "Asia/Anadyr"),
    ("Еврейская АО", "Еврейская автономная область", "Asia/Vladivostok"),
    ("Саратовская обл", "Саратовская область", "Europe/Saratov"),
    ("Республика Крым", "Республика Крым", "Europe/Simferopol"),
    ("Ёлки", None, None),
    ("", None, None),
    ("00", None, None),
    ("Московская", "Московская область", "Europe/Moscow"),
])
def test_region_found_however_it_is_written(written: str, name: str | None, zone: str | None) -> None:
    found = find_region(written)
    assert (found.name if found else None, time_zone_for_region(written)) == (name, zone)


def test_every_subject_has_a_code_a_real_zone_and_is_found_by_its_own_name() -> None:
    assert len(REGIONS) >= 85
    assert len({r.code for r in REGIONS}) == len(REGIONS)
    for region in REGIONS:
        assert find_region(region.name) == region == find_region(region.code)
        assert region.time_zone is None or ZoneInfo(region.time_zone)


def test_yakutia_spans_three_zones_so_the_number_decides() -> None:
    assert find_region("Республика Саха (Якутия)").code == "14"  # type: ignore[union-attr]
    assert time_zone_for_region("Якутия") is None


# --- the pure parser -----------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", ","])
def test_parser_rejects_each_bad_row_for_its_reason_and_keeps_the_good_ones(delimiter: str) -> None:
    rows = list(parse_rows(broken_csv(delimiter), "RU", TODAY))
    rejected = {row.line: row for row in rows if isinstance(row, RowError)}
    assert {line: row.reasons[0].code for line, row in rejected.items()} == expected_rejections(delimiter)
    assert {row.contract for row in rows if isinstance(row, DebtRow)} == VALID
    assert len(rows) == len(VALID) + len(rejected)  # the blank and empty lines are no rows
    assert "K-1" in rejected[11].text() and "line 2" in rejected[11].text()
    assert rejected[23].raw == f'K-19{delimiter}"Незакрытая кавычка\nK-20{delimiter}ПАО «Банк»'
    assert "lines 23–24" in rejected[23].text()
    assert "+77015551234 is a number in KZ, not in RU" in rejected[9].text()
    assert ("in quotes" in rejected[4].text()) == (delimiter == ",")
    assert "silently" in rejected[8].text() and "не пропал молча" in rejected[8].text("ru")


def test_parser_types_the_valid_rows() -> None:
    rows = {row.contract: row for row in parse_rows(broken_csv(";"), "RU", TODAY) if isinstance(row, DebtRow)}
    first = rows["K-1"]
    assert (first.phones, first.principal, first.total_due, first.days_past_due) == (
        ("+79161234567", "+73433001122"), Decimal("12500.50"), Decimal("13000.00"), 45)
    assert (first.region, first.time_zone, first.currency, first.status, first.kind) == (
        "Москва", "Europe/Moscow", "RUB", None, None)
    second = rows["K-2"]
    assert (second.debtor, second.days_past_due, second.total_due) == (HOSTILE, 92, Decimal("1500.50"))
    assert (rows["K-14"].kind, rows["K-14"].time_zone) == ("company", "Asia/Vladivostok")
    assert rows["K-16"].time_zone is None and rows["K-16"].warnings[0].code == "region_zones"


@pytest.mark.parametrize(("written", "amount"), [
    ("12500", Decimal("12500.00")), ("12 500,50", Decimal("12500.50")), ("12500.5", Decimal("12500.50")),
    ("1 234 567,89", Decimal("1234567.89")), ("12\u00a0500", Decimal("12500.00")), ("0,01", Decimal("0.01")),
    ("12,500.00", None), ("1.234,56", None), ("12 50", None), ("1e5", None), ("12.345", None), ("₽100", None),
    ("-5", None), ("١٢", None), ("1000000000000", None),
])
def test_amounts_in_the_forms_people_write(written: str, amount: Decimal | None) -> None:
    [row] = parse_rows(";".join(HEADER) + "\n" + ";".join(debt("A", total=written)), "RU", TODAY)
    assert (row.total_due if isinstance(row, DebtRow) else None) == amount


@pytest.mark.parametrize(("days", "due", "expected"), [
    ("", "2024-05-31", 1), ("", "31.05.2024", 1), ("", "1.5.2024", 31), ("", "2024-06-01", 0),
    ("31", "01.05.2024", 31), ("", "29.02.2024", 93), ("", "29.02.2023", "no_such_date"),
    ("", "31.04.2024", "no_such_date"), ("", "2024-06-02", "future"), ("", "01.06.24", "date"),
    ("", "2024/05/01", "date"), ("-3", "", "days"), ("3.5", "", "days"), ("", "", "no_days"),
    ("40000", "", "days"), ("", "01.01.1900", "too_old"),
])
def test_dates_must_exist_and_not_be_ahead(days: str, due: str, expected: int | str) -> None:
    [row] = parse_rows(";".join(HEADER) + "\n" + ";".join(debt("A", days=days, due=due)), "RU", TODAY)
    assert (row.days_past_due if isinstance(row, DebtRow) else row.reasons[0].code) == expected


@pytest.mark.parametrize(("debtor", "code"), [
    ("Петров Пётр".encode().decode("cp1251"), "garbled"),  # UTF-8 read as Windows-1251
    ("Петров Пётр".encode().decode("cp1252"), "garbled"),  # UTF-8 read as Windows-1252
    ("Müller Hans".encode("latin-1").decode("cp1251"), "mixed_script"),  # Latin-1 read as Windows-1251
    ("Иванoв Иван", "mixed_script"),  # a Latin "o": the name would never match the real one
    ("Петров\ufffd", "lost_chars"),
])
def test_text_spoilt_by_a_wrong_encoding_is_refused(debtor: str, code: str) -> None:
    [row] = parse_rows(";".join(HEADER) + "\n" + ";".join(debt("A", debtor)), "RU", TODAY)
    assert isinstance(row, RowError) and row.reasons[0].code == code
    [fine] = parse_rows(";".join(HEADER) + "\n" + ";".join(debt("A", "Müller Hans")), "RU", TODAY)
    assert isinstance(fine, DebtRow) and fine.debtor == "Müller Hans"


@pytest.mark.parametrize("debtor", ["Сёма Сёмин", "Сёмкина Рёна Сёмовна"])
def test_real_names_that_look_like_mojibake_pairs_are_kept(debtor: str) -> None:
    [row] = parse_rows(";".join(HEADER) + "\n" + ";".join(debt("A", debtor)), "RU", TODAY)
    assert isinstance(row, DebtRow) and row.debtor == debtor


@pytest.mark.parametrize(("header", "code"), [
    ("contract;creditor;debtor;region;phones;principal;total", "missing_days"),
    ("contract;creditor;debtor;region;phones;principal;total_due;days;stauts", "unknown_columns"),
    ("contract;creditor;debtor;region;phones;principal;total_due;dpd;contract", "duplicate_columns"),
    ("contract;creditor;region;phones;principal;total_due;dpd", "missing_columns"),
    ("K-1;Банк;Иванов;Москва;+79161234567;100;100;5", "no_header"),
    ("contract", "missing_columns"),
])
def test_a_bad_header_refuses_the_file(header: str, code: str) -> None:
    with pytest.raises(ImportFileError) as refused:
        list(parse_rows(header + "\nK-1;Банк;Иванов;Москва;+79161234567;100;100;5\n"))
    assert refused.value.reason.code == code
    with pytest.raises(ImportFileError, match="empty"):
        list(parse_rows("\n \r\n"))


def test_russian_header_names_and_tab_delimiter_are_understood() -> None:
    header = "Договор\tКредитор\tФИО\tРегион\tТелефоны\tОсновной долг\tК оплате\tДней просрочки"
    [row] = parse_rows(header + "\nK-1\tБанк\tИванов\t66\t+79161234567\t100\t100\t5\n", "RU", TODAY)
    assert isinstance(row, DebtRow) and (row.contract, row.time_zone) == ("K-1", "Asia/Yekaterinburg")


def test_encodings_are_recognised_and_broken_ones_refused_with_the_line() -> None:
    text = broken_csv(";")
    assert decode_csv(text.encode("utf-8")) == (text, "utf-8")
    assert decode_csv(b"\xef\xbb\xbf" + text.encode("utf-8")) == (text, "utf-8-sig")
    assert decode_csv(text.encode("cp1251")) == (text, "cp1251")
    assert decode_csv(b"\xff\xfe" + text.encode("utf-16-le")) == (text, "utf-16")
    broken = text.encode("utf-8").replace("Незакрытая".encode(), "Незакрытая".encode()[:-1])
    with pytest.raises(ImportFileError, match="line 23 is not valid UTF-8"):
        decode_csv(broken)
    with pytest.raises(ImportFileError, match="line 1 is neither UTF-8 nor Windows-1251"):
        decode_csv(b"contract;\x98\n")
    with pytest.raises(ImportFileError, match="Excel workbook"):
        decode_csv(b"PK\x03\x04rest of a zip")
    with pytest.raises(ImportFileError, match="line 2 contains NUL"):
        decode_csv(b"contract\nK\x00-1\n")
    with pytest.raises(ImportFileError, match="empty"):
        decode_csv(b" \r\n")


PIECES = [b";", b",", b"\t", b"\n", b"\r\n", b"\r", b'"', b"\xd0", b"\xd0\x98", b"\xef\xbb\xbf", b"\xff\xfe",
          b"\x00", b"\xe2\x80\xa8", b"31.02.2024", b"+7 916 123-45-67", b"12 500,5", b"-",
          ";".join(HEADER).encode()]


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2000), st.lists(st.sampled_from(PIECES) | st.binary(max_size=12), max_size=30))
def test_any_bytes_give_rows_or_a_file_error_and_nothing_else(cut: int, pieces: list[bytes]) -> None:
    data = broken_csv(";").encode()[:cut] + b"".join(pieces)
    try:
        rows = list(parse_rows(decode_csv(data)[0], "RU", TODAY))
    except ImportFileError as refused:
        assert refused.text("ru") and refused.text("en")
        return
    for row in rows:
        assert isinstance(row, DebtRow) or (isinstance(row, RowError) and row.text("ru") and row.text("en"))


# --- the database import ---------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";", ","])
def test_broken_file_valid_rows_imported_every_bad_line_reported(sessions: Sessions, tmp_path: Path,
                                                                 delimiter: str) -> None:
    source = write(tmp_path, broken_csv(delimiter))
    report = import_debts(sessions, source, today=TODAY, report_path=tmp_path / "rejected.csv")
    rejected = expected_rejections(delimiter)
    assert (report.read, report.created, report.updated, report.unchanged, len(report.rejected)) == (
        len(VALID) + len(rejected), len(VALID), 0, 0, len(rejected))
    assert [w.line for w in report.warnings] == [20]
    with open(tmp_path / "rejected.csv", encoding="utf-8-sig", newline="") as f:
        listed = list(csv.reader(f, delimiter=delimiter))
    assert listed[0] == ["line", "contract", "reasons", "original row"]
    assert [int(row[0]) for row in listed[1:]] == sorted(rejected)
    lines = broken_csv(delimiter).split("\n")
    for line, contract, reasons, raw in listed[1:]:
        assert reasons and raw == (lines[int(line) - 1] if int(line) != 23 else "\n".join(lines[22:24]))
        assert contract == raw.split(delimiter)[0]
    with sessions() as s:
        debts = {d.contract: d for d in s.scalars(select(Debt))}
        assert set(debts) == VALID
        ivanov = debts["K-1"].client
        assert debts["K-15"].client_id == ivanov.id  # the same name and number: the same debtor
        assert (ivanov.name, ivanov.kind, ivanov.time_zone, ivanov.debt_open) == (
            "Иванов Иван Иванович", "person", "Europe/Moscow", True)
        assert sorted(link.phone.e164 for link in ivanov.phone_links) == ["+73433001122", "+79161234567"]
        assert {link.status for link in ivanov.phone_links} == {"valid"}
        first = debts["K-1"]
        assert (first.principal, first.total_due, first.days_past_due, first.region, first.status,
                first.currency) == (
            Decimal("12500.50"), Decimal("13000.00"), 45, "Москва", "active", "RUB")
        assert debts["K-2"].client.name == HOSTILE and debts["K-2"].client.time_zone == "Asia/Yekaterinburg"
        assert (debts["K-14"].client.kind, debts["K-14"].client.time_zone) == ("company", "Asia/Vladivostok")
        assert debts["K-16"].client.time_zone == "" and debts["K-16"].region == "Республика Саха (Якутия)"


def test_reimport_is_a_no_op_and_a_changed_amount_updates(sessions: Sessions, tmp_path: Path) -> None:
    source = write(tmp_path, broken_csv(";"))
    import_debts(sessions, source, today=TODAY)
    before = counts(sessions)
    with sessions() as s:
        stamps = dict(s.execute(select(Debt.contract, Debt.updated_at)).all())
    again = import_debts(sessions, source, today=TODAY)
    assert (again.created, again.updated, again.unchanged) == (0, 0, len(VALID))
    assert counts(sessions) == before
    with sessions() as s:
        assert dict(s.execute(select(Debt.contract, Debt.updated_at)).all()) == stamps
    changed = write(tmp_path, broken_csv(";").replace("13 000", "13 100,10"), "changed.csv")
    third = import_debts(sessions, changed, today=TODAY)
    assert (third.created, third.updated, third.unchanged) == (0, 1, len(VALID) - 1)
    assert counts(sessions) == before
    with sessions() as s:
        assert s.scalar(select(Debt.total_due).where(Debt.contract == "K-1")) == Decimal("13100.10")


def test_phone_status_and_recorded_promise_survive_a_reimport(sessions: Sessions, tmp_path: Path) -> None:
    source = write(tmp_path, broken_csv(";"))
    import_debts(sessions, source, today=TODAY)
    with sessions.begin() as s:
        link = s.scalars(select(ClientPhone).join(Phone).where(Phone.e164 == "+79161234567")).one()
        link.status = "do_not_call"
        s.scalars(select(Debt).where(Debt.contract == "K-1")).one().status = "promised"
        s.scalars(select(Debt).where(Debt.contract == "K-2")).one().status = "disputed"
    rows = broken_csv(";").replace("2024;;\n", "2024;active;\n")  # K-2's row now says "active" outright
    assert "active" in rows.split("\n")[2]
    report = import_debts(sessions, write(tmp_path, rows, "again.csv"), today=TODAY)
    assert (report.created, report.updated) == (0, 0)
    with sessions() as s:
        status = s.scalars(select(ClientPhone.status).join(Phone).where(Phone.e164 == "+79161234567")).one()
        assert status == "do_not_call"
        assert dict(s.execute(select(Debt.contract, Debt.status).where(Debt.contract.in_(["K-1", "K-2"])))
                    .all()) == {"K-1": "promised", "K-2": "disputed"}


def test_paid_in_the_file_closes_the_debt_and_the_debtor_is_no_longer_open(sessions: Sessions,
                                                                           tmp_path: Path) -> None:
    header = ";".join(HEADER)
    import_debts(sessions, write(tmp_path, header + "\n" + ";".join(debt("P-1")) + "\n"), today=TODAY)
    paid = header + "\n" + ";".join(debt("P-1", status="paid")) + "\n"
    report = import_debts(sessions, write(tmp_path, paid, "paid.csv"), today=TODAY)
    assert report.updated == 1
    with sessions() as s:
        paid = s.scalars(select(Debt).where(Debt.contract == "P-1")).one()
        assert (paid.status, paid.client.debt_open) == ("paid", False)


def test_existing_client_matched_by_name_and_number_a_namesake_is_not(sessions: Sessions,
                                                                      tmp_path: Path) -> None:
    with sessions.begin() as s:
        known = Client(name="Иванов Иван Иванович", segment="vip", email="ivanov@example.ru")
        known.phone_links.append(ClientPhone(phone=Phone(e164="+79161234567", kind="mobile"), label="mobile"))
        namesake = Client(name="Иванов Иван Иванович")
        namesake.phone_links.append(ClientPhone(phone=Phone(e164="+79160000000", kind="mobile")))
        other = Client(name="Соседка Мария")  # shares the number but not the name
        s.add_all([known, namesake, other])
        s.flush()
        s.add(ClientPhone(client_id=other.id, phone_id=known.phone_links[0].phone.id))
        s.flush()
        known_id, namesake_id = known.id, namesake.id
    rows = [debt("M-1", phones="8 916 123 45 67", region="Тюменская обл.", email="new@example.ru"),
            debt("M-2", phones="+7 916 555-44-33")]
    import_debts(sessions, write(tmp_path, ";".join(HEADER) + "\n" + "\n".join(map(";".join, rows))),
                 today=TODAY)
    with sessions() as s:
        m1, m2 = (s.scalars(select(Debt).where(Debt.contract == c)).one() for c in ("M-1", "M-2"))
        assert m1.client_id == known_id
        assert (m1.client.segment, m1.client.email, m1.client.time_zone, m1.client.debt_open) == (
            "vip", "ivanov@example.ru", "Asia/Yekaterinburg", True)
        assert m2.client_id not in (known_id, namesake_id)  # same name, none of the numbers: a new debtor
        assert s.scalar(select(func.count()).select_from(Phone).where(Phone.e164 == "+79161234567")) == 1


def test_a_debtor_spelt_another_way_is_the_client_with_the_number(sessions: Sessions, tmp_path: Path) -> None:
    with sessions.begin() as s:
        known = Client(name="Фёдоров Артём Ильич")
        known.phone_links.append(ClientPhone(phone=Phone(e164="+79161234567", kind="mobile")))
        s.add(known)
        s.flush()
        known_id = known.id
    rows = [debt("F-1", "ФЕДОРОВ АРТЕМ ИЛЬИЧ", phones="8 916 123 45 67")]
    import_debts(sessions, write(tmp_path, ";".join(HEADER) + "\n" + "\n".join(map(";".join, rows))), today=TODAY)
    with sessions() as s:
        assert s.scalars(select(Debt).where(Debt.contract == "F-1")).one().client_id == known_id
        assert s.scalar(select(func.count()).select_from(Client)) == 1


@pytest.mark.parametrize("encoding", ["cp1251", "utf-8-sig", "utf-8"])
def test_excel_encodings_import_the_same_names(sessions: Sessions, tmp_path: Path, encoding: str) -> None:
    source = write(tmp_path, broken_csv(";").encode(encoding))
    report = import_debts(sessions, source, today=TODAY)
    assert report.encoding == encoding and report.created == len(VALID)
    with sessions() as s:
        assert set(s.scalars(select(Client.name))) == {"Иванов Иван Иванович", HOSTILE, "ООО «Ромашка»",
                                                       "Саргылана Иванова"}


def test_a_database_error_commits_nothing(sessions: Sessions, engine: Engine, tmp_path: Path) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER debts_boom BEFORE INSERT ON debts WHEN NEW.contract = 'BOOM' "
                              "BEGIN SELECT RAISE(ABORT, 'boom: refused by a trigger'); END"))
        else:
            conn.execute(text("CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN "
                              "IF NEW.contract = 'BOOM' THEN RAISE EXCEPTION 'boom: refused by a trigger'; "
                              "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER debts_boom BEFORE INSERT ON debts FOR EACH ROW "
                              "EXECUTE FUNCTION boom()"))
    rows = [debt(f"G-{n}", f"Должник {n}", phones=f"+7 916 000-00-{n:02d}") for n in range(10)]
    rows.append(debt("BOOM", "Последний"))
    progress: list[tuple[int, int]] = []
    source = write(tmp_path, ";".join(HEADER) + "\n" + "\n".join(map(";".join, rows)) + "\n")
    with pytest.raises(ImportFailed, match="boom: refused by a trigger"):
        import_debts(sessions, source, today=TODAY, progress=lambda d, t: progress.append((d, t)))
    assert progress and progress[-1][0] < 12  # rows were written (flushed) before the failing one
    assert counts(sessions) == {"Client": 0, "Phone": 0, "ClientPhone": 0, "Debt": 0}


def test_progress_at_least_every_percent_and_at_the_end(sessions: Sessions, tmp_path: Path) -> None:
    rows = [debt(f"P-{n}", f"Должник {n}", phones=f"+7 916 000-{n // 100:02d}-{n % 100:02d}",
                 principal="-1" if n % 50 == 0 else "100") for n in range(400)]
    source = write(tmp_path, ";".join(HEADER) + "\n" + "\n".join(map(";".join, rows)) + "\n")
    calls: list[tuple[int, int]] = []
    report = import_debts(sessions, source, today=TODAY, progress=lambda d, t: calls.append((d, t)))
    assert (report.created, len(report.rejected)) == (392, 8)
    assert calls[-1] == (401, 401) and {t for _, t in calls} == {401}
    done = [0] + [d for d, _ in calls]
    assert done == sorted(done) and max(b - a for a, b in zip(done, done[1:], strict=False)) <= 401 / 100


def _sample_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_debts_sample", SAMPLES / "make_debts_sample.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_sample_file_rejects_exactly_its_documented_bad_rows(sessions: Sessions) -> None:
    sample = _sample_module()
    path = SAMPLES / "debts_sample.csv"
    assert path.read_text(encoding="utf-8-sig").splitlines()[1:] == sample.rows(sample.random.Random(2024))
    report = import_debts(sessions, path)
    assert sorted(row.line for row in report.rejected) == sorted(sample.BAD)
    assert [w.line for w in report.warnings] == sorted(sample.WARNED)
    assert report.read == 200 == report.created + len(report.rejected)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Client)) < report.created  # some owe twice
        known = select(Client.time_zone).join(Debt).where(Debt.region != "Тридевятое царство")
        assert "" not in set(s.scalars(known))


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli_db(db_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CALLCARD_DATABASE_URL", db_url)
    monkeypatch.setenv("CALLCARD_DEFAULT_LANGUAGE", "en")
    return db_url


def test_cli_imports_prints_progress_and_the_report_path(cli_db: str, tmp_path: Path, sessions: Sessions,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path, broken_csv(";").replace("2024-07-01", "2999-07-01"))
    assert main(["campaign", "import", str(source), "--report", str(tmp_path / "bad.csv")]) == 0
    out, err = capsys.readouterr()
    rejected = len(expected_rejections(";"))
    read = len(VALID) + rejected
    assert f"read {read}, created {len(VALID)}, updated 0, unchanged 0, rejected {rejected}" in out
    assert f"{rejected} rejected row(s) with line numbers and reasons: {tmp_path / 'bad.csv'}" in out
    assert "import: 100% (24/24 lines)" in err and "\r" not in err  # not a terminal: plain lines
    assert "line 20: Республика Саха (Якутия) spans several time zones" in err
    assert (tmp_path / "bad.csv").read_text(encoding="utf-8-sig").count("\n") > rejected
    assert main(["campaign", "import", str(source)]) == 0  # the report defaults to debts.rejected.csv
    assert "unchanged 5" in capsys.readouterr().out and (tmp_path / "debts.rejected.csv").exists()
    assert counts(sessions)["Debt"] == len(VALID)


def test_cli_refuses_unreadable_and_broken_files_with_exit_2(cli_db: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "import", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = write(tmp_path, b"contract;creditor\n\xd0\x98\xd0\xb2\xd0\n\xd0\xb0\xd0\xbd\n", "broken.csv")
    assert main(["campaign", "import", str(broken)]) == 2
    assert "line 2 is not valid UTF-8" in capsys.readouterr().err
    assert main(["campaign", "import", str(write(tmp_path, "a,b\n1,2\n", "x.csv")), "--region", "XX"]) == 2
    assert "'XX' is not a country code" in capsys.readouterr().err


def test_cli_progress_is_a_bar_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = _ProgressPrinter(screen)
    for done in (1, 50, 100):
        bar(done, 100)
    assert screen.getvalue() == ("\r[                         ]   1%  1/100 lines"
                                 "\r[############             ]  50%  50/100 lines"
                                 "\r[#########################] 100%  100/100 lines\n")


# --- the upload page --------------------------------------------------------------------------------

PASSWORDS = {"op1": "op1-pass", "super1": "super1-pass", "admin1": "admin1-pass"}
ROLES = {"op1": "operator", "super1": "supervisor", "admin1": "admin"}


@cache
def password_hash(login: str) -> str:
    return hash_password(PASSWORDS[login])


class KeptLog(MemoryBus):
    """memory:// that also remembers every job state it was given, to check the bar's course."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[dict[str, Any]] = []

    async def keep(self, key: str, field: str, message: dict[str, Any], ttl: float) -> None:
        if field == "status":
            self.states.append(message)
        await super().keep(key, field, message, ttl)


@pytest.fixture(params=["memory", "redis"])
def web(request: pytest.FixtureRequest, sessions: Sessions) -> Iterator[Web]:
    with sessions.begin() as s:
        s.add_all([Operator(login=login, name=f"Name {login}", role=role, password_hash=password_hash(login))
                   for login, role in ROLES.items()])
    if request.param == "memory":
        bus: Any = KeptLog()
    else:
        require_service("Redis", "127.0.0.1", 6379)
        bus = RedisBus(REDIS_URL, prefix=f"callcard-test-{uuid.uuid4().hex[:8]}:")
    app = create_app(Settings(secret_key="test-secret", default_language="en"), sessions, bus)
    with TestClient(app) as http:
        yield http, bus
        http.portal.call(bus.close)  # type: ignore[union-attr]


def finished(http: TestClient, job_id: str, deadline: float = 30.0) -> dict[str, Any]:
    """Poll as the page does until the job is no longer running."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        status = http.get(f"/api/debt-imports/{job_id}").json()
        if status["state"] != "running":
            return status
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} still running after {deadline} s")


def test_operator_may_not_import(web: Web) -> None:
    http, _ = web
    csrf = log_in(http, "op1", PASSWORDS["op1"])
    assert http.get("/campaigns/import").status_code == 403
    refused = http.post("/api/debt-imports?name=d.csv", content=broken_csv(";").encode(),
                        headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert http.get("/api/debt-imports/" + "a" * 24).status_code == 403
    with http.app.state.desk.sessions() as s:  # type: ignore[attr-defined]
        audit = s.scalars(select(AuditEntry).where(AuditEntry.actor_login == "op1")).one()
        assert (audit.action, audit.target, audit.outcome) == ("forbidden", "/api/debt-imports", "refused")
        assert s.scalar(select(func.count()).select_from(Debt)) == 0


@pytest.mark.parametrize("who", ["super1", "admin1"])
def test_upload_runs_to_done_with_progress_and_the_report_downloads(web: Web, who: str) -> None:
    http, bus = web
    csrf = log_in(http, who, PASSWORDS[who])
    page = http.get("/campaigns/import")
    assert page.status_code == 200 and 'id="import-form"' in page.text
    assert 'href="/campaigns/import" aria-current="page"' in page.text  # the navigation's link
    assert http.post("/api/debt-imports", content=b"x").status_code == 403  # no CSRF header
    # the dates are checked against the real today here: a far past and a far future
    content = broken_csv(";").replace("2024-07-01", "2999-07-01")
    started = http.post("/api/debt-imports?name=долги <март>.csv", content=content.encode("cp1251"),
                        headers={"X-CSRF-Token": csrf, "Content-Type": "text/csv"})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    status = finished(http, job_id)
    rejected = expected_rejections(";")
    assert status["state"] == "done", status
    assert status["counts"] == {"read": len(VALID) + len(rejected), "created": len(VALID), "updated": 0,
                                "unchanged": 0, "rejected": len(rejected), "warnings": 1}
    assert status["encoding"] == "cp1251" and status["name"] == "долги _март_.csv"
    assert [row["line"] for row in status["rejected"]] == sorted(rejected)
    hostile = next(row for row in status["rejected"] if row["line"] == 15)
    assert HOSTILE in hostile["raw"] and hostile["reasons"]
    if isinstance(bus, KeptLog):
        running = [s for s in bus.states if s["state"] == "running" and s["total"]]
        assert running[-1]["done"] == running[-1]["total"] == 24
        assert [s["done"] for s in running] == sorted(s["done"] for s in running)
        assert bus.states[-1]["state"] == "done"
    report = http.get(f"/api/debt-imports/{job_id}/rejected.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert "filename*=UTF-8''%D0%B4%D0%BE%D0%BB%D0%B3%D0%B8%20_%D0%BC%D0%B0%D1%80%D1%82_.rejected.csv" in (
        report.headers["content-disposition"])
    listed = list(csv.reader(io.StringIO(report.content.decode("utf-8-sig")), delimiter=";"))
    assert [int(row[0]) for row in listed[1:]] == sorted(rejected)
    with http.app.state.desk.sessions() as s:  # type: ignore[attr-defined]
        assert set(s.scalars(select(Debt.contract))) == VALID
        actions = [(a.action, a.outcome) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
        assert actions == [("debt_import", "ok"), ("export", "ok")]


def test_a_broken_upload_fails_with_the_reason_and_imports_nothing(web: Web,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    http, _ = web
    csrf = log_in(http, "super1", PASSWORDS["super1"])
    headers = {"X-CSRF-Token": csrf}
    job = http.post("/api/debt-imports?name=x.csv", content=b"contract;creditor\n\xd0\x98\xd0\n",
                    headers=headers).json()["job_id"]
    status = finished(http, job)
    assert status["state"] == "failed" and "строка 2 — не UTF-8" in status["error"]  # the uploader's language
    assert http.get(f"/api/debt-imports/{job}/rejected.csv").status_code == 404
    assert http.get("/api/debt-imports/" + "b" * 24).status_code == 404
    monkeypatch.setattr(imports, "MAX_UPLOAD", 100)
    assert http.post("/api/debt-imports", content=b"x" * 101, headers=headers).status_code == 413
    with http.app.state.desk.sessions() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(Debt)) == 0
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "debt_import")).one()
        assert entry.outcome == "failed" and "UTF-8" in entry.error
