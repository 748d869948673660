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
                   delimiter is the same character); every one must be a valid number of the import's
                   country (RU by default), else the whole row is rejected so no number is dropped silently
    principal      amount, not negative: "12500", "12 500,50", "12500.5"
    total_due      amount above zero (it may be below the principal)
    currency       three letters (empty: RUB)
    days_past_due  whole days from 0, or instead
    due_date       YYYY-MM-DD or DD.MM.YYYY, a real date not in the future (days past due are counted
                   from it to today); when both are given they must agree
    status         active, promised, paid, disputed or closed (empty: active for a new debt, unchanged for
                   a known one; "active" does not undo a promise or a dispute the desk has recorded)
    email          optional

The delimiter (";", "," or tab) is taken from the header row; the encoding is UTF-8 with or without
a BOM, UTF-16 with a BOM, or Windows-1251 (Excel's "CSV" in Russia). A file in none of them, or UTF-8
with broken bytes, is refused with the line it breaks on rather than read as mojibake.

Text with control characters, with signs of an earlier wrong decoding ("РџРµС‚", "Mьller") or with
Latin look-alikes inside a Cyrillic name is refused too: it would never match the real debtor.

`decode_csv` and `parse_rows` touch no database and raise nothing but ImportFileError on any input,
so they can be fed arbitrary bytes. `import_debts` writes every valid row in one transaction: a
database error commits nothing. The debtor is the client with the same name and one of the row's
numbers, else a new client; Debt.region keeps the region's official name when it is known (so
campaign filters meet one spelling). Loading the same file twice changes nothing; a phone status the
CRM already holds (do_not_call, wrong_number, ...) is never changed by an import.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from crm_core.models import DEBT_STATUSES, OPEN_DEBT_STATUSES, Client, ClientPhone, Debt, Phone
from crm_core.phones import PhoneError, normalize_phone, phone_kind
from crm_core.regions import find_region

REQUIRED = ("contract", "creditor", "debtor", "region", "phones", "principal", "total_due")
OPTIONAL = ("kind", "currency", "days_past_due", "due_date", "status", "email")
COLUMNS = REQUIRED + OPTIONAL
KINDS = ("person", "company")
LIMITS = {"contract": 64, "creditor": 256, "debtor": 256, "region": 128, "email": 256}
MAX_PHONES = 10
MAX_DAYS = 36_500
MAX_AMOUNT = Decimal("1e12")  # Numeric(14, 2)
DELIMITERS = (";", ",", "\t")
BATCH = 500  # rows written per flush
Progress = Callable[[int, int], None]

