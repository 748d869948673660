"""What the operator says became of a campaign call, and what that changes for the debt.

`record_disposition` is the one place a disposition takes effect: the attempt and the Call row
carry it, the client's timeline gets a note, and the debt, its place on the campaign's list,
the debtor's phones and the reminder tasks follow from it. Times are passed in (`now`), so every
effect is tested exactly; the caller commits.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from crm_core.call_log import ensure_call
from crm_core.clients import NOTE_MAX
from crm_core.db import insert_or_ignore
from crm_core.models import (
    OPEN_DEBT_STATUSES,
    Client,
    ClientPhone,
    Debt,
    DebtContact,
    Department,
    Interaction,
    Operator,
    Phone,
)
from routing import compliance
from routing.campaigns.models import Campaign, CampaignDebt, DialAttempt
from routing.campaigns.retry import next_attempt
from routing.inbox.service import create_request

PROMISE_TO_PAY, PAID, DISPUTE, WRONG_NUMBER, REFUSED, CALLBACK = (
    "promise_to_pay", "paid", "dispute", "wrong_number", "refused", "callback")
NO_ANSWER, BUSY, MACHINE = "no_answer", "busy", "machine"
# In the order the desk offers them (its shortcut keys follow this order).
DISPOSITIONS = (PROMISE_TO_PAY, PAID, DISPUTE, WRONG_NUMBER, REFUSED, CALLBACK, NO_ANSWER, BUSY, MACHINE)
RETRIED = (NO_ANSWER, BUSY, MACHINE)  # scheduled again by the campaign's retry rules
# Nobody who owes the debt was talked to: the ledger counts the call as an attempt, not a conversation.
NO_CONVERSATION = (WRONG_NUMBER, NO_ANSWER, BUSY, MACHINE)
MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)
MAX_CALLBACK_AHEAD = timedelta(days=365)
COLLECTIONS = "collections"


class DispositionError(ValueError):
    """Bad input for a disposition; `code` names the problem (`disp.err.<code>` in the desk's
    catalog, with `values`), the message says it in English."""

    def __init__(self, code: str, message: str, /, **values: object) -> None:
        super().__init__(message)
        self.code = code
        self.values = values


def record_disposition(
    session: Session,
    channel_id: str,
    code: str,
    operator_id: int | None,
    *,
    amount: Decimal | str | None = None,
    promised_date: date | None = None,
    callback_at: datetime | None = None,
    note: str = "",
    now: datetime,
) -> DialAttempt:
    """Record the operator's disposition of the campaign call `channel_id` and apply its effects.

    A call takes one disposition: a second one is refused rather than applied twice.
    """
    if code not in DISPOSITIONS:
        raise DispositionError("unknown_code", f"unknown disposition {code!r}; use one of {', '.join(DISPOSITIONS)}",
                               code=code)
    if not isinstance(note, str) or len(note) > NOTE_MAX:
        raise DispositionError("note_too_long", f"the note must be text of at most {NOTE_MAX} characters",
                               max=NOTE_MAX)
    _only_fields_of(code, amount, promised_date, callback_at)
    attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == channel_id).with_for_update())
    if attempt is None:
        raise DispositionError("unknown_call", f"no campaign call {channel_id[:80]!r}")
    if attempt.disposition:
        raise DispositionError("already_recorded", f"this call's disposition is {attempt.disposition!r} already",
                               code=attempt.disposition)
    if operator_id is not None and session.get(Operator, operator_id) is None:
        raise DispositionError("unknown_operator", f"no operator with id {operator_id}")
    debt = attempt.debt
    client = debt.client
    campaign = session.get(Campaign, attempt.campaign_id)
    assert campaign is not None  # the attempt's foreign key cascades
    zones = _debtor_zones(client, attempt.phone_e164, campaign)
    row = _list_row(session, attempt)
    details = ""

    if code == PROMISE_TO_PAY:
        value = _amount(amount)
        day = _promise_day(promised_date, now, zones)
        debt.status, debt.promised_amount, debt.promised_date = "promised", value, day
        day_after = max(_midnight(day + timedelta(days=1), zone) for zone in zones)
        _pending(row, attempt, day_after)
        _hold_other_lists(session, debt.id, campaign.id, day_after)
        details = f"{value} {debt.currency} → {day.isoformat()}"
        create_request(
            session, "promise", f"Проверить оплату: договор {debt.contract}, {value} {debt.currency} "
            f"до {day.isoformat()}", now, body=note, source="call", client_id=client.id,
            contact=attempt.phone_e164, author_id=operator_id,
            department_id=_collections_id(session, campaign),
            due_at=max(_midnight(day + timedelta(days=2), zone) for zone in zones))
    elif code == PAID:
        debt.status = "paid"
        row.state, row.next_at = "done", None
        _close_other_lists(session, debt.id, campaign.id, "done")
    elif code == DISPUTE:
        debt.status = "disputed"
        row.state, row.next_at = "excluded", None
        _close_other_lists(session, debt.id, campaign.id, "excluded")
    elif code == WRONG_NUMBER:
        session.execute(
            update(ClientPhone)
            .where(ClientPhone.client_id == client.id,
                   ClientPhone.phone_id.in_(select(Phone.id).where(Phone.e164 == attempt.phone_e164)))
            .values(status="wrong_number"))
        _pending(row, attempt, None)  # another number of the debtor may still be right
    elif code == REFUSED:
        client.contact_refused = True
        row.state, row.next_at = "excluded", None
    elif code == CALLBACK:
        when = _callback_at(callback_at, now)
        _pending(row, attempt, when)
        details = when.isoformat()
        request = create_request(
            session, "callback", f"Перезвонить должнику: {client.name}, договор {debt.contract}"[:256], now,
            body=note, source="call", client_id=client.id, contact=attempt.phone_e164, author_id=operator_id,
            department_id=_collections_id(session, campaign), due_at=when)
        request.assignee_id = operator_id  # the debtor agreed the time with this operator
    else:  # RETRIED
        attempts = row.attempts + (1 if attempt.ended_at is None else 0)  # the dialler counts a call when it ends
        retry_at = next_attempt(campaign.retry, code, attempts, now)
        row.last_outcome = code
        if retry_at is None:
            row.state, row.next_at = "done", None
        else:
            _pending(row, attempt, retry_at)

    if code in NO_CONVERSATION:
        _no_conversation(session, attempt)
    attempt.disposition = code
    call = ensure_call(session, channel_id, attempt.placed_at)
    call.direction = "outbound"
    call.disposition = code
    if call.client_id is None:
        call.client_id = client.id
    text = "\n".join(part for part in (details, note.strip()) if part)
    session.add(Interaction(client_id=client.id, call_id=call.id, author_id=operator_id, note=text,
                            created_at=now))
    session.flush()
    sync_debt_open(session, client)
    return attempt


def sync_debt_open(session: Session, client: Client) -> None:
    """`Client.debt_open` says whether any of their debts is still open (routing sends them to collections)."""
    session.flush()
    client.debt_open = bool(session.scalar(select(exists().where(
        Debt.client_id == client.id, Debt.status.in_(OPEN_DEBT_STATUSES)))))


def _only_fields_of(code: str, amount: object, promised_date: object, callback_at: object) -> None:
    """Each disposition takes exactly its own fields, so a mistaken form never half-applies."""
    given = {"amount": amount, "promised_date": promised_date, "callback_at": callback_at}
    allowed = {PROMISE_TO_PAY: {"amount", "promised_date"}, CALLBACK: {"callback_at"}}.get(code, set())
    extra = sorted(name for name, value in given.items() if value not in (None, "") and name not in allowed)
    if extra:
        raise DispositionError("extra_field", f"{code} takes no {extra[0]}", field=extra[0], code=code)


def _amount(value: Decimal | str | None) -> Decimal:
    if value is None or value == "":
        raise DispositionError("amount_required", "a promise to pay needs the amount")
    try:
        amount = Decimal(str(value).strip().replace(" ", "").replace(",", "."))
    except InvalidOperation:
        raise DispositionError("bad_amount", f"{str(value)[:40]!r} is not an amount", value=str(value)[:40]) from None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT or amount != amount.quantize(Decimal("0.01")):
        raise DispositionError("bad_amount", f"{str(value)[:40]!r} is not an amount above zero with at most "
                               "two decimals", value=str(value)[:40])
    return amount.quantize(Decimal("0.01"))


def _promise_day(value: date | None, now: datetime, zones: tuple[ZoneInfo, ...]) -> date:
    """The promised date; not before today in the debtor's time (the earliest of their possible zones)."""
    if value is None:
        raise DispositionError("date_required", "a promise to pay needs the date")
    if isinstance(value, datetime) or not isinstance(value, date):
        raise DispositionError("bad_date", f"{str(value)[:40]!r} is not a date", value=str(value)[:40])
    today = min(now.astimezone(zone).date() for zone in zones)
    if value < today:
        raise DispositionError("date_in_past", f"the promised date {value.isoformat()} is in the past",
                               date=value.isoformat())
    return value


