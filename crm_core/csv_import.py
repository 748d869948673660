"""Reading a CSV that people made in Excel, row by row, and importing it in one transaction.

Shared by the debt import (crm_core.debt_import) and the client-base import
(crm_core.client_import): each of them names its columns and turns a row's cells into a typed
row or a RowError; this module does the rest the same way for both.

The delimiter (";", "," or tab) is taken from the header row; the encoding is UTF-8 with or without
a BOM, UTF-16 with a BOM, or Windows-1251 (Excel's "CSV" in Russia). A file in none of them, or UTF-8
with broken bytes, is refused with the line it breaks on rather than read as mojibake. Text with
control characters, with signs of an earlier wrong decoding ("РџРµС‚", "Mьller") or with Latin
look-alikes inside a Cyrillic name is refused too: it would never match the real person.

`decode_csv` and `read_rows` touch no database and raise nothing but ImportFileError on any input.
`import_file` writes every valid row in one transaction: a database error commits nothing.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import phonenumbers
from sqlalchemy import select
from sqlalchemy import text as sql
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from crm_core.models import Client, ClientPhone, Phone
from crm_core.phones import PhoneError, normalize_phone, phone_kind

log = logging.getLogger(__name__)

DELIMITERS = (";", ",", "\t")
BATCH = 500  # rows written per flush
MAX_PHONES = 10
Progress = Callable[[int, int], None]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE_SPLIT = re.compile(r"[;,]|\s+(?=\+)")  # "a; b", "a, b", and "+7… +7…" as callcard's own export writes
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
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

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
        "no_phone": "no phone number",
        "too_many_phones": "more than {max} phone numbers",
        "bad_phone": "\"{value}\" is not a phone number (the row is rejected so no number is dropped "
                     "silently)",
        "foreign_phone": "{phone} is a number in {country}, not in {region}",
        "kind": "kind \"{value}\" is not person or company",
        "email": "email \"{value}\" is not an e-mail address",
        # report
        "col.line": "line", "col.reasons": "reasons", "col.raw": "original row",
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
        "no_phone": "нет номера телефона",
        "too_many_phones": "больше {max} номеров",
        "bad_phone": "«{value}» — не номер телефона (строка отклонена целиком, чтобы номер не пропал молча)",
        "foreign_phone": "{phone} — номер страны {country}, а не {region}",
        "kind": "kind: «{value}» — не person и не company",
        "email": "email: «{value}» — не адрес электронной почты",
        "col.line": "строка", "col.reasons": "причины", "col.raw": "исходная строка",
    },
}


def add_texts(more: Mapping[str, Mapping[str, str]]) -> None:
    """An import's own messages, added once at its import; a code may not mean two things."""
    for lang, texts in more.items():
        catalog = TEXTS.setdefault(lang, {})
        clash = [code for code, text in texts.items() if catalog.get(code, text) != text]
        assert not clash, f"message codes defined twice: {clash}"
        catalog.update(texts)


def _text(lang: str, code: str, values: Mapping[str, Any]) -> str:
    catalog = TEXTS.get(lang, TEXTS["en"])
    return catalog.get(code, TEXTS["en"].get(code, code)).format(**values)


def shown(value: str, limit: int = 60) -> str:
    """A value quoted in a message, cut to `limit` characters."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(frozen=True)
class Reason:
    """Why a row was refused or warned about: a code and its values, worded in ru or en on demand."""

    code: str
    values: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        return _text(lang, self.code, self.values)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (encoding, header); nothing was imported."""

    def __init__(self, code: str, **values: Any) -> None:
        self.reason = Reason(code, values)
        super().__init__(self.reason.text("en"))

    def text(self, lang: str = "en") -> str:
        return self.reason.text(lang)


class ImportFailed(RuntimeError):
    """The database refused the import; it was rolled back, nothing of the file was written."""


@dataclass(frozen=True)
class RowError:
    """A rejected row: where it is, its key (a contract, a name), every reason, the row as it was."""

    line: int
    key: str
    reasons: tuple[Reason, ...]
    raw: str

    def text(self, lang: str = "en") -> str:
        return "; ".join(reason.text(lang) for reason in self.reasons)