# Header names people use for the same column (lower case, spaces and dashes as "_").
_ALIASES = {
    "contract_number": "contract", "договор": "contract", "номер_договора": "contract",
    "кредитор": "creditor", "name": "debtor", "должник": "debtor", "фио": "debtor", "тип": "kind",
    "регион": "region", "phone": "phones", "телефон": "phones", "телефоны": "phones",
    "основной_долг": "principal", "total": "total_due", "к_оплате": "total_due", "сумма_долга": "total_due",
    "валюта": "currency", "dpd": "days_past_due", "дней_просрочки": "days_past_due",
    "дата_платежа": "due_date", "статус": "status", "e_mail": "email", "почта": "email",
}
_AMOUNT = re.compile(r"([0-9]{1,3}(?: [0-9]{3})+|[0-9]+)(?:[.,]([0-9]{1,2}))?")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_RU_DATE = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")
_DAYS = re.compile(r"[0-9]{1,6}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# UTF-8 Cyrillic read as Windows-1251 ("РџРµС‚") or as Windows-1252 ("ÐŸÐµÑ‚"): two such pairs in a field
# mean it was garbled before it reached us.
_GARBLED = re.compile(
    "[РС][" + re.escape(bytes(range(0x80, 0xC0)).decode("cp1251", "ignore")) + "]"
    "|[ÐÑ][\u0080-\u00bf" + re.escape(bytes(range(0x80, 0xA0)).decode("cp1252", "ignore")) + "]"
)
_UTF8_CYRILLIC = re.compile(rb"[\xd0\xd1][\x80-\xbf]")
_ASCII = bytes(range(0x80))
_WORD = re.compile(r"[^\W\d_]+")
NAMES = ("creditor", "debtor", "region")  # a word of Latin and Cyrillic letters here: wrong encoding or fake

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        # file
        "empty": "the file is empty",
        "unreadable": "cannot read {path}: {error}",
        "xlsx": "this is an Excel workbook, not CSV: in Excel use Save As → CSV",
        "nul": "line {line} contains NUL bytes: this is not a CSV text file",
        "broken_utf8": "line {line} is not valid UTF-8 (byte 0x{byte}); the file looks like UTF-8 with "
                       "broken characters: save it again as UTF-8 or Windows-1251",
        "bad_utf16": "the file starts as UTF-16 but line {line} is broken",
        "unknown_encoding": "line {line} is neither UTF-8 nor Windows-1251 (byte 0x{byte}): save the file as "
                            "UTF-8 or Windows-1251",
        "no_header": "no header row: the first line must name the columns ({columns})",
        "unknown_columns": "unknown column(s) in the header: {names}; the columns are: {columns}",
        "duplicate_columns": "column {name} appears twice in the header",
        "missing_columns": "the header lacks column(s): {names}",
        "missing_days": "the header needs days_past_due or due_date",
        # rows
        "field_count": "{found} fields where the header has {expected}",
        "field_count_quote": "{found} fields where the header has {expected}: a quote (\") opened here is "
                             "not closed, so lines {line}–{last} were read as one row",
        "field_count_comma": "{found} fields where the header has {expected}: in a comma-separated file an "
                             "amount with a decimal comma or several phones must be in quotes",
        "csv": "cannot read the row as CSV: {error}",
        "required": "{column} is empty",
        "too_long": "{column} is longer than {max} characters",
        "control": "{column} contains control characters",
        "garbled": "{column} looks garbled by a wrong encoding: {value}",
        "lost_chars": "{column} contains \ufffd: characters were lost in an earlier conversion",
        "mixed_script": "{column}: \"{value}\" mixes Latin and Cyrillic letters (a wrong encoding, or "
                        "look-alike letters)",
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
        "no_phone": "no phone number",
        "too_many_phones": "more than {max} phone numbers",
        "bad_phone": "\"{value}\" is not a phone number (the row is rejected so no number is dropped "
                     "silently)",
        "foreign_phone": "{phone} is a number in {country}, not in {region}",
        "kind": "kind \"{value}\" is not person or company",
        "status": "status \"{value}\" is not one of {statuses}",
        "currency": "currency \"{value}\" is not a three-letter code such as RUB",
        "email": "email \"{value}\" is not an e-mail address",
        # warnings
        "region_empty": "no region: the debtor's local time will come from the phone number",
        "region_unknown": "region \"{value}\" is not one we know: the debtor's local time will come from the "
                          "phone number",
        "region_zones": "{value} spans several time zones: the debtor's local time will come from the phone "
                        "number",
        # report
        "col.line": "line", "col.contract": "contract", "col.reasons": "reasons", "col.raw": "original row",
    },
    "ru": {
        "empty": "файл пуст",
        "unreadable": "не удаётся прочитать {path}: {error}",
        "xlsx": "это книга Excel, а не CSV: в Excel выберите «Сохранить как» → CSV",
        "nul": "в строке {line} есть нулевые байты: это не текстовый CSV-файл",
        "broken_utf8": "строка {line} — не UTF-8 (байт 0x{byte}); похоже на UTF-8 с испорченными символами: "
                       "сохраните файл заново в UTF-8 или Windows-1251",
        "bad_utf16": "файл начинается как UTF-16, но строка {line} испорчена",
        "unknown_encoding": "строка {line} — ни UTF-8, ни Windows-1251 (байт 0x{byte}): сохраните файл "
                            "в UTF-8 или Windows-1251",
        "no_header": "нет строки заголовка: первая строка должна называть столбцы ({columns})",
        "unknown_columns": "неизвестные столбцы в заголовке: {names}; столбцы такие: {columns}",
        "duplicate_columns": "столбец {name} в заголовке дважды",
        "missing_columns": "в заголовке нет столбцов: {names}",
        "missing_days": "в заголовке нужен days_past_due или due_date",
        "field_count": "полей {found}, а в заголовке {expected}",
        "field_count_quote": "полей {found}, а в заголовке {expected}: открытая здесь кавычка (\") не "
                             "закрыта, и строки {line}–{last} прочитаны как одна",
        "field_count_comma": "полей {found}, а в заголовке {expected}: в файле с разделителем «,» сумму с "
                             "десятичной запятой или несколько телефонов нужно взять в кавычки",
        "csv": "строку не удаётся прочитать как CSV: {error}",
        "required": "{column}: пусто",
        "too_long": "{column}: длиннее {max} символов",
        "control": "{column}: есть управляющие символы",
        "garbled": "{column}: текст искажён неверной кодировкой: {value}",
        "lost_chars": "{column}: есть \ufffd — символы потеряны при прошлой перекодировке",
        "mixed_script": "{column}: в «{value}» смешаны латинские и русские буквы (неверная кодировка или "
                        "похожие буквы)",
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
        "no_phone": "нет номера телефона",
        "too_many_phones": "больше {max} номеров",
        "bad_phone": "«{value}» — не номер телефона (строка отклонена целиком, чтобы номер не пропал молча)",
        "foreign_phone": "{phone} — номер страны {country}, а не {region}",
        "kind": "kind: «{value}» — не person и не company",
        "status": "status: «{value}» — не один из {statuses}",
        "currency": "currency: «{value}» — не трёхбуквенный код вроде RUB",
        "email": "email: «{value}» — не адрес электронной почты",
        "region_empty": "регион не указан: местное время должника будет определяться по номеру телефона",
        "region_unknown": "регион «{value}» не распознан: местное время должника будет определяться по "
                          "номеру телефона",
        "region_zones": "{value} — несколько часовых поясов: местное время должника будет определяться по "
                        "номеру телефона",
        "col.line": "строка", "col.contract": "договор", "col.reasons": "причины",
        "col.raw": "исходная строка",
    },
}