def _callback_at(value: datetime | None, now: datetime) -> datetime:
    if value is None:
        raise DispositionError("callback_required", "a call back needs the date and time")
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise DispositionError("bad_callback", "the call-back time needs a date, a time and a time zone")
    if value <= now or value > now + MAX_CALLBACK_AHEAD:
        raise DispositionError("callback_not_ahead", "the call-back time must be in the future, within a year")
    return value.astimezone(UTC)


def _debtor_zones(client: Client, phone: str, campaign: Campaign) -> tuple[ZoneInfo, ...]:
    """The debtor's zones as the guard sees them; the campaign's own zone when none is known."""
    zones = compliance.debtor_zones(compliance.Debt(time_zone=client.time_zone or None), phone)
    if zones:
        return zones
    return (ZoneInfo((campaign.schedule or {}).get("time_zone") or "UTC"),)


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    """The start of `day` in `zone`, in UTC (SQLite keeps no zone: every stored time is UTC)."""
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def _list_row(session: Session, attempt: DialAttempt) -> CampaignDebt:
    """The debt's row on the campaign's list (put back if the list lost it meanwhile)."""
    row = session.get(CampaignDebt, (attempt.campaign_id, attempt.debt_id))
    if row is None:
        row = CampaignDebt(campaign_id=attempt.campaign_id, debt_id=attempt.debt_id, state="pending", attempts=0,
                           last_outcome="")
        session.add(row)
    return row