@dataclass(frozen=True)
class RowWarning:
    line: int
    key: str
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


def country(region: str) -> str:
    """The numbers' country, upper case, as phonenumbers knows it; ValueError for any other."""
    region = region.upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a country code phonenumbers knows (RU, KZ, US, ...)")
    return region


def read_source(source: str | Path | bytes, name: str = "") -> tuple[bytes, str]:
    """The bytes of a path or of an upload, and the name the report gives it."""
    if isinstance(source, bytes):
        return source, name or "upload"
    try:
        return Path(source).read_bytes(), name or str(source)
    except OSError as exc:
        raise ImportFileError("unreadable", path=str(source), error=exc.strerror or str(exc)) from None


# --- parsing --------------------------------------------------------------------------------------


def _lines_of(text: str) -> Iterator[str]:
    """Lines as csv reads them, ended by \n, \r\n or \r only (not by U+2028 and the like in a name),
    one at a time: io.StringIO would first copy the whole text at four bytes a character."""
    return (found.group() for found in _LINE.finditer(text))


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


@dataclass(frozen=True)
class Header:
    """What one kind of file may hold: its columns, those it needs, and other names people give them
    (lower case, spaces and dashes as "_")."""

    columns: tuple[str, ...]
    required: tuple[str, ...]
    aliases: Mapping[str, str]
    key: str  # the column that names a row in the report

    def names(self, cells: Sequence[str]) -> list[str]:
        """The column of each header cell; ImportFileError for an unknown, repeated or missing one."""
        names = []
        for cell in cells:
            name = re.sub(r"[\s-]+", "_", cell.strip().lstrip("\ufeff").strip().lower())
            names.append(self.aliases.get(name, name))
        if not any(names):
            raise ImportFileError("no_header", columns=", ".join(self.columns))
        unknown = [shown(cells[i].strip(), 40) for i, name in enumerate(names) if name not in self.columns]
        if unknown:
            if not set(names) & set(self.required):
                raise ImportFileError("no_header", columns=", ".join(self.columns))
            raise ImportFileError("unknown_columns", names=", ".join(unknown), columns=", ".join(self.columns))
        for name in names:
            if names.count(name) > 1:
                raise ImportFileError("duplicate_columns", name=name)
        missing = [name for name in self.required if name not in names]
        if missing:
            raise ImportFileError("missing_columns", names=", ".join(missing))
        return names


@dataclass(frozen=True)
class Fields:
    """One data row's cells by column, with where it stands in the file."""

    line: int
    cells: dict[str, str]
    raw: str


def read_rows(source: str | Iterable[str], header: Header,
              check: Callable[[list[str]], None] | None = None) -> Iterator[Fields | RowError]:
    """Every non-blank data row as Fields, or as a RowError when it cannot be split into the header's
    columns. `source` is the whole text or its lines with their line ends. The header is checked
    (and `check`ed with its column names) before the first row comes out (ImportFileError)."""
    lines = _Lines(_lines_of(source) if isinstance(source, str) else source)
    header_line = lines.header()
    if header_line is None:
        raise ImportFileError("empty")
    delimiter = sniff_delimiter(header_line)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        columns = header.names(next(reader))
    except csv.Error as exc:
        raise ImportFileError("no_header", columns=", ".join(header.columns)) from exc
    if check is not None:
        check(columns)
    at = columns.index(header.key) if header.key in columns else None
    while True:
        first = lines.number + 1
        lines.taken.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RowError(first, "", (Reason("csv", {"error": str(exc)}),), lines.raw())
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            last = lines.number
            code = ("field_count_quote" if last > first
                    else "field_count_comma" if delimiter == "," else "field_count")
            values = {"found": len(cells), "expected": len(columns), "line": first, "last": last}
            key = cells[at].strip() if at is not None and len(cells) > at else ""
            yield RowError(first, key[:64], (Reason(code, values),), lines.raw())
            continue
        yield Fields(first, dict(zip(columns, cells, strict=True)), lines.raw())


def tidy(value: str) -> str:
    """A text cell as stored: no-break and thin spaces as spaces, runs of spaces as one."""
    return " ".join(value.translate(_SPACES).split())