def _text(lang: str, code: str, values: dict[str, Any]) -> str:
    catalog = TEXTS.get(lang, TEXTS["en"])
    return catalog.get(code, code).format(**values)


def _shown(value: str, limit: int = 60) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(frozen=True)
class Reason:
    """Why a row was refused or warned about: a code and its values, worded in ru or en on demand."""

    code: str
    values: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        return _text(lang, self.code, self.values)


class ImportFileError(ValueError):
    """The file as a whole cannot be read as a debt CSV (encoding, header); nothing was imported."""

    def __init__(self, code: str, **values: Any) -> None:
        self.reason = Reason(code, values)
        super().__init__(self.reason.text("en"))

    def text(self, lang: str = "en") -> str:
        return self.reason.text(lang)


class ImportFailed(RuntimeError):
    """The database refused the import; it was rolled back, nothing of the file was written."""


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


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it is, every reason, and the row as it was in the file."""

    line: int
    contract: str
    reasons: tuple[Reason, ...]
    raw: str

    def text(self, lang: str = "en") -> str:
        return "; ".join(reason.text(lang) for reason in self.reasons)


@dataclass(frozen=True)
class RowWarning:
    line: int
    contract: str
    reason: Reason


@dataclass
class ImportReport:
    """What one import did; read == created + updated + unchanged + len(rejected)."""

    name: str
    encoding: str = ""
    delimiter: str = ""
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)
    report_path: Path | None = None

    def counts(self) -> dict[str, int]:
        return {"read": self.read, "created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "rejected": len(self.rejected), "warnings": len(self.warnings)}


# --- decoding -------------------------------------------------------------------------------------


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_csv(data: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was in; ImportFileError when it is no text we can trust."""
    if not data.strip():
        raise ImportFileError("empty")
    if data.startswith(b"PK\x03\x04"):
        raise ImportFileError("xlsx")
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec), "utf-16"
            except UnicodeDecodeError as exc:
                raise ImportFileError("bad_utf16", line=data.count(b"\n\x00", 0, exc.start) + 1) from None
    if (nul := data.find(b"\x00")) >= 0:
        raise ImportFileError("nul", line=_line_of(data, nul))
    bom = data.startswith(codecs.BOM_UTF8)
    body = data[3:] if bom else data
    try:
        return body.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError as exc:
        bad = (exc.start + (3 if bom else 0), body[exc.start])
    high = len(body.translate(None, _ASCII))
    if bom or 4 * len(_UTF8_CYRILLIC.findall(body)) >= high:  # mostly UTF-8 Cyrillic pairs: broken UTF-8
        raise ImportFileError("broken_utf8", line=_line_of(data, bad[0]), byte=f"{bad[1]:02X}")
    try:
        return data.decode("cp1251"), "cp1251"
    except UnicodeDecodeError as exc:
        raise ImportFileError("unknown_encoding", line=_line_of(data, exc.start),
                              byte=f"{data[exc.start]:02X}") from None


