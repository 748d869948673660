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

from sqlalchemy import Select, delete, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.client import AmiCommands
from ami_bridge.events import CallEvent
from callcard.bus import CALLS_TOPIC, Bus
from callcard.waits import wait_any
from crm_core.agents import AgentQueue
from crm_core.models import Call, ClientPhone, Debt, DebtContact, Department, Operator, Phone, as_utc
from routing import compliance
from routing.campaigns.dialler import (
    RECENT,
    Abandon,
    Agent,
    Connect,
    Connected,
    Decision,
    DiallerState,
    Ended,
    LiveCall,
)
from routing.campaigns.lists import check_filters, refresh_list
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip
from routing.campaigns.retry import next_attempt
from routing.inbox.service import create_callback_for_call

log = logging.getLogger(__name__)

LIST_REFRESH_SECONDS = 60.0
CAMPAIGNS_REFRESH_SECONDS = 2.0
ANSWERED_RECALL = timedelta(days=1)  # a conversation with no disposition: try again tomorrow at the earliest
RECOVER_WINDOW = timedelta(hours=2)  # an attempt a previous run left open longer than this has ended unseen
WRONG_NUMBER = "wrong_number"
NO_VALID_PHONE = "no_valid_phone"
COLLECTIONS = "collections"  # the department that gets callbacks for abandoned debtors, when it exists
LIVE_ANSWER_OUTCOMES = ("answered", "abandoned", "machine")  # someone (or something) picked up
# The call log's outcome of a call -> the attempt's (routing.campaigns.models.ATTEMPT_OUTCOMES).
CALL_LOG_OUTCOMES = {"answered": "answered", "abandoned": "abandoned", "missed": "no_answer", "busy": "busy",
                     "failed": "failed"}


class DialRefused(Exception):
    """A preview call that may not be placed. `code` is the guard's verdict code (or `not_ready`,
    `not_listed`, `held`, `on_call`, `not_placed`); the message is the guard's reason, in the rule set's language."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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
    agents: tuple[Agent, ...]


@dataclass(frozen=True)
class History:
    """What the pacing learns of a campaign from the database: its rolling 30 days of live answers
    and abandons, and (the first time it is seen) whether its recent calls were answered."""

    live_answers: int
    abandons: int
    answered: list[bool] | None = None


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


@dataclass(frozen=True)
class DebtCheck:
    """The guard's answer for a debt: a number to dial now, else why not and when to try again."""

    phone: str | None
    retry_at: datetime | None = None  # None with no phone: never (the debt leaves the list)
    code: str = ""
    reason: str = ""


def check_debt(session: Session, campaign_id: int, debt: Debt, rules: compliance.RuleSet,
               now: datetime) -> DebtCheck:
    """The first number of the debt that may be dialled now; every number refused is recorded
    as a DialSkip with the guard's reason."""
    facts, ledger = debt_facts(session, debt)
    phones = session.execute(
        select(Phone.e164, ClientPhone.status).join(ClientPhone, ClientPhone.phone_id == Phone.id)
        .where(ClientPhone.client_id == debt.client_id).order_by(ClientPhone.id)).all()
    if not phones:
        reason = "У должника нет ни одного номера"
        _skip(session, campaign_id, debt.id, "", NO_VALID_PHONE, reason, None, now)
        return DebtCheck(None, None, NO_VALID_PHONE, reason)
    retries: list[datetime] = []
    code = reason = ""
    for e164, status in phones:
        if status == WRONG_NUMBER:
            code, reason = WRONG_NUMBER, f"Номер {e164} отмечен как чужой (не номер должника)"
            _skip(session, campaign_id, debt.id, e164, code, reason, None, now)
            continue
        verdict = compliance.may_call(ledger, now, facts, rules, e164)
        if verdict.allowed:
            return DebtCheck(e164)
        code, reason = verdict.code, verdict.reason
        _skip(session, campaign_id, debt.id, e164, verdict.code, verdict.reason, verdict.next_allowed_at, now)
        if verdict.next_allowed_at is not None:
            retries.append(verdict.next_allowed_at)
    return DebtCheck(None, min(retries) if retries else None, code, reason)


def _skip(session: Session, campaign_id: int, debt_id: int, phone: str, code: str, reason: str,
          next_allowed_at: datetime | None, now: datetime) -> None:
    row = session.get(DialSkip, (campaign_id, debt_id, phone))
    if row is None:
        session.add(DialSkip(campaign_id=campaign_id, debt_id=debt_id, phone_e164=phone, code=code, reason=reason,
                             at=now, next_allowed_at=next_allowed_at, count=1))
    else:
        row.code, row.reason, row.at, row.next_allowed_at = code, reason, now, next_allowed_at
        row.count += 1