def text_problems(name: str, value: str, limits: Mapping[str, int], names: Collection[str]) -> list[Reason]:
    """What is wrong with one text cell: too long, control characters, mojibake; in a column of
    `names` also Latin letters mixed into a Cyrillic word."""
    problems = []
    if name in limits and len(value) > limits[name]:
        problems.append(Reason("too_long", {"column": name, "max": limits[name]}))
    if any(unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI for ch in value):
        problems.append(Reason("control", {"column": name}))
    if "\ufffd" in value:
        problems.append(Reason("lost_chars", {"column": name}))
    elif _garbled_pairs(value) >= 2:
        problems.append(Reason("garbled", {"column": name, "value": shown(value, 30)}))
    elif name in names and (mixed := next((w for w in _WORD.findall(value) if _mixed_script(w)), None)):
        problems.append(Reason("mixed_script", {"column": name, "value": shown(mixed, 30)}))
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


def email_problem(email: str, limit: int) -> Reason | None:
    # only within the length limit (too_long covers the rest): the pattern backtracks quadratically
    if email and len(email) <= limit and not _EMAIL.fullmatch(email):
        return Reason("email", {"value": shown(email)})
    return None


def phones(text: str, region: str, reasons: list[Reason], required: bool = True) -> tuple[str, ...]:
    """The cell's numbers in E.164, each once; every one must be a valid number of `region`, else a
    reason is added (the row is then refused whole, so no number is dropped silently)."""
    parts = [part.strip().removeprefix("'") for part in _PHONE_SPLIT.split(text) if part.strip()]
    if not parts:
        if required:
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
            reasons.append(Reason("bad_phone", {"value": shown(part, 40)}))
            continue
        country = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
        if country != region:
            reasons.append(Reason("foreign_phone",
                                  {"phone": e164, "country": country or "?", "region": region}))
        elif e164 not in numbers:
            numbers.append(e164)
    return tuple(numbers)


# --- the report of rejected rows ------------------------------------------------------------------


def rejected_csv(rejected: Iterable[RowError], key: str, lang: str = "en", delimiter: str = ",") -> bytes:
    """The rejected rows for Excel: UTF-8 with a BOM, the source's delimiter, formula-safe cells;
    `key` is the message code of the key column's title (col.contract, col.name)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter if delimiter in DELIMITERS else ",", lineterminator="\r\n")
    writer.writerow([_text(lang, code, {}) for code in ("col.line", key, "col.reasons", "col.raw")])
    for row in rejected:
        writer.writerow([row.line, *(_safe(v) for v in (row.key, row.text(lang), row.raw))])
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def _safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def unquote_formula(value: str) -> str:
    """A cell as it was before a formula-safe export put "'" before its "=", "+", "-" or "@"."""
    return value[1:] if value.startswith("'") and value[1:2] in ("=", "+", "-", "@") else value


# --- the database import --------------------------------------------------------------------------


class Row(Protocol):
    """A valid row as an import's parser gives it (DebtRow, ClientRow)."""

    @property
    def line(self) -> int: ...

    @property
    def warnings(self) -> tuple[Reason, ...]: ...

    @property
    def key(self) -> str: ...


class Writer(Protocol):
    TABLES: tuple[str, ...]  # the tables it writes to, analysed on PostgreSQL as they grow

    def write(self, rows: list[Any]) -> None: ...

    def finish(self) -> None: ...


def numbers_and_holders(session: Session, numbers: Iterable[str]) -> tuple[dict[str, Phone], dict[str, list[Client]]]:
    """A batch's numbers: the Phone row of each (added when new) and the clients that already have
    it, oldest first. Both imports match a row's client through these."""
    wanted = sorted(set(numbers))
    phones = {p.e164: p for p in session.scalars(select(Phone).where(Phone.e164.in_(wanted)))}
    for e164 in wanted:
        if e164 not in phones:
            phones[e164] = Phone(e164=e164, kind=phone_kind(e164))
            session.add(phones[e164])
    holders: dict[str, list[Client]] = {}
    for client, e164 in session.execute(
        select(Client, Phone.e164).join(ClientPhone, ClientPhone.client_id == Client.id)
        .join(Phone, ClientPhone.phone_id == Phone.id).where(Phone.e164.in_(wanted)).order_by(Client.id)
    ):
        holders.setdefault(e164, []).append(client)
    return phones, holders


