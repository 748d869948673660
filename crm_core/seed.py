"""Demo data: departments, operators with known passwords, a Chelyabinsk client base, and
open debts of some of its persons for collections.

Deterministic for a given `rng_seed` and idempotent: the client base is written once,
recognised afterwards by the client from the AMI recordings (+73511234567, Иван Петров);
the debts once, when there are none.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ami_bridge.events import Outcome
from crm_core.clients import get_or_create_phone
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
    utcnow,
)
from crm_core.passwords import hash_password
from crm_core.phones import normalize_phone, phone_kind
from ivr.service import seed_default_menu
from routing.inbox.service import assign, change_status, colleagues, create_request

KNOWN_NUMBER = "+73511234567"  # the caller of the inbound recordings: a known client
KNOWN_NAME = "Иван Петров"
UNKNOWN_NUMBER = "+73517654321"  # presented as 83517654321 in the recordings: must stay unknown

DEPARTMENTS = [
    ("sales", "Продажи", "sales"),
    ("service", "Сервис", "support"),
    ("collections", "Взыскание", "collections"),
]
# login, name, role, interface, department codes
OPERATORS = [
    ("op1", "Анна Смирнова", "operator", "Local/101@agents", ("sales",)),
    ("op2", "Дмитрий Козлов", "operator", "Local/102@agents", ("sales",)),
    ("op3", "Елена Волкова", "operator", "Local/103@agents", ("service",)),
    ("op4", "Сергей Морозов", "operator", "Local/104@agents", ("collections",)),
    ("super1", "Ольга Никитина", "supervisor", None, ("sales", "service", "collections")),
    ("admin", "Администратор", "admin", None, ()),
    # department heads: each heads (Department.head_id) the one department they belong to
    ("head_sales", "Ирина Белова", "department_head", None, ("sales",)),
    ("head_service", "Максим Орлов", "department_head", None, ("service",)),
    ("head_collections", "Татьяна Зуева", "department_head", None, ("collections",)),
]

SURNAMES = [
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Сергеев",
    "Фролов",
    "Александров",
    "Дмитриев",
    "Королёв",
    "Гусев",
    "Киселёв",
    "Ильин",
    "Максимов",
    "Поляков",
    "Сорокин",
    "Виноградов",
    "Ковалёв",
    "Белов",
    "Медведев",
    "Антонов",
    "Тарасов",
    "Жуков",
    "Баранов",
    "Филиппов",
    "Комаров",
    "Давыдов",
    "Беляев",
    "Герасимов",
    "Богданов",
    "Осипов",
    "Сидоров",
    "Матвеев",
]
MALE_NAMES = [
    "Александр",
    "Алексей",
    "Андрей",
    "Антон",
    "Артём",
    "Борис",
    "Вадим",
    "Виктор",
    "Владимир",
    "Дмитрий",
    "Евгений",
    "Игорь",
    "Илья",
    "Кирилл",
    "Константин",
    "Максим",
    "Михаил",
    "Никита",
    "Николай",
    "Олег",
    "Павел",
    "Роман",
    "Сергей",
    "Юрий",
]
FEMALE_NAMES = [
    "Анна",
    "Алина",
    "Валентина",
    "Вера",
    "Галина",
    "Дарья",
    "Екатерина",
    "Елена",
    "Ирина",
    "Ксения",
    "Лариса",
    "Людмила",
    "Марина",
    "Мария",
    "Наталья",
    "Нина",
    "Ольга",
    "Светлана",
    "Татьяна",
    "Юлия",
]
PATRONYMICS = [
    ("Александрович", "Александровна"),
    ("Алексеевич", "Алексеевна"),
    ("Андреевич", "Андреевна"),
    ("Борисович", "Борисовна"),
    ("Викторович", "Викторовна"),
    ("Владимирович", "Владимировна"),
    ("Дмитриевич", "Дмитриевна"),
    ("Евгеньевич", "Евгеньевна"),
    ("Иванович", "Ивановна"),
    ("Игоревич", "Игоревна"),
    ("Михайлович", "Михайловна"),
    ("Николаевич", "Николаевна"),
    ("Олегович", "Олеговна"),
    ("Павлович", "Павловна"),
    ("Петрович", "Петровна"),
    ("Сергеевич", "Сергеевна"),
    ("Юрьевич", "Юрьевна"),
    ("Геннадьевич", "Геннадьевна"),
    ("Анатольевич", "Анатольевна"),
    ("Васильевич", "Васильевна"),
]
COMPANY_STEMS = ["Урал", "Челяб", "ЮжУрал", "Миасс", "Магнит", "Злат", "Копейск", "Троицк", "Сатка", "Кыштым"]
COMPANY_TRADES = [
    "техснаб",
    "металлторг",
    "строй",
    "логистик",
    "агро",
    "энерго",
    "пром",
    "сервис",
    "авто",
    "хим",
]
POSITIONS = [
    "генеральный директор",
    "главный бухгалтер",
    "менеджер по закупкам",
    "начальник отдела снабжения",
    "юрист",
    "офис-менеджер",
]
CITIES = ["Челябинск"] * 6 + ["Магнитогорск", "Златоуст", "Миасс", "Копейск", "Екатеринбург"]
SEEDED_KINDS = ("question", "question", "complaint", "service", "order")
SUBJECTS = [
    "Подключение тарифа",
    "Не пришёл счёт",
    "Перенос платежа",
    "Замена оборудования",
    "Консультация по договору",
    "Возврат переплаты",
    "Рассрочка задолженности",
    "Выезд мастера",
]
NOTES = [
    "Просил перезвонить после 18:00",
    "Интересуется новыми тарифами",
    "Обещал оплатить до пятницы",
    "Жалоба на качество связи, передано в сервис",
    "Уточнил реквизиты для оплаты",
    "Согласен на встречу в офисе",
    "Запросил акт сверки",
]
DISPOSITIONS = ["consulted", "sale", "callback", "complaint", "promise_to_pay", ""]
_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "shch",
            "-",
            "y",
            "-",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)

PERSONS = 300
COMPANIES = 50
SHARED_HOMES = 5
CALLS = 200
DEBTORS = 40  # every 7th person owes; a real base gets its debts from a creditor's CSV (Debt import)
CREDITORS = ["Банк «Урал-Кредит»", "МФО «Быстрые деньги»", "АО «Челябэнергосбыт»"]


@dataclass
class SeedSummary:
    """What this run added (zeros when the demo base was already there) and the demo logins."""

    departments: int = 0
    operators: int = 0
    clients: int = 0
    companies: int = 0
    contacts: int = 0
    phones: int = 0
    requests: int = 0
    notes: int = 0
    calls: int = 0
    debts: int = 0
    passwords: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if not (self.departments or self.operators or self.clients or self.debts):
            return "already seeded, nothing added"
        return (
            f"added {self.departments} departments, {self.operators} users, {self.clients} clients "
            f"({self.companies} companies, {self.contacts} contact persons), {self.phones} numbers, "
            f"{self.requests} requests, {self.notes} notes, {self.calls} past calls, {self.debts} debts"
        )


def translit(text: str) -> str:
    """Latin spelling, as a caller ID name or an e-mail address would carry it."""
    out = []
    for ch in text:
        low = ch.lower()
        lat = _TRANSLIT.get(low, ch).replace("-", "")
        out.append(lat.capitalize() if ch != low else lat)
    return "".join(out)


def seed_demo(session: Session, region: str = "RU", rng_seed: int = 1) -> SeedSummary:
    """Create what is missing of the demo data; the caller commits and prints `passwords`."""
    summary = SeedSummary(passwords={login: f"{login}-demo" for login, *_ in OPERATORS})
    departments = _departments(session, summary)
    operators = _operators(session, departments, summary)
    if _known_client(session) is None:
        _client_base(session, random.Random(rng_seed), region, departments, operators, summary)
        session.flush()
    _debts(session, random.Random(rng_seed + 1), summary)
    session.flush()
    seed_default_menu(session)
    return summary


def demo_callers(session: Session) -> list[tuple[str, str]]:
    """(number as Asterisk presents it, caller ID name) for the simulator: known persons and a company,
    a number shared by two clients, a company contact's mobile, unknown and withheld numbers."""
    single_owner = select(ClientPhone.phone_id).group_by(ClientPhone.phone_id).having(func.count() == 1)
    shared_owner = select(ClientPhone.phone_id).group_by(ClientPhone.phone_id).having(func.count() > 1)

    def numbers(kind: str, owners: Select[tuple[int]], limit: int) -> list[tuple[str, str]]:
        return [
            tuple(row)
            for row in session.execute(
                select(Phone.e164, Client.name)
                .join(ClientPhone, ClientPhone.phone_id == Phone.id)
                .join(Client, ClientPhone.client_id == Client.id)
                .where(Client.kind == kind, Phone.id.in_(owners), Phone.e164 != KNOWN_NUMBER)
                .order_by(Client.id, Phone.id)
                .limit(limit)
            )
        ]

    callers = [(KNOWN_NUMBER, translit(KNOWN_NAME)), ("8" + UNKNOWN_NUMBER[2:], "")]
    for i, (e164, name) in enumerate(numbers("person", single_owner, 4)):
        surname, first, *_ = name.split()
        presented = "8" + e164[2:] if i % 2 else e164  # Russian trunks send both forms
        callers.append((presented, "" if i % 2 else f"{translit(first)} {translit(surname)}"))
    callers += [(e164, "") for e164, _ in numbers("company", single_owner, 1)]
    callers += [(e164, "") for e164, _ in numbers("person", shared_owner, 1)]
    contact = session.execute(
        select(Phone.e164, ContactPerson.name)
        .join(ContactPerson, ContactPerson.phone_id == Phone.id)
        .order_by(ContactPerson.id)
        .limit(1)
    ).first()
    if contact:
        callers.append((contact[0], translit(contact[1])))
    debtor = session.scalar(
        select(Phone.e164)
        .join(ClientPhone, ClientPhone.phone_id == Phone.id)
        .join(Debt, Debt.client_id == ClientPhone.client_id)
        .where(Phone.id.in_(single_owner))
        .order_by(Debt.id)
        .limit(1)
    )
    if debtor:  # a debtor calling in: the debtor rule sends them to collections, the card shows the debt
        callers.append(("8" + debtor[2:], ""))
    return callers + [("+79227770011", ""), ("83512400000", "Unknown Caller"), ("anonymous", "")]


