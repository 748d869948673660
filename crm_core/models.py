"""Tables of the CRM: clients and their phones, operators, departments, calls, notes, requests, debts.

A phone number is one row (unique E.164) linked to any number of clients, because a
shared office line or a family phone really does belong to several of them; the desk
then asks the operator whom they are talking to instead of guessing.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates


def name_key(name: str) -> str:
    """A name as its twins spell it too: case, ё for е, punctuation, quotes and word order aside
    ("ООО «Ромашка»" and "Ромашка, ООО"; "Петров Иван" and "иван петров")."""
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", name).casefold().replace("ё", "е"))
    return " ".join(sorted(words))[:256]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """The same instant, timezone-aware: SQLite hands DateTime(timezone=True) back naive (UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class Base(DeclarativeBase):
    # Named constraints, so later migrations can drop or alter them on SQLite and PostgreSQL alike.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


operator_departments = Table(
    "operator_departments",
    Base.metadata,
    Column("operator_id", ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True),
    Column("department_id", ForeignKey("departments.id", ondelete="CASCADE"), primary_key=True),
)


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # sales / service / collections
    name: Mapped[str] = mapped_column(String(128))
    queue: Mapped[str] = mapped_column(String(64), default="")  # Asterisk queue name
    # Who hears about the department's overdue requests (escalations go to their desk).
    head_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))

    operators: Mapped[list[Operator]] = relationship(
        secondary=operator_departments, back_populates="departments"
    )
    head: Mapped[Operator | None] = relationship(foreign_keys=[head_id])


class Operator(Base):
    """A person who logs in: operator, department head, supervisor or admin (crm_core.users.ROLES)."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="operator")  # crm_core.users.ROLES
    interface: Mapped[str | None] = mapped_column(String(128), unique=True)  # Local/101@agents
    language: Mapped[str] = mapped_column(String(8), default="ru")
    active: Mapped[bool] = mapped_column(default=True)

    departments: Mapped[list[Department]] = relationship(
        secondary=operator_departments, back_populates="operators"
    )


SEGMENTS = ("standard", "vip", "key", "debtor", "new")  # the segments the interface has names for


class Client(Base):
    """A person or a company; the company owns the relationship, not the manager."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")  # person / company
    name: Mapped[str] = mapped_column(String(256), index=True)
    # The name as twins share it (name_key): kept by `_keep_name_key` whenever the name is set.
    name_key: Mapped[str] = mapped_column(String(256), default="", server_default="", index=True)
    segment: Mapped[str] = mapped_column(String(32), default="standard")  # SEGMENTS, or an admin's own word
    email: Mapped[str] = mapped_column(String(256), default="")
    city: Mapped[str] = mapped_column(String(128), default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"), index=True)
    # Some debt of theirs is not paid or closed: routing sends them to collections (kept by crm_core.debts).
    debt_open: Mapped[bool] = mapped_column(default=False)
    # Debtor facts the collection-law guard needs (routing.compliance.Debt):
    time_zone: Mapped[str] = mapped_column(String(64), default="")  # IANA zone of the known address
    contact_refused: Mapped[bool] = mapped_column(default=False)  # 230-FZ art. 8 / Reg F cease request
    protection: Mapped[str] = mapped_column(String(32), default="")  # bankruptcy, incapacity, ... ("" none)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    manager: Mapped[Operator | None] = relationship()
    phone_links: Mapped[list[ClientPhone]] = relationship(
        back_populates="client", cascade="all, delete-orphan"
    )
    contacts: Mapped[list[ContactPerson]] = relationship(
        back_populates="client", cascade="all, delete-orphan"
    )

    @validates("name")
    def _keep_name_key(self, _: str, name: str) -> str:
        self.name_key = name_key(name)
        return name


class Phone(Base):
    __tablename__ = "phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    e164: Mapped[str] = mapped_column(String(20), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="other")  # mobile / landline / ...

    client_links: Mapped[list[ClientPhone]] = relationship(back_populates="phone")


class ClientPhone(Base):
    __tablename__ = "client_phones"
    __table_args__ = (UniqueConstraint("client_id", "phone_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    phone_id: Mapped[int] = mapped_column(ForeignKey("phones.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64), default="")  # "work", "home", ...
    # Whether this client may be called on this number: valid / wrong_number / refused / do_not_call.
    status: Mapped[str] = mapped_column(String(16), default="valid")

    client: Mapped[Client] = relationship(back_populates="phone_links")
    phone: Mapped[Phone] = relationship(back_populates="client_links")


class ContactPerson(Base):
    """Someone who speaks for a company client."""

    __tablename__ = "contact_persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(256))
    position: Mapped[str] = mapped_column(String(128), default="")
    email: Mapped[str] = mapped_column(String(256), default="")
    phone_id: Mapped[int | None] = mapped_column(ForeignKey("phones.id", ondelete="SET NULL"), index=True)

    client: Mapped[Client] = relationship(back_populates="contacts")
    phone: Mapped[Phone | None] = relationship()


class Call(Base):
    """One call as Asterisk saw it, keyed by Linkedid so a replay or a retry never logs it twice."""

    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_client_started", "client_id", "started_at"),
                      Index("ix_calls_operator_started", "operator_id", "started_at"))  # an agent's day, /calls

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    caller_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    caller_raw: Mapped[str] = mapped_column(String(128), default="")
    caller_name: Mapped[str] = mapped_column(String(256), default="")
    did: Mapped[str] = mapped_column(String(64), default="")
    queue: Mapped[str] = mapped_column(String(64), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    agent_interface: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    wait_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="ringing")  # ringing/talking/ended
    outcome: Mapped[str | None] = mapped_column(String(16))  # answered/abandoned/missed/busy/failed
    disposition: Mapped[str] = mapped_column(String(32), default="")  # what the operator picked
    ivr_path: Mapped[str] = mapped_column(String(256), default="")  # menu steps taken: main>2>service

    department: Mapped[Department | None] = relationship()
    operator: Mapped[Operator | None] = relationship()
    client: Mapped[Client | None] = relationship()