def _due(campaign_id: int, now: datetime, held: set[int]) -> Select[tuple[CampaignDebt]]:
    """The campaign's pending debts due now that no operator is previewing, oldest due first."""
    query = select(CampaignDebt).where(CampaignDebt.campaign_id == campaign_id, CampaignDebt.state == "pending",
                                       (CampaignDebt.next_at.is_(None)) | (CampaignDebt.next_at <= now))
    if held:
        query = query.where(CampaignDebt.debt_id.not_in(held))
    return query.order_by(CampaignDebt.next_at.is_not(None), CampaignDebt.next_at, CampaignDebt.debt_id)


def _hold_back(row: CampaignDebt, check: DebtCheck) -> None:
    """The guard refused every number: due again when it allows, else off the list."""
    row.next_at = check.retry_at
    row.state = "pending" if check.retry_at is not None else "excluded"


class DiallerService:
    def __init__(self, sessions: sessionmaker[Session], bus: Bus, commands: AmiCommands, *, region: str = "RU",
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), wrapup_seconds: float = 15.0,
                 tick: float = 0.5, monotonic: Callable[[], float] = time.monotonic) -> None:
        """`clock` is the law's time (calling hours, ledger); `monotonic` the pacing's (talk and ring
        times): a benchmark on a sped-up simulator passes the simulator's clock."""
        self._sessions = sessions
        self._bus = bus
        self._commands = commands
        self._region = region
        self._clock = clock
        self._monotonic = monotonic
        self._tick = tick
        self.state = DiallerState(wrapup_seconds)
        self._campaigns: dict[int, CampaignView] = {}  # the running ones
        self._known: dict[int, CampaignView] = {}  # every campaign seen running: its calls may outlive a pause
        self._campaigns_at = -1e9
        self._lists_at: dict[int, float] = {}
        self._rules: dict[str, compliance.RuleSet] = {}
        self._recovered = False
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
                await wait_any(self._tick, stop)
        finally:
            events.cancel()
            await subscription.close()

    async def tick(self) -> None:
        now_mono = self._monotonic()
        if now_mono - self._campaigns_at > CAMPAIGNS_REFRESH_SECONDS:
            await self._load_campaigns()
            self._campaigns_at = now_mono
        now = self._clock()
        for campaign in list(self._campaigns.values()):
            try:
                await self._dial(campaign, now)
            except Exception:  # one campaign's bad data must not stop the others
                log.exception("dialler: campaign %s could not dial", campaign.id)

    async def _dial(self, campaign: CampaignView, now: datetime) -> None:
        if campaign.mode == "preview" or not in_schedule(campaign.schedule, now):
            return
        count = self.state.to_dial(campaign.id, campaign.mode, list(campaign.agents), campaign.max_lines,
                                   self._monotonic())
        if count <= 0:
            return
        async with self._db:  # holds are read under the lock, so a preview taken meanwhile is seen
            held = self.state.held_debts(campaign.id, self._monotonic())
            picks = await asyncio.to_thread(self._in_session, self._pick, campaign, count, held, now)
        for pick in picks:
            await self._originate(campaign, pick)

    async def _consume(self, subscription: Any) -> None:
        async for message in subscription:
            try:
                event = CallEvent.from_dict(message)
                call = self.state.calls.get(event.linkedid)
                campaign = self._known.get(call.campaign_id) if call is not None else None
                agents = list(campaign.agents) if campaign is not None else []
                for decision in self.state.on_event(event, agents, self._monotonic()):
                    await self._act(decision)
            except Exception:
                log.exception("dialler: could not handle %.200r", message)

    def wrapped_up(self, operator_id: int) -> None:
        """The operator recorded the call's result: free for the next debtor without waiting."""
        self.state.wrapped_up(operator_id)

    # --- decisions -------------------------------------------------------------------------

    async def _act(self, decision: Decision) -> None:
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
            assert decision.call.operator is not None
            await self._db_job(self._connected, decision.call.channel_id, decision.call.operator.operator_id,
                               self._clock())
        elif isinstance(decision, Ended):
            await self._db_job(self._ended, decision, self._clock())

    async def _originate(self, campaign: CampaignView, pick: Pick, preview_operator: int | None = None) -> str | None:
        """Write the attempt, then place the call; its ChannelId, or None when the PBX refused it."""
        channel_id = f"dial-{uuid.uuid4().hex}"
        await self._db_job(self._record_attempt, campaign.id, pick, channel_id, self._clock())
        call = LiveCall(channel_id, campaign.id, pick.debt_id, pick.phone, self._monotonic(), preview_operator)
        self.state.placed(call)
        try:
            await self._commands.originate(
                f"Local/{pick.phone}@outbound", context="dialler", exten=str(campaign.id),
                caller_id=campaign.caller_id, channel_id=channel_id, timeout=float(campaign.ring_seconds),
                variables={"CALLCARD_CAMPAIGN": str(campaign.id), "CALLCARD_DEBT": str(pick.debt_id)})
        except Exception:
            log.exception("dialler: Originate to %s failed", pick.phone)
            self.state.calls.pop(channel_id, None)
            await self._db_job(self._not_placed, channel_id, self._clock())
            return None
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
        if not self._recovered:
            for call in await self._db_job(self._recover, self._clock(), self._monotonic()):
                self.state.adopt(call)
            self._recovered = True
        self._campaigns, histories = await self._db_job(self._read_campaigns, self._clock())
        for campaign_id, history in histories.items():  # the pure state changes on the loop only
            if history.answered is not None:
                self.state.seed_answers(campaign_id, history.answered)
            self.state.seed_abandon_rate(campaign_id, history.live_answers, history.abandons)
        self._known.update(self._campaigns)

    def _read_campaigns(self, session: Session,
                        now: datetime) -> tuple[dict[int, CampaignView], dict[int, History]]:
        views: dict[int, CampaignView] = {}
        histories: dict[int, History] = {}
        running = list(session.scalars(select(Campaign).where(Campaign.status == "running")))
        for stopped in set(self._lists_at) - {c.id for c in running}:
            del self._lists_at[stopped]  # refreshed again as soon as it runs again
        for campaign in running:
            try:  # checked before anything is written: a campaign whose data is bad waits, the others dial
                check_filters(campaign.filters or {})
                in_schedule(campaign.schedule or {}, now)
            except Exception:
                log.exception("dialler: campaign %s has a filter or schedule it cannot use", campaign.id)
                continue
            if self._monotonic() - self._lists_at.get(campaign.id, -1e9) > LIST_REFRESH_SECONDS:
                first = campaign.id not in self._lists_at and campaign.id not in self._known
                refresh_list(session, campaign, now)
                self._lists_at[campaign.id] = self._monotonic()
                histories[campaign.id] = History(*_abandon_history(session, campaign.id, now),
                                                 _answer_history(session, campaign.id) if first else None)
            views[campaign.id] = self._view(session, campaign)
        return views, histories

    def _view(self, session: Session, campaign: Campaign) -> CampaignView:
        """The campaign and its agents to put debtors through to: ready on it, and not paused in
        every queue they are in (on a break for the desk, or logged out by a supervisor); a pause
        keeps the ready flags for when they are back."""
        paused = exists().where(AgentQueue.operator_id == Operator.id, AgentQueue.paused.is_(True))
        working = exists().where(AgentQueue.operator_id == Operator.id, AgentQueue.paused.is_(False))
        agents = tuple(Agent(op_id, iface) for op_id, iface in session.execute(
            select(Operator.id, Operator.interface)
            .join(CampaignOperator, CampaignOperator.operator_id == Operator.id)
            .where(CampaignOperator.campaign_id == campaign.id, CampaignOperator.ready.is_(True),
                   Operator.active.is_(True), Operator.interface.is_not(None), ~paused | working)))
        return CampaignView(campaign.id, campaign.mode, campaign.max_lines, campaign.ring_seconds,
                            campaign.caller_id, campaign.rule_set, dict(campaign.schedule or {}), agents)

    def _recover(self, session: Session, now: datetime, now_mono: float) -> list[LiveCall]:
        """After a restart: finish the attempts a previous run left open whose calls have ended (as
        the call log saw them), follow those still on, and put back on the list the debts left
        `dialling` by calls that were never placed."""
        adopted = []
        for attempt in session.scalars(select(DialAttempt).where(DialAttempt.ended_at.is_(None))):
            logged = session.scalar(select(Call).where(Call.linkedid == attempt.channel_id))
            if logged is not None and logged.status == "ended":
                if logged.outcome == "answered" and logged.operator_id is not None and attempt.connected_at is None:
                    self._connected(session, attempt.channel_id, logged.operator_id,
                                    as_utc(logged.answered_at) if logged.answered_at else now)
                self._finish(session, attempt, CALL_LOG_OUTCOMES.get(logged.outcome or "", "failed"), now)
            elif as_utc(attempt.placed_at) < now - RECOVER_WINDOW:
                self._finish(session, attempt, "failed", now)
            else:
                operator = session.get(Operator, attempt.operator_id) if attempt.operator_id else None
                adopted.append(LiveCall(
                    attempt.channel_id, attempt.campaign_id, attempt.debt_id, attempt.phone_e164, now_mono,
                    answered=now_mono if attempt.answered_at else None,
                    operator=Agent(operator.id, operator.interface) if operator and operator.interface else None,
                    connected=now_mono if attempt.connected_at else None))
        still_on = exists().where(DialAttempt.campaign_id == CampaignDebt.campaign_id,
                                  DialAttempt.debt_id == CampaignDebt.debt_id, DialAttempt.ended_at.is_(None))
        session.execute(update(CampaignDebt).where(CampaignDebt.state == "dialling", ~still_on)
                        .values(state="pending").execution_options(synchronize_session=False))
        return adopted

    def _rule_set(self, name: str) -> compliance.RuleSet:
        if name not in self._rules:
            self._rules[name] = compliance.load_rules(compliance.RULE_SETS[name])
        return self._rules[name]

    def _pick(self, session: Session, campaign: CampaignView, count: int, held: set[int],
              now: datetime) -> list[Pick]:
        """Up to `count` due debts the guard lets us call now; the others are rescheduled with a reason."""
        rules = self._rule_set(campaign.rule_set)
        picks: list[Pick] = []
        for row in session.scalars(_due(campaign.id, now, held).limit(count * 4 + 10)):
            if len(picks) >= count:
                break
            check = check_debt(session, campaign.id, row.debt, rules, now)
            if check.phone is None:
                _hold_back(row, check)
                continue
            row.state = "dialling"
            picks.append(Pick(row.debt_id, check.phone))
        return picks

    def _record_attempt(self, session: Session, campaign_id: int, pick: Pick, channel_id: str, now: datetime) -> None:
        session.add(DialAttempt(channel_id=channel_id, campaign_id=campaign_id, debt_id=pick.debt_id,
                                phone_e164=pick.phone, placed_at=now))
        session.add(DebtContact(debt_id=pick.debt_id, at=now, kind=compliance.ATTEMPT, phone_e164=pick.phone,
                                linkedid=channel_id))

    def _not_placed(self, session: Session, channel_id: str, now: datetime) -> None:
        """The Originate never left: no call took place, so the ledger does not count it."""
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == channel_id))
        session.execute(delete(DebtContact).where(DebtContact.linkedid == channel_id))
        if attempt is not None:
            self._finish(session, attempt, "failed", now)

    def _connected(self, session: Session, channel_id: str, operator_id: int, now: datetime) -> None:
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == channel_id))
        if attempt is None:
            return
        attempt.connected_at, attempt.operator_id = now, operator_id
        attempt.answered_at = attempt.answered_at or now
        contact = session.scalar(select(DebtContact).where(DebtContact.linkedid == channel_id))
        if contact is not None:
            contact.kind = compliance.CONVERSATION

    def _ended(self, session: Session, ended: Ended, now: datetime) -> None:
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == ended.call.channel_id))
        if attempt is not None:
            self._finish(session, attempt, ended.outcome, now)

    def _finish(self, session: Session, attempt: DialAttempt, outcome: str, now: datetime) -> None:
        """The call is over: its outcome, the debt's next try, and a callback for a debtor who
        answered and found nobody."""
        attempt.ended_at = now
        if outcome == "answered" and attempt.connected_at is None:
            outcome = "abandoned"
        attempt.outcome = outcome
        if outcome in LIVE_ANSWER_OUTCOMES and attempt.answered_at is None:
            attempt.answered_at = now
        campaign = session.get(Campaign, attempt.campaign_id)
        self._reschedule(session, campaign, attempt, outcome, now)
        if outcome == "abandoned":
            debt = session.get(Debt, attempt.debt_id)
            if debt is not None:
                create_callback_for_call(
                    session, attempt.channel_id, debt.client_id, _callback_department(session, campaign),
                    attempt.phone_e164, now, "должник ответил на звонок кампании, свободного оператора не было")

    def _reschedule(self, session: Session, campaign: Campaign | None, attempt: DialAttempt, outcome: str,
                    now: datetime) -> None:
        row = session.get(CampaignDebt, (attempt.campaign_id, attempt.debt_id))
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
        retry_at = next_attempt(campaign.retry if campaign is not None else None, outcome, row.attempts, now)
        row.state, row.next_at = ("pending", retry_at) if retry_at is not None else ("done", None)

    # --- preview mode ------------------------------------------------------------------------

    async def preview_next(self, operator_id: int, campaign_id: int) -> dict[str, Any] | None:
        """The next due debt of a running campaign the guard allows calling now, held for the
        operator for PREVIEW_HOLD seconds (asking again moves on to the next one); None when
        nothing is due."""
        async with self._db:  # holds are read and taken under the lock: two operators never get one debt
            now_mono = self._monotonic()
            held = self.state.held_debts(campaign_id, now_mono, but=operator_id)
            last = self.state.previewing(operator_id, campaign_id, now_mono)
            found = await asyncio.to_thread(self._in_session, self._preview_next, campaign_id, held, last,
                                            self._clock())
            if found is not None:
                self.state.hold_preview(campaign_id, found["debt_id"], operator_id, now_mono)
        return found

    def _preview_next(self, session: Session, campaign_id: int, held: set[int], last: int | None,
                      now: datetime) -> dict[str, Any] | None:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None or campaign.status != "running":
            return None
        rules = self._rule_set(campaign.rule_set)
        skipped = held | ({last} if last is not None else set())
        rows = list(session.scalars(_due(campaign_id, now, skipped).limit(50)))
        if last is not None:  # the one the operator passed over comes round again last
            rows += session.scalars(_due(campaign_id, now, set()).where(CampaignDebt.debt_id == last))
        for row in rows:
            check = check_debt(session, campaign_id, row.debt, rules, now)
            if check.phone is not None:
                return {"debt_id": row.debt_id, "client_id": row.debt.client_id, "phone": check.phone,
                        "contract": row.debt.contract}
            _hold_back(row, check)
        return None

    async def dial_preview(self, operator_id: int, campaign_id: int, debt_id: int) -> str:
        """Call the debt the operator previewed (the guard is asked again); the debtor is put
        through to them on answer. Returns the call's ChannelId; DialRefused says why not."""
        await self._load_campaigns()
        campaign = self._campaigns.get(campaign_id)
        agent = next((a for a in campaign.agents if a.operator_id == operator_id), None) if campaign else None
        if campaign is None or agent is None:
            raise DialRefused("not_ready", "the campaign is not running or you are not ready in it")
        if self.state.on_call(agent):
            raise DialRefused("on_call", "you are on a call: finish it first")
        holder = self.state.previewer(campaign_id, debt_id, self._monotonic())
        if holder not in (None, operator_id):
            raise DialRefused("held", "another operator is looking at this debtor")
        check = await self._db_job(self._preview_check, campaign_id, debt_id, self._clock())
        if check.phone is None:
            raise DialRefused(check.code, check.reason)
        self.state.release_preview(campaign_id, debt_id)
        channel_id = await self._originate(campaign, Pick(debt_id, check.phone), preview_operator=operator_id)
        if channel_id is None:
            raise DialRefused("not_placed", "the PBX did not take the call: try again in a moment")
        return channel_id

    def _preview_check(self, session: Session, campaign_id: int, debt_id: int, now: datetime) -> DebtCheck:
        row = session.get(CampaignDebt, (campaign_id, debt_id))
        if row is None or row.state != "pending":
            return DebtCheck(None, code="not_listed", reason="this debt is not waiting on the campaign's list")
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        check = check_debt(session, campaign_id, row.debt, self._rule_set(campaign.rule_set), now)
        if check.phone is not None:
            row.state = "dialling"
        else:
            _hold_back(row, check)
        return check