# --- parsing --------------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    """Lines as csv reads them: ended by \n, \r\n or \r only (not by U+2028 and the like in a name)."""
    return list(io.StringIO(text, newline=""))


class _Lines:
    """Feeds csv.reader line by line and remembers which physical lines the current row took."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._ahead: list[str] = []
        self.number = 0
        self.taken: list[str] = []

    def header(self) -> str | None:
        """The first non-blank line, left to be read again."""
        for line in self._lines:
            self._ahead.append(line)
            if line.strip():
                return line
        return None

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._ahead.pop(0) if self._ahead else next(self._lines)
        self.number += 1
        self.taken.append(line)
        return line

    def raw(self) -> str:
        return "".join(self.taken).rstrip("\r\n")


def sniff_delimiter(header: str) -> str:
    """The delimiter that splits the header most often, counted outside quotes."""
    outside = re.sub(r'"[^"]*"', "", header)
    return max(DELIMITERS, key=outside.count)


def _columns(header: Sequence[str]) -> list[str]:
    names = []
    for cell in header:
        name = re.sub(r"[\s-]+", "_", cell.strip().lstrip("\ufeff").strip().lower())
        names.append(_ALIASES.get(name, name))
    if not any(names):
        raise ImportFileError("no_header", columns=", ".join(COLUMNS))
    unknown = [_shown(header[i].strip(), 40) for i, name in enumerate(names) if name not in COLUMNS]
    if unknown:
        if not set(names) & set(REQUIRED):
            raise ImportFileError("no_header", columns=", ".join(COLUMNS))
        raise ImportFileError("unknown_columns", names=", ".join(unknown), columns=", ".join(COLUMNS))
    for name in names:
        if names.count(name) > 1:
            raise ImportFileError("duplicate_columns", name=name)
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        raise ImportFileError("missing_columns", names=", ".join(missing))
    if "days_past_due" not in names and "due_date" not in names:
        raise ImportFileError("missing_days")
    return names


def parse_rows(source: str | Iterable[str], region: str = "RU",
               today: date | None = None) -> Iterator[DebtRow | RowError]:
    """Every data row of the CSV text as a DebtRow or a RowError (blank rows are skipped).

    `source` is the whole text or its lines with their line ends. The header is checked before the
    first row comes out (ImportFileError); `today` dates the due dates (default: the local date).
    """
    today = today or date.today()
    region = region.upper()
    lines = _Lines(_split(source) if isinstance(source, str) else source)
    header_line = lines.header()
    if header_line is None:
        raise ImportFileError("empty")
    delimiter = sniff_delimiter(header_line)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise ImportFileError("no_header", columns=", ".join(COLUMNS)) from exc
    columns = _columns(header)
    seen: dict[str, int] = {}
    while True:
        first = lines.number + 1
        lines.taken.clear()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(first, "", (Reason("csv", {"error": str(exc)}),), lines.raw())
            continue
        if not any(cell.strip() for cell in fields):
            continue
        yield _row(fields, columns, first, lines.number, lines.raw(), delimiter, seen, region, today)


def _row(fields: list[str], columns: list[str], line: int, last: int, raw: str, delimiter: str,
         seen: dict[str, int], region: str, today: date) -> DebtRow | RowError:
    if len(fields) != len(columns):
        code = ("field_count_quote" if last > line
                else "field_count_comma" if delimiter == "," else "field_count")
        values = {"found": len(fields), "expected": len(columns), "line": line, "last": last}
        at = columns.index("contract")
        contract = fields[at].strip() if len(fields) > at else ""
        return RowError(line, contract[:64], (Reason(code, values),), raw)
    cells = {name: " ".join(cell.translate(_SPACES).split()) if name != "phones" else cell.strip()
             for name, cell in zip(columns, fields, strict=True)}
    reasons: list[Reason] = []
    for name, value in cells.items():
        reasons += _text_problems(name, value)
    contract = cells["contract"]
    if contract:
        if contract in seen:
            reasons.append(Reason("duplicate", {"contract": _shown(contract), "first": seen[contract]}))
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
    phones = _phones(cells["phones"], region, reasons)
    kind = cells.get("kind", "").lower() or None
    if kind is not None and kind not in KINDS:
        reasons.append(Reason("kind", {"value": _shown(cells["kind"])}))
    status = cells.get("status", "").lower() or None
    if status is not None and status not in DEBT_STATUSES:
        reasons.append(Reason("status", {"value": _shown(cells["status"]),
                                         "statuses": ", ".join(DEBT_STATUSES)}))
    currency = (cells.get("currency", "") or "RUB").upper()
    currency = "RUB" if currency == "RUR" else currency
    if not re.fullmatch(r"[A-Z]{3}", currency):
        reasons.append(Reason("currency", {"value": _shown(cells["currency"])}))
    email = cells.get("email", "")
    # only within the length limit (too_long covers the rest): the pattern backtracks quadratically
    if email and len(email) <= LIMITS["email"] and not _EMAIL.fullmatch(email):
        reasons.append(Reason("email", {"value": _shown(email)}))
    if reasons:
        return RowError(line, contract[:64], tuple(reasons), raw)
    assert principal is not None and total_due is not None and days is not None
    name, zone, warning = _region(cells["region"], region)
    return DebtRow(line, contract, cells["creditor"], cells["debtor"], kind, name, zone, phones, principal,
                   total_due, currency, days, status, email, (warning,) if warning else ())


def _text_problems(name: str, value: str) -> list[Reason]:
    problems = []
    if name in LIMITS and len(value) > LIMITS[name]:
        problems.append(Reason("too_long", {"column": name, "max": LIMITS[name]}))
    if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI for ch in value):
        problems.append(Reason("control", {"column": name}))
    if "\ufffd" in value:
        problems.append(Reason("lost_chars", {"column": name}))
    elif _garbled_pairs(value) >= 2:
        problems.append(Reason("garbled", {"column": name, "value": _shown(value, 30)}))
    elif name in NAMES and (mixed := next((w for w in _WORD.findall(value) if _mixed_script(w)), None)):
        problems.append(Reason("mixed_script", {"column": name, "value": _shown(mixed, 30)}))
    return problems


def _garbled_pairs(value: str) -> int:
    """Pairs that are a modern Russian letter's UTF-8 bytes read as Windows-1251/1252 ("Рё" is "и");
    "Сё" would be U+0478, which no Russian text has, so "Сёма Сёмин" is a name, not mojibake."""
    count = 0
    for pair in _GARBLED.findall(value):
        for codec in ("cp1251", "cp1252"):
            try:
                letter = pair.encode(codec).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
            if "\u0410" <= letter <= "\u044f" or letter in "\u0401\u0451":
                count += 1
                break
    return count


def _mixed_script(word: str) -> bool:
    """Latin and Cyrillic letters in one word: "Mьller" (Latin-1 read as Windows-1251) or "Иванoв"
    with a Latin o, which would never match the real name."""
    return bool(re.search("[a-zA-Z]", word)) and bool(re.search("[а-яА-ЯёЁ]", word))


def _amount(column: str, text: str, reasons: list[Reason]) -> Decimal | None:
    if not text:
        reasons.append(Reason("required", {"column": column}))
        return None
    negative = text.startswith("-")
    found = _AMOUNT.fullmatch(text.lstrip("-").strip())
    if found is None:
        reasons.append(Reason("amount", {"column": column, "value": _shown(text)}))
        return None
    amount = Decimal(f"{found.group(1).replace(' ', '')}.{found.group(2) or '0'}")  # exact, any length
    if negative and amount:
        reasons.append(Reason("negative", {"column": column, "value": _shown(text)}))
        return None
    if amount >= MAX_AMOUNT:  # before quantize(), which raises InvalidOperation past 28 digits
        reasons.append(Reason("too_big", {"column": column, "value": _shown(text)}))
        return None
    return amount.quantize(Decimal("0.01"))


def _due_date(text: str, reasons: list[Reason]) -> date | None:
    iso, dotted = _ISO_DATE.fullmatch(text), _RU_DATE.fullmatch(text)
    if iso is None and dotted is None:
        reasons.append(Reason("date", {"value": _shown(text)}))
        return None
    parts = iso.groups() if iso else reversed(dotted.groups())  # type: ignore[union-attr]
    year, month, day = map(int, parts)
    try:
        return date(year, month, day)
    except ValueError:
        reasons.append(Reason("no_such_date", {"value": _shown(text)}))
        return None


def _days_past_due(days_text: str, due_text: str, today: date, reasons: list[Reason]) -> int | None:
    days = None
    if days_text:
        if _DAYS.fullmatch(days_text) and int(days_text) <= MAX_DAYS:
            days = int(days_text)
        else:
            reasons.append(Reason("days", {"value": _shown(days_text), "max": MAX_DAYS}))
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


def _phones(text: str, region: str, reasons: list[Reason]) -> tuple[str, ...]:
    parts = [part.strip() for part in re.split(r"[;,]", text) if part.strip()]
    if not parts:
        reasons.append(Reason("no_phone"))
        return ()
    if len(parts) > MAX_PHONES:
        reasons.append(Reason("too_many_phones", {"max": MAX_PHONES}))
        return ()
    numbers: list[str] = []
    for part in parts:
        try:
            e164 = normalize_phone(part, region)
        except PhoneError:
            reasons.append(Reason("bad_phone", {"value": _shown(part, 40)}))
            continue
        country = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
        if country != region:
            reasons.append(Reason("foreign_phone",
                                  {"phone": e164, "country": country or "?", "region": region}))
        elif e164 not in numbers:
            numbers.append(e164)
    return tuple(numbers)


def _region(text: str, country: str) -> tuple[str, str | None, Reason | None]:
    """(the name to store, its time zone, a warning when the debtor's local time stays unknown)."""
    if country != "RU":
        return text, None, None
    if not text:
        return "", None, Reason("region_empty")
    found = find_region(text)
    if found is None:
        return text, None, Reason("region_unknown", {"value": _shown(text)})
    if found.time_zone is None:
        return found.name, None, Reason("region_zones", {"value": found.name})
    return found.name, found.time_zone, None


# --- the report of rejected rows ------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def rejected_csv(rejected: Iterable[RowError], lang: str = "en", delimiter: str = ",") -> bytes:
    """The rejected rows for Excel: UTF-8 with a BOM, the source's delimiter, formula-safe cells."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter if delimiter in DELIMITERS else ",", lineterminator="\r\n")
    writer.writerow([_text(lang, f"col.{name}", {}) for name in ("line", "contract", "reasons", "raw")])
    for row in rejected:
        writer.writerow([row.line, *(_safe(v) for v in (row.contract, row.text(lang), row.raw))])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def _safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


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
    """Read, check and upsert a debt CSV (a path or its bytes) in one transaction.

    `progress(done_lines, total_lines)` is called at least every 1 % of the file and once at the
    end, after the commit. The rejected rows go to `report_path` (written whenever the file was read,
    header only when nothing was rejected). Raises ImportFileError for an unreadable file and
    ImportFailed when the database refuses: then nothing is written.
    """
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a country code phonenumbers knows (RU, KZ, US, ...)")
    if isinstance(source, bytes):
        data = source
    else:
        name = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ImportFileError("unreadable", path=str(source), error=exc.strerror or str(exc)) from None
    report = ImportReport(name=name or "upload")
    text, report.encoding = decode_csv(data)
    lines = _split(text)
    total = len(lines)
    step = max(1, total // 100)
    rows = parse_rows(lines, region, today)
    first = next(rows, None)  # the header is checked here, before anything is written
    report.delimiter = sniff_delimiter(next(line for line in lines if line.strip()))
    if report_path is not None:  # an unwritable report must stop the import before it writes anything
        report.report_path = Path(report_path)
        report.report_path.write_bytes(b"")
    try:
        with sessions.begin() as session:
            writer = _Writer(session, report)
            batch: list[DebtRow] = []
            reported = 0
            for item in itertools.chain([first] if first is not None else [], rows):
                report.read += 1
                if isinstance(item, RowError):
                    report.rejected.append(item)
                else:
                    batch.append(item)
                    report.warnings += [RowWarning(item.line, item.contract, w) for w in item.warnings]
                if item.line - reported >= step:  # written before it is reported
                    writer.write(batch)
                    batch = []
                    reported = item.line
                    if progress is not None:
                        progress(item.line, total)
                elif len(batch) >= BATCH:
                    writer.write(batch)
                    batch = []
            writer.write(batch)
            writer.finish()
    except SQLAlchemyError as exc:
        raise ImportFailed(f"the database refused the import, nothing was written: {exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0][:300]}") from exc
    if report.report_path is not None:
        report.report_path.write_bytes(rejected_csv(report.rejected, lang, report.delimiter))
    if progress is not None:
        progress(total, total)
    return report


class _Writer:
    """Upserts batches of valid rows inside the caller's transaction, keeping what it looked up."""

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
        numbers = sorted({e164 for row in rows for e164 in row.phones})
        phones = {p.e164: p for p in session.scalars(select(Phone).where(Phone.e164.in_(numbers)))}
        for e164 in numbers:
            if e164 not in phones:
                phones[e164] = Phone(e164=e164, kind=phone_kind(e164))
                session.add(phones[e164])
        links = session.execute(
            select(Client, Phone.e164).join(ClientPhone, ClientPhone.client_id == Client.id)
            .join(Phone, ClientPhone.phone_id == Phone.id).where(Phone.e164.in_(numbers)).order_by(Client.id)
        ).all()
        owners: dict[tuple[str, str], Client] = {}
        linked: set[tuple[Client, str]] = set()
        for client, e164 in links:
            owners.setdefault((client.name, e164), client)
            linked.add((client, e164))
        for row in rows:
            changed = False
            client = next((owners[(row.debtor, e)] for e in row.phones if (row.debtor, e) in owners), None)
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
                owners.setdefault((row.debtor, e164), client)
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