def _pending(row: CampaignDebt, attempt: DialAttempt, next_at: datetime | None) -> None:
    """Due again at `next_at`; while the call is still on, the row stays `dialling` (the dialler makes
    it pending when the call ends), so the debt is never dialled twice at once."""
    row.next_at = next_at
    if not (row.state == "dialling" and attempt.ended_at is None):
        row.state = "pending"


def _others(debt_id: int, campaign_id: int) -> Any:
    return ((CampaignDebt.debt_id == debt_id) & (CampaignDebt.campaign_id != campaign_id)
            & (CampaignDebt.state == "pending"))


def _close_other_lists(session: Session, debt_id: int, campaign_id: int, state: str) -> None:
    """Paid or disputed is the debt's own fact: no other campaign dials it either."""
    session.execute(update(CampaignDebt).where(_others(debt_id, campaign_id)).values(state=state, next_at=None))


def _hold_other_lists(session: Session, debt_id: int, campaign_id: int, until: datetime) -> None:
    """A promise holds the debt in every campaign until the day after the promised date."""
    session.execute(update(CampaignDebt).where(_others(debt_id, campaign_id),
                                               (CampaignDebt.next_at.is_(None)) | (CampaignDebt.next_at < until))
                    .values(next_at=until))


def _no_conversation(session: Session, attempt: DialAttempt) -> None:
    """The call's ledger entry is an attempt: nobody who owes the debt was talked to."""
    entry = session.scalar(select(DebtContact).where(DebtContact.linkedid == attempt.channel_id))
    if entry is not None:
        entry.kind = compliance.ATTEMPT
        return
    insert_or_ignore(session, DebtContact, ["linkedid"], debt_id=attempt.debt_id, at=attempt.placed_at,
                     kind=compliance.ATTEMPT, phone_e164=attempt.phone_e164, linkedid=attempt.channel_id)


def _collections_id(session: Session, campaign: Campaign) -> int | None:
    """Reminders go to collections; to the campaign's own department when there is none."""
    found = session.scalar(select(Department.id).where(Department.code == COLLECTIONS))
    return found if found is not None else campaign.department_id