class Interaction(Base):
    """A note in a client's timeline, optionally about a call."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_client_created", "client_id", "created_at"),)  # newest notes first

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

    author: Mapped[Operator | None] = relationship()
    call: Mapped[Call | None] = relationship()


class Request(Base):
    """A client's request to a department: typed, with an SLA deadline, an assignee and a history.

    `client_id` is empty when a web form or an e-mail came from someone the CRM does not know;
    the contact fields keep what they gave. `linkedid` makes a call's callback task unique.
    """

    __tablename__ = "requests"
    # a department's unfinished requests: its inbox, and the overdue count every desk reads on load
    __table_args__ = (Index("ix_requests_department_status", "department_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    subject: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open / in_progress / closed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(16), default="question")  # question/complaint/order/service/callback
    body: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="desk")  # desk / web / email / call
    contact: Mapped[str] = mapped_column(String(256), default="", index=True)  # e-mail or phone given, as given
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    linkedid: Mapped[str | None] = mapped_column(String(64), unique=True)

    department: Mapped[Department | None] = relationship()
    client: Mapped[Client | None] = relationship()
    assignee: Mapped[Operator | None] = relationship()


PHONE_STATUSES = ("valid", "wrong_number", "refused", "do_not_call")
DEBT_STATUSES = ("active", "promised", "paid", "disputed", "closed")
OPEN_DEBT_STATUSES = ("active", "promised", "disputed")


class Debt(Base):
    """What a debtor (a Client) owes one creditor under one contract; the contract number is the
    import's key, so loading the same file twice changes nothing."""

    __tablename__ = "debts"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    creditor: Mapped[str] = mapped_column(String(256))
    contract: Mapped[str] = mapped_column(String(64), unique=True)
    principal: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    total_due: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    days_past_due: Mapped[int] = mapped_column(default=0)
    region: Mapped[str] = mapped_column(String(128), default="")  # debtor's address region, as imported
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)  # DEBT_STATUSES
    promised_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    promised_date: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship()


class DebtContact(Base):
    """The contact ledger of a debt: every call placed about it, `attempt` or `conversation`
    (routing.compliance counts these against the law's limits)."""

    __tablename__ = "debt_contacts"
    __table_args__ = (Index("ix_debt_contacts_debt_at", "debt_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    debt_id: Mapped[int] = mapped_column(ForeignKey("debts.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))  # attempt / conversation
    phone_e164: Mapped[str] = mapped_column(String(20))
    linkedid: Mapped[str | None] = mapped_column(String(64), unique=True)  # one entry per call
