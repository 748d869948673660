"""The dialler: places campaign calls through the collection-law guard and puts answered debtors
through to free operators.

Every tick, for each running campaign inside its schedule, the pure `DiallerState` says how many
lines to open; due debts are picked, each number asked of `routing.compliance.may_call` (a
refusal is recorded as a DialSkip with its reason and reschedules the debt), and an allowed call
is written (DialAttempt + ledger entry) before its Originate, so the desk finds it when it pops.
The bridge's CallEvents drive the rest: answered -> Redirect to an operator or to the apology,
operator answered -> the ledger entry becomes a conversation, ended -> outcome and retry time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.client import AmiCommands
from ami_bridge.events import CallEvent
from callcard.bus import CALLS_TOPIC, Bus
from crm_core.models import ClientPhone, Debt, DebtContact, Operator, Phone, as_utc
from routing import compliance
from routing.campaigns.dialler import (
    Abandon,
    Agent,
    Connect,
    Connected,
    Decision,
    DiallerState,
    Ended,
    LiveCall,
)
from routing.campaigns.lists import refresh_list
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip
from routing.campaigns.retry import next_attempt
from routing.inbox.service import create_callback_for_call

log = logging.getLogger(__name__)

LIST_REFRESH_SECONDS = 60.0
CAMPAIGNS_REFRESH_SECONDS = 2.0
ANSWERED_RECALL = timedelta(days=1)  # a conversation with no disposition: try again tomorrow at the earliest
WRONG_NUMBER = "wrong_number"
NO_VALID_PHONE = "no_valid_phone"
OUTSIDE_SCHEDULE = "outside_schedule"


class DialRefused(Exception):
    """A preview call the guard (or the phone's status) does not allow; the message says why."""


@dataclass(frozen=True)
class CampaignView:
    """What the tick needs of a campaign, read once per refresh."""

    id: int
    mode: str
    max_lines: int
    ring_seconds: int
    caller_id: str
    rule_set: str
    schedule: dict[str, Any]
    retry: dict[str, Any]
    department_id: int | None
    agents: tuple[Agent, ...]


@dataclass(frozen=True)
class Pick:
    debt_id: int
    phone: str


def in_schedule(schedule: dict[str, Any], now: datetime) -> bool:
    """The centre's own hours for the campaign (the law's hours in the debtor's time are checked apart)."""
    if not schedule:
        return True
    zone = ZoneInfo(schedule.get("time_zone") or "Europe/Moscow")
    local = now.astimezone(zone)
    weekdays = schedule.get("weekdays")
    if weekdays is not None and local.weekday() not in weekdays:
        return False
    start, end = schedule.get("start") or "00:00", schedule.get("end") or "24:00"
    clock = local.strftime("%H:%M")
    return start <= clock < end


def debt_facts(session: Session, debt: Debt) -> tuple[compliance.Debt, list[compliance.Contact]]:
    """The guard's view of a debt: debtor facts, barred numbers and the contact ledger."""
    client = debt.client
    barred = frozenset(session.scalars(
        select(Phone.e164).join(ClientPhone, ClientPhone.phone_id == Phone.id)
        .where(ClientPhone.client_id == client.id, ClientPhone.status.in_(("do_not_call", "refused")))))
    facts = compliance.Debt(time_zone=client.time_zone or None, do_not_call=barred,
                            refused_interaction=client.contact_refused, protected=bool(client.protection),
                            promise_to_pay=debt.promised_date)
    ledger = [compliance.Contact(as_utc(at), kind, phone) for at, kind, phone in session.execute(
        select(DebtContact.at, DebtContact.kind, DebtContact.phone_e164).where(DebtContact.debt_id == debt.id))]
    return facts, ledger


def check_debt(session: Session, campaign_id: int, debt: Debt, rules: compliance.RuleSet,
               now: datetime) -> tuple[str | None, datetime | None, str]:
    """The first number of the debt that may be dialled now, else (None, earliest retry, reason);
    every number refused is recorded with its reason."""
    facts, ledger = debt_facts(session, debt)
    phones = session.execute(
        select(Phone.e164, ClientPhone.status).join(ClientPhone, ClientPhone.phone_id == Phone.id)
        .where(ClientPhone.client_id == debt.client_id).order_by(ClientPhone.id)).all()
    if not phones:
        _skip(session, campaign_id, debt.id, "", NO_VALID_PHONE, "У должника нет ни одного номера", None, now)
        return None, None, "У должника нет ни одного номера"
    retries: list[datetime] = []
    reason = ""
    for e164, status in phones:
        if status == WRONG_NUMBER:
            reason = f"Номер {e164} отмечен как чужой (не номер должника)"
            _skip(session, campaign_id, debt.id, e164, WRONG_NUMBER, reason, None, now)
            continue
        verdict = compliance.may_call(ledger, now, facts, rules, e164)
        if verdict.allowed:
            return e164, None, ""
        reason = verdict.reason
        _skip(session, campaign_id, debt.id, e164, verdict.code, verdict.reason, verdict.next_allowed_at, now)
        if verdict.next_allowed_at is not None:
            retries.append(verdict.next_allowed_at)
    return None, min(retries) if retries else None, reason


def _skip(session: Session, campaign_id: int, debt_id: int, phone: str, code: str, reason: str,
          next_allowed_at: datetime | None, now: datetime) -> None:
    row = session.get(DialSkip, (campaign_id, debt_id, phone))
    if row is None:
        session.add(DialSkip(campaign_id=campaign_id, debt_id=debt_id, phone_e164=phone, code=code, reason=reason,
                             at=now, next_allowed_at=next_allowed_at, count=1))
    else:
        row.code, row.reason, row.at, row.next_allowed_at = code, reason, now, next_allowed_at
        row.count += 1


class DiallerService:
    def __init__(self, sessions: sessionmaker[Session], bus: Bus, commands: AmiCommands, *, region: str = "RU",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), wrapup_seconds: float = 15.0,
                 tick: float = 0.5) -> None:
        self._sessions = sessions
        self._bus = bus
        self._commands = commands
        self._region = region
        self._clock = clock
        self._tick = tick
        self.state = DiallerState(wrapup_seconds)
        self._campaigns: dict[int, CampaignView] = {}
        self._campaigns_at = -1e9
        self._lists_at: dict[int, float] = {}
        self._rules: dict[str, compliance.RuleSet] = {}
        self._db = asyncio.Lock()  # one database job at a time: SQLite has one writer anyway
        self.placed = 0

    # --- the loop --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self._bus.subscribe(CALLS_TOPIC)
        events = asyncio.create_task(self._consume(subscription), name="dialler-events")
        try:
            while not stop.is_set():
                try:
                    await self.tick()
                except Exception:
                    log.exception("dialler: tick failed")
                try:
                    await asyncio.wait_for(stop.wait(), self._tick)
                except TimeoutError:
                    pass
        finally:
            events.cancel()
            await subscription.close()

    async def tick(self) -> None:
        now_mono = time.monotonic()
        if now_mono - self._campaigns_at > CAMPAIGNS_REFRESH_SECONDS:
            await self._load_campaigns()
            self._campaigns_at = now_mono
        now = self._clock()
        for campaign in list(self._campaigns.values()):
            if campaign.mode == "preview" or not in_schedule(campaign.schedule, now):
                continue
            count = self.state.to_dial(campaign.id, campaign.mode, list(campaign.agents), campaign.max_lines, now_mono)
            if count > 0:
                for pick in await self._db_job(self._pick, campaign, count, now):
                    await self._originate(campaign, pick)

    async def _consume(self, subscription: Any) -> None:
        async for message in subscription:
            try:
                event = CallEvent.from_dict(message)
                call = self.state.calls.get(event.linkedid)
                campaign = self._campaigns.get(call.campaign_id) if call is not None else None
                agents = list(campaign.agents) if campaign is not None else []
                for decision in self.state.on_event(event, agents, time.monotonic()):
                    await self._act(decision, event)
            except Exception:
                log.exception("dialler: could not handle %.200r", message)

    def wrapped_up(self, operator_id: int) -> None:
        self.state.wrapped_up(operator_id)

    # --- decisions -------------------------------------------------------------------------

    async def _act(self, decision: Decision, event: CallEvent) -> None:
        if isinstance(decision, Connect):
            try:
                await self._commands.redirect(decision.call.channel_id, "connect-agent", decision.agent.extension)
            except Exception:
                log.exception("dialler: could not put %s through to %s", decision.call.channel_id,
                              decision.agent.interface)
                await self._commands.redirect(decision.call.channel_id, "dialler-abandon", "s")
        elif isinstance(decision, Abandon):
            log.info("dialler: no free operator for %s: apology", decision.call.channel_id)
            await self._commands.redirect(decision.call.channel_id, "dialler-abandon", "s")
        elif isinstance(decision, Connected):
            await self._db_job(self._connected, decision.call, self._clock())
        elif isinstance(decision, Ended):
            await self._db_job(self._ended, decision, self._clock())

    async def _originate(self, campaign: CampaignView, pick: Pick, preview_operator: int | None = None) -> str:
        channel_id = f"dial-{uuid.uuid4().hex}"
        await self._db_job(self._record_attempt, campaign.id, pick, channel_id, self._clock())
        call = LiveCall(channel_id, campaign.id, pick.debt_id, pick.phone, time.monotonic(), preview_operator)
        self.state.placed(call)
        try:
            await self._commands.originate(
                f"Local/{pick.phone}@outbound", context="dialler", exten=str(campaign.id),
                caller_id=campaign.caller_id, channel_id=channel_id, timeout=float(campaign.ring_seconds),
                variables={"CALLCARD_CAMPAIGN": str(campaign.id), "CALLCARD_DEBT": str(pick.debt_id)})
        except Exception:
            log.exception("dialler: Originate to %s failed", pick.phone)
            self.state.calls.pop(channel_id, None)
            await self._db_job(self._not_placed, campaign, channel_id, self._clock())
            return channel_id
        self.placed += 1
        return channel_id

    async def _db_job(self, work: Callable[..., Any], *args: Any) -> Any:
        async with self._db:
            return await asyncio.to_thread(self._in_session, work, *args)

    def _in_session(self, work: Callable[..., Any], *args: Any) -> Any:
        with self._sessions.begin() as session:
            return work(session, *args)

    # --- database work (worker thread) -------------------------------------------------------

    async def _load_campaigns(self) -> None:
        self._campaigns = await self._db_job(self._read_campaigns, self._clock())

    def _read_campaigns(self, session: Session, now: datetime) -> dict[int, CampaignView]:
        views = {}
        for campaign in session.scalars(select(Campaign).where(Campaign.status == "running")):
            if time.monotonic() - self._lists_at.get(campaign.id, -1e9) > LIST_REFRESH_SECONDS:
                refresh_list(session, campaign, now)
                self._lists_at[campaign.id] = time.monotonic()
                self.state.seed_abandon_rate(campaign.id, *_abandon_history(session, campaign.id, now))
            agents = tuple(Agent(op_id, iface) for op_id, iface in session.execute(
                select(Operator.id, Operator.interface)
                .join(CampaignOperator, CampaignOperator.operator_id == Operator.id)
                .where(CampaignOperator.campaign_id == campaign.id, CampaignOperator.ready.is_(True),
                       Operator.active.is_(True), Operator.interface.is_not(None))))
            views[campaign.id] = CampaignView(
                campaign.id, campaign.mode, campaign.max_lines, campaign.ring_seconds, campaign.caller_id,
                campaign.rule_set, dict(campaign.schedule or {}), dict(campaign.retry or {}), campaign.department_id,
                agents)
        return views

    def _rule_set(self, name: str) -> compliance.RuleSet:
        if name not in self._rules:
            self._rules[name] = compliance.load_rules(compliance.RULE_SETS[name])
        return self._rules[name]

    def _pick(self, session: Session, campaign: CampaignView, count: int, now: datetime) -> list[Pick]:
        """Up to `count` due debts the guard lets us call now; the others are rescheduled with a reason."""
        rules = self._rule_set(campaign.rule_set)
        picks: list[Pick] = []
        due = session.scalars(
            select(CampaignDebt).where(CampaignDebt.campaign_id == campaign.id, CampaignDebt.state == "pending",
                                       (CampaignDebt.next_at.is_(None)) | (CampaignDebt.next_at <= now))
            .order_by(CampaignDebt.next_at.is_not(None), CampaignDebt.next_at, CampaignDebt.debt_id)
            .limit(count * 4 + 10))
        for row in due:
            if len(picks) >= count:
                break
            phone, retry_at, _ = check_debt(session, campaign.id, row.debt, rules, now)
            if phone is None:
                row.next_at = retry_at
                row.state = "pending" if retry_at is not None else "excluded"
                continue
            row.state = "dialling"
            picks.append(Pick(row.debt_id, phone))
        return picks

    def _record_attempt(self, session: Session, campaign_id: int, pick: Pick, channel_id: str, now: datetime) -> None:
        session.add(DialAttempt(channel_id=channel_id, campaign_id=campaign_id, debt_id=pick.debt_id,
                                phone_e164=pick.phone, placed_at=now))
        session.add(DebtContact(debt_id=pick.debt_id, at=now, kind=compliance.ATTEMPT, phone_e164=pick.phone,
                                linkedid=channel_id))

    def _not_placed(self, session: Session, campaign: CampaignView, channel_id: str, now: datetime) -> None:
        """The Originate never left: no call took place, so the ledger does not count it."""
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == channel_id))
        session.execute(delete(DebtContact).where(DebtContact.linkedid == channel_id))
        if attempt is not None:
            attempt.outcome, attempt.ended_at = "failed", now
            self._reschedule(session, campaign.id, campaign.retry, attempt, "failed", now)

    def _connected(self, session: Session, call: LiveCall, now: datetime) -> None:
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == call.channel_id))
        if attempt is None or call.operator is None:
            return
        attempt.connected_at, attempt.operator_id = now, call.operator.operator_id
        attempt.answered_at = attempt.answered_at or now
        contact = session.scalar(select(DebtContact).where(DebtContact.linkedid == call.channel_id))
        if contact is not None:
            contact.kind = compliance.CONVERSATION

    def _ended(self, session: Session, ended: Ended, now: datetime) -> None:
        call = ended.call
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == call.channel_id))
        if attempt is None:
            return
        attempt.ended_at = now
        outcome = ended.outcome
        if outcome == "answered" and attempt.connected_at is None:
            outcome = "abandoned"
        attempt.outcome = outcome
        if call.answered is not None and attempt.answered_at is None:
            attempt.answered_at = now
        campaign = self._campaigns.get(call.campaign_id)
        retry = campaign.retry if campaign is not None else {}
        self._reschedule(session, call.campaign_id, retry, attempt, outcome, now)
        if outcome == "abandoned":
            debt = session.get(Debt, attempt.debt_id)
            if debt is not None:
                create_callback_for_call(
                    session, call.channel_id, debt.client_id, campaign.department_id if campaign else None,
                    attempt.phone_e164, now, "должник ответил на звонок кампании, свободного оператора не было")

    def _reschedule(self, session: Session, campaign_id: int, retry: dict[str, Any], attempt: DialAttempt,
                    outcome: str, now: datetime) -> None:
        row = session.get(CampaignDebt, (campaign_id, attempt.debt_id))
        if row is None:
            return
        row.attempts += 1
        row.last_outcome = outcome
        if attempt.disposition:  # the operator's disposition already set what happens next
            if row.state == "dialling":
                row.state = "pending"
            return
        if outcome == "answered":
            row.state, row.next_at = "pending", now + ANSWERED_RECALL
            return
        retry_at = next_attempt(retry, outcome, row.attempts, now)
        row.state, row.next_at = ("pending", retry_at) if retry_at is not None else ("done", None)

    # --- preview mode ------------------------------------------------------------------------

    async def preview_next(self, operator_id: int, campaign_id: int) -> dict[str, Any] | None:
        """The next due debt of a preview campaign the guard allows, for the operator to look at first."""
        return await self._db_job(self._preview_next, campaign_id, self._clock())

    def _preview_next(self, session: Session, campaign_id: int, now: datetime) -> dict[str, Any] | None:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            return None
        rules = self._rule_set(campaign.rule_set)
        due = session.scalars(
            select(CampaignDebt).where(CampaignDebt.campaign_id == campaign_id, CampaignDebt.state == "pending",
                                       (CampaignDebt.next_at.is_(None)) | (CampaignDebt.next_at <= now))
            .order_by(CampaignDebt.debt_id).limit(50))
        for row in due:
            phone, retry_at, _ = check_debt(session, campaign_id, row.debt, rules, now)
            if phone is not None:
                return {"debt_id": row.debt_id, "client_id": row.debt.client_id, "phone": phone,
                        "contract": row.debt.contract}
            row.next_at, row.state = retry_at, "pending" if retry_at is not None else "excluded"
        return None

    async def dial_preview(self, operator_id: int, campaign_id: int, debt_id: int) -> str:
        """Call the debt the operator previewed; the debtor is put through to them on answer."""
        await self._load_campaigns()
        campaign = self._campaigns.get(campaign_id)
        agent = next((a for a in campaign.agents if a.operator_id == operator_id), None) if campaign else None
        if campaign is None or agent is None:
            raise DialRefused("the campaign is not running or you are not ready in it")
        phone, _, reason = await self._db_job(self._preview_check, campaign_id, debt_id, self._clock())
        if phone is None:
            raise DialRefused(reason or "this debt cannot be called now")
        return await self._originate(campaign, Pick(debt_id, phone), preview_operator=operator_id)

    def _preview_check(self, session: Session, campaign_id: int, debt_id: int,
                       now: datetime) -> tuple[str | None, datetime | None, str]:
        row = session.get(CampaignDebt, (campaign_id, debt_id))
        if row is None or row.state != "pending":
            return None, None, "this debt is not on the campaign's list"
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        result = check_debt(session, campaign_id, row.debt, self._rule_set(campaign.rule_set), now)
        if result[0] is not None:
            row.state = "dialling"
        return result


def _abandon_history(session: Session, campaign_id: int, now: datetime) -> tuple[int, int]:
    """(live answers, abandons) of the campaign over the last 30 days."""
    since = now - timedelta(days=30)
    rows = {outcome: count for outcome, count in session.execute(
        select(DialAttempt.outcome, func.count()).where(DialAttempt.campaign_id == campaign_id,
                                                        DialAttempt.placed_at >= since,
                                                        DialAttempt.outcome.in_(("answered", "abandoned")))
        .group_by(DialAttempt.outcome))}
    return rows.get("answered", 0) + rows.get("abandoned", 0), rows.get("abandoned", 0)