def _debts(session: Session, rng: random.Random, summary: SeedSummary) -> None:
    """Open debts of every 7th person, once; some with a promise to pay."""
    if session.scalar(select(Debt.id).limit(1)) is not None:
        return
    persons = session.scalars(
        select(Client).where(Client.kind == "person", Client.name != KNOWN_NAME).order_by(Client.id)
    ).all()
    today = utcnow().date()
    for n, client in enumerate(persons[6::7][:DEBTORS]):
        principal = Decimal(rng.randrange(50, 3000) * 100)
        promised = n % 6 == 0
        session.add(Debt(
            client_id=client.id,
            creditor=rng.choice(CREDITORS),
            contract=f"ДЗ-{2024 + n % 2}-{n + 1:05d}",
            principal=principal,
            total_due=(principal * Decimal(rng.randrange(105, 160)) / 100).quantize(Decimal("0.01")),
            days_past_due=rng.randrange(5, 420),
            region="Челябинская область",
            status="promised" if promised else "active",
            promised_amount=(principal / 4).quantize(Decimal("0.01")) if promised else None,
            promised_date=today + timedelta(days=n % 10 + 1) if promised else None,
        ))
        client.debt_open = True  # what routing's debtor rule and visibility read (the import keeps it too)
        summary.debts += 1