def _callback_department(session: Session, campaign: Campaign | None) -> int | None:
    """Collections, when the centre has one; else the campaign's own department."""
    found = session.scalar(select(Department.id).where(Department.code == COLLECTIONS))
    return found if found is not None else (campaign.department_id if campaign is not None else None)


def _abandon_history(session: Session, campaign_id: int, now: datetime) -> tuple[int, int]:
    """(live answers, abandons) of the campaign over the last 30 days."""
    since = now - timedelta(days=30)
    rows = {outcome: count for outcome, count in session.execute(
        select(DialAttempt.outcome, func.count()).where(DialAttempt.campaign_id == campaign_id,
                                                        DialAttempt.placed_at >= since,
                                                        DialAttempt.outcome.in_(("answered", "abandoned")))
        .group_by(DialAttempt.outcome))}
    return rows.get("answered", 0) + rows.get("abandoned", 0), rows.get("abandoned", 0)


def _answer_history(session: Session, campaign_id: int) -> list[bool]:
    """Whether each of the campaign's last RECENT ended calls was answered, oldest first."""
    outcomes = session.scalars(
        select(DialAttempt.outcome).where(DialAttempt.campaign_id == campaign_id, DialAttempt.ended_at.is_not(None))
        .order_by(DialAttempt.ended_at.desc(), DialAttempt.id.desc()).limit(RECENT)).all()
    return [outcome in LIVE_ANSWER_OUTCOMES for outcome in reversed(outcomes)]