class _Statistics:
    """ANALYZE on PostgreSQL of the tables an import fills, each time the rows written double and
    once after the commit. A base loaded into empty tables otherwise keeps the planner's picture of
    empty tables: each batch's lookups then scan whole tables (a second load of 50,000 clients took
    49 s, 6.9 s once analysed). ANALYZE counts the import's own uncommitted rows."""

    def __init__(self, session: Session, tables: tuple[str, ...]) -> None:
        self.session, self.tables = session, tables
        self.on = session.get_bind().dialect.name == "postgresql"
        self.written, self.next = 0, 1000

    def wrote(self, rows: int) -> None:
        self.written += rows
        if self.on and self.written >= self.next:
            self.next = 2 * self.written
            self.analyze(self.session)

    def analyze(self, session: Session) -> None:
        session.execute(sql(f"ANALYZE {', '.join(self.tables)}"))


def import_file(
    sessions: sessionmaker[Session],
    source: str | Path | bytes,
    name: str,
    parse: Callable[[Iterable[str]], Iterator[Row | RowError]],
    writer: Callable[[Session, ImportReport], Writer],
    *,
    key: str,
    progress: Progress | None = None,
    report_path: str | Path | None = None,
    lang: str = "en",
) -> ImportReport:
    """Read (a path, or an upload's bytes named `name`), decode, check and upsert a CSV's rows in one
    transaction.

    `parse(lines)` yields the rows (each a Row, or a RowError) and checks the header before the
    first; `writer(session, report)` upserts batches of valid rows and counts them into the report.
    `progress(done_lines, total_lines)` is called at least every 1 % of the file and once at the
    end, after the commit. The rejected rows go to `report_path` (written whenever the file was read,
    header only when nothing was rejected). Raises ImportFileError for an unreadable file and
    ImportFailed when the database refuses: then nothing is written.
    """
    data, name = read_source(source, name)
    report = ImportReport(name=name)
    text, report.encoding = decode_csv(data)
    total = sum(1 for _ in _lines_of(text))  # the lines are read as they go: a big file is not held twice
    step = max(1, total // 100)
    rows = parse(_lines_of(text))
    first = next(rows, None)  # the header is checked here, before anything is written
    report.delimiter = sniff_delimiter(next(line for line in _lines_of(text) if line.strip()))
    if report_path is not None:  # an unwritable report must stop the import before it writes anything
        report.report_path = Path(report_path)
        report.report_path.write_bytes(b"")
    try:
        with sessions.begin() as session:
            upsert = writer(session, report)
            statistics = _Statistics(session, upsert.TABLES)

            def write(batch: list[Any]) -> list[Any]:
                upsert.write(batch)
                statistics.wrote(len(batch))
                return []

            batch: list[Any] = []
            reported = 0
            for item in itertools.chain([first] if first is not None else [], rows):
                report.read += 1
                if isinstance(item, RowError):
                    report.rejected.append(item)
                else:
                    batch.append(item)
                    report.warnings += [RowWarning(item.line, item.key, w) for w in item.warnings]
                if item.line - reported >= step:  # written before it is reported
                    batch = write(batch)
                    reported = item.line
                    if progress is not None:
                        progress(item.line, total)
                elif len(batch) >= BATCH:
                    batch = write(batch)
            write(batch)
            upsert.finish()
    except SQLAlchemyError as exc:
        raise ImportFailed(f"the database refused the import, nothing was written: {exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0][:300]}") from exc
    if statistics.on and statistics.written:
        try:
            with sessions.begin() as session:
                statistics.analyze(session)
        except SQLAlchemyError:  # the import is committed; autovacuum will analyse in time
            log.warning("import %s: ANALYZE after the commit failed", name, exc_info=True)
    if report.report_path is not None:
        report.report_path.write_bytes(rejected_csv(report.rejected, key, lang, report.delimiter))
    if progress is not None:
        progress(total, total)
    return report