def _departments(session: Session, summary: SeedSummary) -> dict[str, Department]:
    found = {d.code: d for d in session.scalars(select(Department))}
    for code, name, queue in DEPARTMENTS:
        if code not in found:
            found[code] = Department(code=code, name=name, queue=queue)
            session.add(found[code])
            summary.departments += 1
    return found


def _operators(
    session: Session, departments: dict[str, Department], summary: SeedSummary
) -> dict[str, Operator]:
    found = {o.login: o for o in session.scalars(select(Operator))}
    for login, name, role, interface, codes in OPERATORS:
        if login not in found:
            found[login] = Operator(
                login=login,
                name=name,
                role=role,
                interface=interface,
                password_hash=hash_password(summary.passwords[login]),
                departments=[departments[c] for c in codes],
            )
            session.add(found[login])
            summary.operators += 1
    for login, _name, role, _interface, codes in OPERATORS:
        if role == "department_head":
            for code in codes:
                if departments[code].head is None:
                    departments[code].head = found[login]
    return found


def _known_client(session: Session) -> Client | None:
    return (
        session.execute(
            select(Client)
            .join(ClientPhone, ClientPhone.client_id == Client.id)
            .join(Phone, ClientPhone.phone_id == Phone.id)
            .where(Phone.e164 == KNOWN_NUMBER, Client.name == KNOWN_NAME)
        )
        .scalars()
        .first()
    )


