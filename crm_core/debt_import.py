"""Debt import from CSV: a pure parser that checks every row, and an idempotent upsert by contract.

The file (a header row, then one debt per row; columns in any order):

    contract       required, unique in the file (up to 64 characters); the import's key
    creditor       required
    debtor         required: the debtor's full name (or the company's name)
    kind           person or company, for a debtor not yet known (empty: person)
    region         the debtor's address region ("Москва", "Свердловская обл.", "66", ...): it sets the
                   debtor's local time for the collection-law guard (crm_core.regions); empty or
                   unknown: local time from the phone number, and the row gets a warning
    phones         one or more numbers separated by ";" or "," (quote the field when the file's own
                   delimiter is the same character), or by spaces when each starts with "+"; every one
                   must be a valid number of the import's country (RU by default), else the whole row
                   is rejected so no number is dropped silently
    principal      amount, not negative: "12500", "12 500,50", "12500.5"
    total_due      amount above zero (it may be below the principal)
    currency       three letters (empty: RUB)
    days_past_due  whole days from 0, or instead
    due_date       YYYY-MM-DD or DD.MM.YYYY, a real date not in the future (days past due are counted
                   from it to today); when both are given they must agree
    status         active, promised, paid, disputed or closed (empty: active for a new debt, unchanged for
                   a known one; "active" does not undo a promise or a dispute the desk has recorded)
    email          optional

Encodings, delimiters, refused text and the one transaction are crm_core.csv_import's, as for the
client-base import. `parse_rows` touches no database and raises nothing but ImportFileError on any
input, so it can be fed arbitrary bytes. The debtor is the client with the same name and one of the
row's numbers, else a new client; Debt.region keeps the region's official name when it is known (so
campaign filters meet one spelling). Loading the same file twice changes nothing; a phone status the
CRM already holds (do_not_call, wrong_number, ...) is never changed by an import.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_core.csv_import import (
    BATCH,
    Fields,
    Header,
    ImportFileError,
    ImportReport,
    Progress,
    Reason,
    RowError,
    add_texts,
    country,
    email_problem,
    import_file,
    numbers_and_holders,
    phones,
    read_rows,
    shown,
    text_problems,
    tidy,
)
from crm_core.models import DEBT_STATUSES, OPEN_DEBT_STATUSES, Client, ClientPhone, Debt, name_key
from crm_core.regions import find_region

REQUIRED = ("contract", "creditor", "debtor", "region", "phones", "principal", "total_due")
OPTIONAL = ("kind", "currency", "days_past_due", "due_date", "status", "email")
COLUMNS = REQUIRED + OPTIONAL
KINDS = ("person", "company")
LIMITS = {"contract": 64, "creditor": 256, "debtor": 256, "region": 128, "email": 256}
MAX_DAYS = 36_500
MAX_AMOUNT = Decimal("1e12")  # Numeric(14, 2)
NAMES = ("creditor", "debtor", "region")  # a word of Latin and Cyrillic letters here: wrong encoding or fake
HEADER = Header(COLUMNS, REQUIRED, {  # header names people use for the same column
    "contract_number": "contract", "договор": "contract", "номер_договора": "contract",
    "кредитор": "creditor", "name": "debtor", "должник": "debtor", "фио": "debtor", "тип": "kind",
    "регион": "region", "phone": "phones", "телефон": "phones", "телефоны": "phones",
    "основной_долг": "principal", "total": "total_due", "к_оплате": "total_due", "сумма_долга": "total_due",
    "валюта": "currency", "dpd": "days_past_due", "дней_просрочки": "days_past_due",
    "дата_платежа": "due_date", "статус": "status", "e_mail": "email", "почта": "email",
}, key="contract")
_AMOUNT = re.compile(r"([0-9]{1,3}(?: [0-9]{3})+|[0-9]+)(?:[.,]([0-9]{1,2}))?")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_RU_DATE = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")
_DAYS = re.compile(r"[0-9]{1,6}")

add_texts({
    "en": {
        "missing_days": "the header needs days_past_due or due_date",
        "duplicate": "contract {contract} already appears on line {first}",
        "amount": "{column} \"{value}\" is not an amount (digits, \".\" or \",\" before at most two "
                  "decimals, spaces only between thousands)",
        "negative": "{column} is negative: {value}",
        "too_big": "{column} is too large: {value}",
        "not_positive": "total_due must be above zero",
        "days": "days_past_due \"{value}\" is not a whole number of days from 0 to {max}",
        "date": "due_date \"{value}\" is not a date (YYYY-MM-DD or DD.MM.YYYY)",
        "no_such_date": "due_date {value} does not exist",
        "future": "due_date {value} is in the future",
        "too_old": "due_date {value} is more than {max} days ago",
        "days_mismatch": "days_past_due {days} disagrees with due_date {value} ({computed} days past due "
                         "today): give one of them",
        "no_days": "days_past_due or due_date is required",
        "status": "status \"{value}\" is not one of {statuses}",
        "currency": "currency \"{value}\" is not a three-letter code such as RUB",
        "region_empty": "no region: the debtor's local time will come from the phone number",
        "region_unknown": "region \"{value}\" is not one we know: the debtor's local time will come from the "
                          "phone number",
        "region_zones": "{value} spans several time zones: the debtor's local time will come from the phone "
                        "number",
        "col.contract": "contract",
    },
    "ru": {
        "missing_days": "в заголовке нужен days_past_due или due_date",
        "duplicate": "договор {contract} уже есть в строке {first}",
        "amount": "{column}: «{value}» — не сумма (цифры, «.» или «,» и не больше двух знаков после неё, "
                  "пробелы только между тысячами)",
        "negative": "{column}: отрицательная сумма {value}",
        "too_big": "{column}: слишком большая сумма {value}",
        "not_positive": "total_due должна быть больше нуля",
        "days": "days_past_due: «{value}» — не целое число дней от 0 до {max}",
        "date": "due_date: «{value}» — не дата (ГГГГ-ММ-ДД или ДД.ММ.ГГГГ)",
        "no_such_date": "due_date: даты {value} не существует",
        "future": "due_date: {value} — дата в будущем",
        "too_old": "due_date: {value} — больше {max} дней назад",
        "days_mismatch": "days_past_due {days} не сходится с due_date {value} (сегодня это {computed} дн. "
                         "просрочки): укажите что-то одно",
        "no_days": "нужен days_past_due или due_date",
        "status": "status: «{value}» — не один из {statuses}",
        "currency": "currency: «{value}» — не трёхбуквенный код вроде RUB",
        "region_empty": "регион не указан: местное время должника будет определяться по номеру телефона",
        "region_unknown": "регион «{value}» не распознан: местное время должника будет определяться по "
                          "номеру телефона",
        "region_zones": "{value} — несколько часовых поясов: местное время должника будет определяться по "
                        "номеру телефона",
        "col.contract": "договор",
    },
})


@dataclass(frozen=True)
class DebtRow:
    """One valid row, typed: phones in E.164, the region by its official name when known."""

    line: int
    contract: str
    creditor: str
    debtor: str
    kind: str | None  # None: not given
    region: str
    time_zone: str | None  # from the region; None: the guard takes it from the number
    phones: tuple[str, ...]
    principal: Decimal
    total_due: Decimal
    currency: str
    days_past_due: int
    status: str | None  # None: not given
    email: str
    warnings: tuple[Reason, ...] = ()

    @property
    def key(self) -> str:
        return self.contract


def parse_rows(source: str | Iterable[str], region: str = "RU",
               today: date | None = None) -> Iterator[DebtRow | RowError]:
    """Every data row of the CSV text as a DebtRow or a RowError (blank rows are skipped).

    `source` is the whole text or its lines with their line ends. The header is checked before the
    first row comes out (ImportFileError); `today` dates the due dates (default: the local date).
    """
    today = today or date.today()
    region = region.upper()
    seen: dict[str, int] = {}
    for item in read_rows(source, HEADER, _needs_days):
        yield item if isinstance(item, RowError) else _row(item, seen, region, today)


def _needs_days(columns: list[str]) -> None:
    if "days_past_due" not in columns and "due_date" not in columns:
        raise ImportFileError("missing_days")


def _row(fields: Fields, seen: dict[str, int], region: str, today: date) -> DebtRow | RowError:
    line = fields.line
    cells = {name: tidy(cell) if name != "phones" else cell.strip() for name, cell in fields.cells.items()}
    reasons: list[Reason] = []
    for name, value in cells.items():
        reasons += text_problems(name, value, LIMITS, NAMES)
    contract = cells["contract"]
    if contract:
        if contract in seen:
            reasons.append(Reason("duplicate", {"contract": shown(contract), "first": seen[contract]}))
        else:
            seen[contract] = line
    for name in ("contract", "creditor", "debtor"):
        if not cells[name]:
            reasons.append(Reason("required", {"column": name}))
    principal = _amount("principal", cells["principal"], reasons)
    total_due = _amount("total_due", cells["total_due"], reasons)
    if total_due is not None and total_due <= 0:
        reasons.append(Reason("not_positive"))
    days = _days_past_due(cells.get("days_past_due", ""), cells.get("due_date", ""), today, reasons)
    numbers = phones(cells["phones"], region, reasons)
    kind = cells.get("kind", "").lower() or None
    if kind is not None and kind not in KINDS:
        reasons.append(Reason("kind", {"value": shown(cells["kind"])}))
    status = cells.get("status", "").lower() or None
    if status is not None and status not in DEBT_STATUSES:
        reasons.append(Reason("status", {"value": shown(cells["status"]),
                                         "statuses": ", ".join(DEBT_STATUSES)}))
    currency = (cells.get("currency", "") or "RUB").upper()
    currency = "RUB" if currency == "RUR" else currency
    if not re.fullmatch(r"[A-Z]{3}", currency):
        reasons.append(Reason("currency", {"value": shown(cells["currency"])}))
    email = cells.get("email", "")
    if problem := email_problem(email, LIMITS["email"]):
        reasons.append(problem)
    if reasons:
        return RowError(line, contract[:64], tuple(reasons), fields.raw)
    assert principal is not None and total_due is not None and days is not None
    name, zone, warning = _region(cells["region"], region)
    return DebtRow(line, contract, cells["creditor"], cells["debtor"], kind, name, zone, numbers, principal,
                   total_due, currency, days, status, email, (warning,) if warning else ())


def _amount(column: str, text: str, reasons: list[Reason]) -> Decimal | None:
    if not text:
        reasons.append(Reason("required", {"column": column}))
        return None
    negative = text.startswith("-")
    found = _AMOUNT.fullmatch(text.lstrip("-").strip())
    if found is None:
        reasons.append(Reason("amount", {"column": column, "value": shown(text)}))
        return None
    amount = Decimal(f"{found.group(1).replace(' ', '')}.{found.group(2) or '0'}")  # exact, any length
    if negative and amount:
        reasons.append(Reason("negative", {"column": column, "value": shown(text)}))
        return None
    if amount >= MAX_AMOUNT:  # before quantize(), which raises InvalidOperation past 28 digits
        reasons.append(Reason("too_big", {"column": column, "value": shown(text)}))
        return None
    return amount.quantize(Decimal("0.01"))


def _due_date(text: str, reasons: list[Reason]) -> date | None:
    iso, dotted = _ISO_DATE.fullmatch(text), _RU_DATE.fullmatch(text)
    if iso is None and dotted is None:
        reasons.append(Reason("date", {"value": shown(text)}))
        return None
    parts = iso.groups() if iso else reversed(dotted.groups())  # type: ignore[union-attr]
    year, month, day = map(int, parts)
    try:
        return date(year, month, day)
    except ValueError:
        reasons.append(Reason("no_such_date", {"value": shown(text)}))
        return None


def _days_past_due(days_text: str, due_text: str, today: date, reasons: list[Reason]) -> int | None:
    days = None
    if days_text:
        if _DAYS.fullmatch(days_text) and int(days_text) <= MAX_DAYS:
            days = int(days_text)
        else:
            reasons.append(Reason("days", {"value": shown(days_text), "max": MAX_DAYS}))
            return None
    if due_text:
        due = _due_date(due_text, reasons)
        if due is None:
            return None
        if due > today:
            reasons.append(Reason("future", {"value": due_text}))
            return None
        computed = (today - due).days
        if computed > MAX_DAYS:
            reasons.append(Reason("too_old", {"value": due_text, "max": MAX_DAYS}))
            return None
        if days is not None and days != computed:
            reasons.append(Reason("days_mismatch", {"days": days, "value": due_text, "computed": computed}))
            return None
        return computed
    if days is None:
        reasons.append(Reason("no_days"))
    return days


def _region(text: str, country: str) -> tuple[str, str | None, Reason | None]:
    """(the name to store, its time zone, a warning when the debtor's local time stays unknown)."""
    if country != "RU":
        return text, None, None
    if not text:
        return "", None, Reason("region_empty")
    found = find_region(text)
    if found is None:
        return text, None, Reason("region_unknown", {"value": shown(text)})
    if found.time_zone is None:
        return found.name, None, Reason("region_zones", {"value": found.name})
    return found.name, found.time_zone, None


# --- the database import --------------------------------------------------------------------------


def import_debts(
    sessions: sessionmaker[Session],
    source: str | Path | bytes,
    *,
    region: str = "RU",
    progress: Progress | None = None,
    report_path: str | Path | None = None,
    today: date | None = None,
    lang: str = "en",
    name: str = "",
) -> ImportReport:
    """Read, check and upsert a debt CSV (a path or its bytes) in one transaction (see
    crm_core.csv_import.import_file for the progress, the report and the errors)."""
    region = country(region)
    return import_file(sessions, source, name, lambda lines: parse_rows(lines, region, today), _Writer,
                       key="col.contract", progress=progress, report_path=report_path, lang=lang)


class _Writer:
    """Upserts batches of valid rows inside the caller's transaction, keeping what it looked up."""

    TABLES = ("clients", "phones", "client_phones", "debts")

    def __init__(self, session: Session, report: ImportReport) -> None:
        self.session = session
        self.report = report
        self.touched: set[int] = set()  # clients whose debt_open may have changed
        self.new_clients: list[Client] = []

    def write(self, rows: list[DebtRow]) -> None:
        if not rows:
            return
        session = self.session
        contracts = [row.contract for row in rows]
        debts = {d.contract: d for d in session.scalars(select(Debt).where(Debt.contract.in_(contracts)))}
        phones, holders = numbers_and_holders(session, (e164 for row in rows for e164 in row.phones))
        owners: dict[tuple[str, str], Client] = {}
        linked: set[tuple[Client, str]] = set()
        for e164, clients in holders.items():
            for client in clients:
                owners.setdefault((client.name_key, e164), client)
                linked.add((client, e164))
        for row in rows:
            changed = False
            key = name_key(row.debtor)  # "Петров Иван" owes on the card of "иван петров"
            client = next((owners[(key, e)] for e in row.phones if (key, e) in owners), None)
            if client is None:
                client = Client(name=row.debtor, kind=row.kind or "person", email=row.email,
                                time_zone=row.time_zone or "")
                session.add(client)
                self.new_clients.append(client)
                changed = True
            else:
                if row.time_zone and client.time_zone != row.time_zone:
                    client.time_zone = row.time_zone
                    changed = True
                if row.email and not client.email:
                    client.email = row.email
                    changed = True
                self.touched.add(client.id)
            for e164 in row.phones:
                owners.setdefault((key, e164), client)
                if (client, e164) not in linked:
                    session.add(ClientPhone(client=client, phone=phones[e164]))
                    linked.add((client, e164))
                    changed = True
            debt = debts.get(row.contract)
            if debt is None:
                debt = Debt(client=client, contract=row.contract, **_debt_fields(row, None))
                session.add(debt)
                debts[row.contract] = debt
                self.report.created += 1
                continue
            if debt.client_id != client.id:  # a new client has no id yet
                self.touched.add(debt.client_id)
                debt.client = client
                changed = True
            for attribute, value in _debt_fields(row, debt.status).items():
                if getattr(debt, attribute) != value:
                    setattr(debt, attribute, value)
                    changed = True
            if changed:
                self.report.updated += 1
            else:
                self.report.unchanged += 1
        session.flush()

    def finish(self) -> None:
        """Client.debt_open follows whether an open debt exists, for every client the file touched."""
        session = self.session
        session.flush()
        ids = sorted(self.touched | {c.id for c in self.new_clients})
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            open_ids = set(session.scalars(select(Debt.client_id).where(
                Debt.client_id.in_(chunk), Debt.status.in_(OPEN_DEBT_STATUSES)).distinct()))
            for client in session.scalars(select(Client).where(Client.id.in_(chunk))):
                if client.debt_open != (client.id in open_ids):
                    client.debt_open = client.id in open_ids
        session.flush()


def _debt_fields(row: DebtRow, current_status: str | None) -> dict[str, Any]:
    """The debt's columns from the row. A file's "active" keeps a promise or dispute the desk recorded:
    to the creditor both are still active, and losing them would let the dialler call too soon."""
    status = row.status or current_status or "active"
    if row.status == "active" and current_status in ("promised", "disputed"):
        status = current_status
    return {"creditor": row.creditor, "principal": row.principal, "total_due": row.total_due,
            "currency": row.currency, "days_past_due": row.days_past_due, "region": row.region,
            "status": status}
