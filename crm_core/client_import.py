"""Client-base import from CSV: the base a centre brings from its old CRM, or callcard's own export
(/api/supervisor/clients.csv) edited in Excel and loaded back.

The file (a header row, then one client per row; columns in any order, Russian names understood):

    id        a callcard client id, as the export writes it: the row updates that client (an id
              callcard does not have is refused); empty: the client is found or created as below
    name      required: a person's full name or a company's name
    kind      person or company (empty: person for a new client, unchanged for a known one)
    phones    numbers separated by ";" or "," (or by spaces when each starts with "+", as the export
              writes them); every one must be a valid number of the import's country, else the row is
              refused whole, so no number is dropped silently
    email     an e-mail address; a row needs a number or an e-mail, or callcard could never know the
              client again
    segment   standard, vip, key, debtor, new (or their Russian names); other words are kept as
              written, with a warning, since routing gives priority to the segments it is told of
    city, notes
    manager   the login of an active operator: the client's personal manager (an unknown login
              refuses the row, so no client is left without the manager the file meant)
    debt_open, created_at   written by the export, ignored: debts come from the debt import

A row is the client with its id; else the client with the same name and one of its numbers; else
the client with the same name and e-mail; else a new client. A filled cell replaces the client's
value (notes are added to the client's notes, not put in their place); an empty cell changes
nothing, and numbers are only ever added, so an import loses nothing the desk recorded. Loading the
same file twice changes nothing. A number that also belongs to another client is kept on both, with
a warning: the desk then asks the operator which of them is calling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from crm_core.clients import EDITABLE, KINDS
from crm_core.csv_import import (
    Fields,
    Header,
    ImportReport,
    Progress,
    Reason,
    RowError,
    RowWarning,
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
    unquote_formula,
)
from crm_core.models import SEGMENTS, Client, ClientPhone, Operator, Phone, name_key

COLUMNS = ("id", "name", "kind", "phones", "email", "segment", "city", "notes", "manager", "debt_open",
           "created_at")
LIMITS = {"name": 256, "email": 256, "segment": 32, "city": 128, "notes": EDITABLE["notes"], "manager": 64}
NAMES = ("name", "city")  # a word of Latin and Cyrillic letters here: wrong encoding or look-alikes
HEADER = Header(COLUMNS, ("name",), {
    "фио": "name", "клиент": "name", "client": "name", "наименование": "name", "название": "name",
    "тип": "kind", "phone": "phones", "телефон": "phones", "телефоны": "phones", "e_mail": "email",
    "почта": "email", "сегмент": "segment", "город": "city", "note": "notes", "заметки": "notes",
    "примечание": "notes", "комментарий": "notes", "менеджер": "manager",
    "персональный_менеджер": "manager", "код": "id",
}, key="name")
_KIND_WORDS = {**{kind: kind for kind in KINDS}, "физлицо": "person", "физ._лицо": "person",
               "компания": "company", "юрлицо": "company", "юр._лицо": "company", "организация": "company"}
_SEGMENT_WORDS = {**{code: code for code in SEGMENTS}, "обычный": "standard", "вип": "vip", "ключевой": "key",
                  "key account": "key", "должник": "debtor", "новый": "new"}
_MAX_ID = 2**63 - 1

add_texts({
    "en": {
        "bad_id": "id \"{value}\" is not a callcard client id (a whole number)",
        "duplicate_id": "client {id} already appears on line {first}",
        "no_contact": "neither a phone number nor an e-mail: the client could never be recognised",
        "no_client": "callcard has no client with id {id}: leave id empty to add the client",
        "no_manager": "manager {login} is not an active operator's login",
        "new_segment": "segment \"{value}\" is not one of {segments}: kept as written",
        "shared_number": "{phone} also belongs to {name}: the desk will ask which of them calls",
        "col.name": "name",
    },
    "ru": {
        "bad_id": "id: «{value}» — не номер клиента callcard (целое число)",
        "duplicate_id": "клиент {id} уже есть в строке {first}",
        "no_contact": "нет ни телефона, ни e-mail: клиента будет не узнать",
        "no_client": "в callcard нет клиента с id {id}: оставьте id пустым, чтобы добавить клиента",
        "no_manager": "manager: {login} — не логин действующего оператора",
        "new_segment": "сегмент «{value}» — не из {segments}: сохранён как написан",
        "shared_number": "номер {phone} есть и у клиента {name}: оператору будет предложено выбрать, "
                         "кто звонит",
        "col.name": "имя",
    },
})


@dataclass(frozen=True)
class ClientRow:
    """One valid row, typed; empty strings are cells the file left empty (nothing to change)."""

    line: int
    client_id: int | None
    name: str
    kind: str
    phones: tuple[str, ...]
    email: str
    segment: str
    city: str
    notes: str
    manager: str
    raw: str
    warnings: tuple[Reason, ...] = ()

    @property
    def key(self) -> str:
        return self.name


def parse_rows(source: str | Iterable[str], region: str = "RU") -> Iterator[ClientRow | RowError]:
    """Every data row of the CSV text as a ClientRow or a RowError (blank rows are skipped); the
    header is checked before the first row comes out (ImportFileError). Touches no database."""
    region = region.upper()
    seen: dict[int, int] = {}
    for item in read_rows(source, HEADER):
        yield item if isinstance(item, RowError) else _row(item, seen, region)


def _row(fields: Fields, seen: dict[int, int], region: str) -> ClientRow | RowError:
    line = fields.line
    cells = {name: unquote_formula(cell.strip() if name in ("phones", "notes") else tidy(cell))
             for name, cell in fields.cells.items()}
    cells = {name: cells.get(name, "") for name in COLUMNS}
    reasons: list[Reason] = []
    for name, value in cells.items():
        reasons += text_problems(name, value, LIMITS, NAMES)
    name = cells["name"]
    if not name:
        reasons.append(Reason("required", {"column": "name"}))
    client_id = None
    if cells["id"]:
        if cells["id"].isascii() and cells["id"].isdigit() and 0 < int(cells["id"]) <= _MAX_ID:
            client_id = int(cells["id"])
            if client_id in seen:
                reasons.append(Reason("duplicate_id", {"id": client_id, "first": seen[client_id]}))
            else:
                seen[client_id] = line
        else:
            reasons.append(Reason("bad_id", {"value": shown(cells["id"])}))
    kind = _KIND_WORDS.get(cells["kind"].lower().replace(" ", "_"), "") if cells["kind"] else ""
    if cells["kind"] and not kind:
        reasons.append(Reason("kind", {"value": shown(cells["kind"])}))
    numbers = phones(cells["phones"], region, reasons, required=False)
    email = cells["email"]
    if problem := email_problem(email, LIMITS["email"]):
        reasons.append(problem)
    if not cells["phones"] and not email:
        reasons.append(Reason("no_contact"))
    if reasons:
        return RowError(line, name[:64], tuple(reasons), fields.raw)
    segment, warnings = cells["segment"], []
    if segment:
        segment = _SEGMENT_WORDS.get(segment.lower(), segment)
        if segment not in SEGMENTS:
            warnings.append(Reason("new_segment", {"value": shown(segment), "segments": ", ".join(SEGMENTS)}))
    return ClientRow(line, client_id, name, kind, numbers, email, segment, cells["city"], cells["notes"],
                     cells["manager"], fields.raw, tuple(warnings))


def import_clients(
    sessions: sessionmaker[Session],
    source: str | Path | bytes,
    *,
    region: str = "RU",
    progress: Progress | None = None,
    report_path: str | Path | None = None,
    lang: str = "en",
    name: str = "",
) -> ImportReport:
    """Read, check and upsert a client-base CSV (a path or its bytes) in one transaction (see
    crm_core.csv_import.import_file for the progress, the report and the errors)."""
    region = country(region)
    return import_file(sessions, source, name, lambda lines: parse_rows(lines, region), _Writer,
                       key="col.name", progress=progress, report_path=report_path, lang=lang)


class _Writer:
    """Upserts batches of valid rows inside the import's transaction; refuses a row whose id or
    manager the database does not know (the parser cannot tell)."""

    TABLES = ("clients", "phones", "client_phones")

    def __init__(self, session: Session, report: ImportReport) -> None:
        self.session = session
        self.report = report
        self.managers: dict[str, int | None] = {}  # login: an active operator's id, None: not one

    def write(self, rows: list[ClientRow]) -> None:
        if not rows:
            return
        session = self.session
        by_id = {c.id: c for c in session.scalars(
            select(Client).where(Client.id.in_([r.client_id for r in rows if r.client_id is not None])))}
        self._load_managers({row.manager for row in rows if row.manager})
        phone_rows, holders = numbers_and_holders(session, (e164 for row in rows for e164 in row.phones))
        named = sorted({name_key(row.name) for row in rows if row.email and row.client_id is None})
        by_email: dict[tuple[str, str], Client] = {}  # (name key, e-mail), on ix_clients_name_key
        for client in session.scalars(select(Client).where(Client.name_key.in_(named), Client.email != "")
                                      .order_by(Client.id)):
            by_email.setdefault((client.name_key, client.email.lower()), client)
        for row in rows:
            problems = self._unknown(row, by_id)
            if problems:
                self.report.rejected.append(RowError(row.line, row.name[:64], problems, row.raw))
                continue
            client = by_id.get(row.client_id) if row.client_id is not None else self._match(row, holders, by_email)
            if client is None:
                client = Client(name=row.name, kind=row.kind or "person", email=row.email,
                                segment=row.segment or "standard", city=row.city, notes=row.notes,
                                manager_id=self.managers.get(row.manager))
                session.add(client)
                self._link(client, row, holders, phone_rows)
                self.report.created += 1
            elif self._update(client, row) | self._link(client, row, holders, phone_rows):  # both run
                self.report.updated += 1
            else:
                self.report.unchanged += 1
            if row.email and row.client_id is None:
                by_email.setdefault((client.name_key, row.email.lower()), client)
        session.flush()

    def _link(self, client: Client, row: ClientRow, holders: dict[str, list[Client]],
              phone_rows: dict[str, Phone]) -> bool:
        """Add the row's numbers the client lacks (warning when another client has one); any added?"""
        added = False
        for e164 in row.phones:
            others = holders.setdefault(e164, [])
            if client in others:
                continue
            if others:
                self.report.warnings.append(RowWarning(row.line, row.name, Reason(
                    "shared_number", {"phone": e164, "name": shown(others[0].name)})))
            self.session.add(ClientPhone(client=client, phone=phone_rows[e164]))
            others.append(client)
            added = True
        return added

    def _load_managers(self, logins: set[str]) -> None:
        wanted = sorted(logins - self.managers.keys())
        if not wanted:
            return
        found = dict(self.session.execute(
            select(Operator.login, Operator.id).where(Operator.login.in_(wanted), Operator.active.is_(True))).all())
        for login in wanted:
            self.managers[login] = found.get(login)

    def _unknown(self, row: ClientRow, by_id: dict[int, Client]) -> tuple[Reason, ...]:
        problems = []
        if row.client_id is not None and row.client_id not in by_id:
            problems.append(Reason("no_client", {"id": row.client_id}))
        if row.manager and self.managers.get(row.manager) is None:
            problems.append(Reason("no_manager", {"login": shown(row.manager, 40)}))
        return tuple(problems)

    @staticmethod
    def _match(row: ClientRow, holders: dict[str, list[Client]],
               by_email: dict[tuple[str, str], Client]) -> Client | None:
        """The client with the row's name however spelt (name_key) and one of its numbers, else its e-mail."""
        key = name_key(row.name)
        for e164 in row.phones:
            for client in holders.get(e164, ()):
                if client.name_key == key:
                    return client
        return by_email.get((key, row.email.lower())) if row.email else None

    def _update(self, client: Client, row: ClientRow) -> bool:
        values = {"name": row.name, "kind": row.kind, "email": row.email, "segment": row.segment,
                  "city": row.city, "manager_id": self.managers.get(row.manager) if row.manager else None}
        changed = False
        for attribute, value in values.items():
            if value and getattr(client, attribute) != value:
                setattr(client, attribute, value)
                changed = True
        if row.notes and row.notes not in (client.notes or ""):
            client.notes = f"{client.notes}\n\n{row.notes}" if client.notes else row.notes
            changed = True
        return changed

    def finish(self) -> None:
        """Rows refused for an unknown id or manager joined the report batch by batch: list all by line."""
        self.report.rejected.sort(key=lambda row: row.line)
        self.report.warnings.sort(key=lambda warning: warning.line)
        self.session.flush()