def _client_base(
    session: Session,
    rng: random.Random,
    region: str,
    departments: dict[str, Department],
    operators: dict[str, Operator],
    summary: SeedSummary,
) -> None:
    taken = set(session.scalars(select(Phone.e164))) | {UNKNOWN_NUMBER, KNOWN_NUMBER}
    agents = [operators[f"op{i}"] for i in range(1, 5)]
    managers = [operators["op1"], operators["op2"]]
    now = utcnow()

    def new_phone(mobile: bool) -> Phone:
        while True:
            raw = (
                f"+79{rng.randrange(10**9):09d}"
                if mobile
                else f"+7351{rng.randrange(2, 8)}{rng.randrange(10**6):06d}"
            )
            e164 = normalize_phone(raw, region)
            if e164 not in taken:
                taken.add(e164)
                summary.phones += 1
                return Phone(e164=e164, kind=phone_kind(e164))

    def ago(days: int) -> timedelta:
        return timedelta(days=rng.randrange(days), minutes=rng.randrange(24 * 60))

    known = Client(
        kind="person",
        name=KNOWN_NAME,
        segment="vip",
        city="Челябинск",
        email="ivan.petrov@example.ru",
        manager=operators["op1"],
        notes="Постоянный клиент с 2019 года",
        phone_links=[ClientPhone(phone=get_or_create_phone(session, KNOWN_NUMBER), label="домашний")],
    )
    clients = [known]
    for n in range(PERSONS):
        female = rng.random() < 0.5
        surname = rng.choice(SURNAMES) + ("а" if female else "")
        first = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
        name = f"{surname} {first} {rng.choice(PATRONYMICS)[female]}"
        vip = rng.random() < 0.1
        links = [ClientPhone(phone=new_phone(True), label="мобильный")]
        if rng.random() < 0.3:
            links.append(ClientPhone(phone=new_phone(False), label="домашний"))
        clients.append(
            Client(
                kind="person",
                name=name,
                segment="vip" if vip else "standard",
                city=rng.choice(CITIES),
                email=f"{translit(surname).lower()}.{n}@example.ru" if rng.random() < 0.6 else "",
                manager=rng.choice(managers) if vip or rng.random() < 0.05 else None,
                phone_links=links,
            )
        )
    for person in clients[1 : SHARED_HOMES + 1]:  # a relative on the same home line: the desk must ask
        home = next((link.phone for link in person.phone_links if link.label == "домашний"), None)
        if home is None:
            home = new_phone(False)
            person.phone_links.append(ClientPhone(phone=home, label="домашний"))
        family = person.name.split()[0].removesuffix("а")
        female = rng.random() < 0.5
        clients.append(
            Client(
                kind="person",
                city=person.city,
                phone_links=[ClientPhone(phone=home, label="домашний")],
                name=f"{family}{'а' if female else ''} {rng.choice(FEMALE_NAMES if female else MALE_NAMES)} "
                f"{rng.choice(PATRONYMICS)[female]}",
            )
        )
    names = rng.sample([s + t for s in COMPANY_STEMS for t in COMPANY_TRADES], COMPANIES)
    for stem in names:
        contacts = []
        for position in rng.sample(POSITIONS, rng.randrange(2, 5)):
            female = rng.random() < 0.5
            contacts.append(
                ContactPerson(
                    name=f"{rng.choice(FEMALE_NAMES if female else MALE_NAMES)} "
                    f"{rng.choice(SURNAMES)}{'а' if female else ''}",
                    position=position,
                    phone=new_phone(True),
                    email=f"{translit(position.split()[0]).lower()}@{translit(stem).lower()}.ru",
                )
            )
        summary.contacts += len(contacts)
        links = [ClientPhone(phone=new_phone(False), label="офис") for _ in range(rng.randrange(1, 3))]
        clients.append(
            Client(
                kind="company",
                name=f"{rng.choice(['ООО', 'ООО', 'АО'])} «{stem.capitalize()}»",
                segment="vip" if rng.random() < 0.2 else "standard",
                city=rng.choice(CITIES),
                email=f"info@{translit(stem).lower()}.ru",
                manager=rng.choice(managers) if rng.random() < 0.4 else None,
                phone_links=links,
                contacts=contacts,
            )
        )
    session.add_all(clients)
    session.flush()
    summary.clients = len(clients)
    summary.companies = COMPANIES

    # as the desk files them: a deadline by type, the client's manager as assignee, a history;
    # the open ones are hours old, so some are overdue and most are not
    create_request(session, "service", "Замена оборудования", now - timedelta(hours=3), client_id=known.id,
                   department_id=departments["service"].id)
    picked = rng.sample(clients, 60)
    for client in picked:
        status = rng.choice(["open", "open", "in_progress", "closed"])
        filed = now - (ago(90) if status == "closed" else timedelta(minutes=rng.randrange(10, 600)))
        request = create_request(session, rng.choice(SEEDED_KINDS), rng.choice(SUBJECTS), filed, client_id=client.id)
        taken = filed + timedelta(minutes=rng.randrange(5, 30))
        if status != "open" and request.assignee_id is None:  # somebody of the department took it
            someone = rng.choice(colleagues(session, request.department_id)).id
            assign(session, request.id, someone, someone, taken)
        if status != "open":
            change_status(session, request.id, status, request.assignee_id, taken)
    summary.requests = 1 + len(picked)

    calls = []
    for n in range(CALLS):
        client = known if n % 25 == 0 else rng.choice(clients)
        outcome = rng.choice([Outcome.ANSWERED] * 6 + [Outcome.ABANDONED, Outcome.MISSED, Outcome.BUSY])
        started = now - ago(60)
        wait = rng.randrange(2, 90)
        answered = outcome is Outcome.ANSWERED
        talk = rng.randrange(20, 600) if answered else None
        dept = rng.choice(list(departments.values()))
        calls.append(
            Call(
                linkedid=f"seed-{now:%Y%m%d%H%M%S}-{n}",
                client=client,
                caller_e164=client.phone_links[0].phone.e164,
                caller_raw=client.phone_links[0].phone.e164,
                queue=dept.queue,
                department=dept,
                operator=rng.choice(agents) if answered else None,
                started_at=started,
                answered_at=started + timedelta(seconds=wait) if answered else None,
                ended_at=started + timedelta(seconds=wait + (talk or 0)),
                wait_seconds=wait,
                talk_seconds=talk,
                status="ended",
                outcome=outcome.value,
                disposition=rng.choice(DISPOSITIONS) if answered else "",
            )
        )
    session.add_all(calls)
    summary.calls = len(calls)

    notes = [
        Interaction(
            client_id=call.client.id,
            call=call,
            author=call.operator,
            note=rng.choice(NOTES),
            created_at=call.ended_at,
        )
        for call in calls
        if call.operator and rng.random() < 0.5
    ]
    notes += [
        Interaction(
            client_id=rng.choice(clients).id,
            author=rng.choice(agents),
            note=rng.choice(NOTES),
            created_at=now - ago(120),
        )
        for _ in range(40)
    ]
    session.add_all(notes)
    summary.notes = len(notes)
