"""The REST API's shapes, so /api/openapi.json documents exactly what the desk sends and gets."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from agent_desk.i18n import DISPOSITIONS

Disposition = Literal[DISPOSITIONS]  # type: ignore[valid-type]


class Me(BaseModel):
    id: int
    login: str
    name: str
    role: Literal["operator", "department_head", "supervisor", "admin"]
    interface: str | None
    language: str


class Phone(BaseModel):
    e164: str
    display: str
    kind: str
    label: str = ""


class Person(BaseModel):
    id: int
    name: str
    position: str = ""


class Contact(Person):
    email: str = ""
    phones: list[Phone] = []


class Manager(BaseModel):
    id: int
    name: str
    login: str


class OpenRequest(BaseModel):
    id: int
    subject: str
    department: str | None = None
    status: str
    created_at: datetime | str | None = None


class Interaction(BaseModel):
    type: Literal["call", "note"]
    at: datetime | str | None = None
    direction: str | None = None
    outcome: str | None = None
    operator: str | None = None
    note: str | None = None
    wait_seconds: int | None = None
    talk_seconds: int | None = None
    disposition: str | None = None
    linkedid: str | None = None  # a call's: its recording, where the page lists it as playable


class CardDebt(BaseModel):
    """An open debt on the card; amounts are decimal strings."""

    id: int
    contract: str
    creditor: str
    principal: str
    total_due: str
    currency: str
    days_past_due: int
    status: str
    promised_amount: str | None = None
    promised_date: str | None = None


class ClientCard(BaseModel):
    id: int
    kind: str
    name: str
    segment: str
    email: str = ""
    city: str = ""
    notes: str = ""
    contact: Person | None = None
    contacts: list[Contact] = []
    phones: list[Phone] = []
    manager: Manager | None = None
    open_requests: list[OpenRequest] = []
    last_interactions: list[Interaction] = []
    debts: list[CardDebt] = []


class ClientPage(BaseModel):
    card: ClientCard
    timeline: list[Interaction]
    recorded: list[str] = []  # Linkedids of the timeline's calls whose recording the asker may play


class ClientSummary(BaseModel):
    id: int
    name: str
    kind: str
    segment: str
    city: str = ""
    phones: list[Phone] = []


class ClientIn(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    kind: Literal["person", "company"] = "person"
    phones: list[str] = Field(min_length=1, max_length=10)
    segment: str = Field("standard", max_length=32)
    email: str = Field("", max_length=256)
    city: str = Field("", max_length=128)


class ClientUpdate(BaseModel):
    """The fields to change; those left out stay. `manager_id` null removes the personal manager."""

    name: str | None = Field(None, max_length=256)
    segment: Literal["standard", "vip", "key", "new"] | None = None
    email: str | None = Field(None, max_length=256)
    city: str | None = Field(None, max_length=128)
    notes: str | None = Field(None, max_length=10_000)
    manager_id: int | None = None


class ClientNoteIn(BaseModel):
    note: str = Field(min_length=1, max_length=10_000)


class MergeIn(BaseModel):
    duplicate_id: int


class PhoneIn(BaseModel):
    number: str = Field(min_length=1, max_length=64)
    label: str = Field("", max_length=64)


class CallRow(BaseModel):
    linkedid: str
    started_at: datetime
    direction: str
    caller_raw: str
    caller_e164: str | None
    caller_display: str
    caller_name: str
    client_id: int | None
    client_name: str | None
    queue: str
    operator_id: int | None
    operator_name: str | None
    status: str
    outcome: str | None
    wait_seconds: int | None
    talk_seconds: int | None
    disposition: str


class NoteIn(BaseModel):
    note: str = Field("", max_length=10_000)
    disposition: Disposition
    client_id: int | None = None


class NoteOut(BaseModel):
    linkedid: str
    client_id: int | None
    disposition: str


class DialIn(BaseModel):
    number: str = Field(min_length=1, max_length=64)


class DialOut(BaseModel):
    number: str
    action_id: str


class LanguageIn(BaseModel):
    language: Literal["ru", "en"]


class LanguageOut(BaseModel):
    language: str
