"""The dialler end to end over real AMI: DiallerService -> Bridge -> PBX simulator -> CallEvents ->
DialAttempt, contact ledger, retry schedule, callbacks and skip report in SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.client import AmiCommands
from ami_bridge.events import CallEventKind as K
from ami_bridge.service import Bridge
from callcard.bus import CALLS_TOPIC, MemoryBus
from callcard.pbx_sim import PbxSimulator, default_config
from callcard.settings import Settings
from crm_core.agents import AgentQueue
from crm_core.models import Call, Client, ClientPhone, Debt, DebtContact, Department, Operator, Phone, Request
from routing.campaigns.dialler import Agent
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip
from routing.campaigns.service import DiallerService, DialRefused

SCALE = 10.0
TUESDAY_NOON_MSK = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 14:00 in Yekaterinburg
ANSWERS = "+73517654321"  # the simulated debtor answers (last digit 1) and talks 4 s
BUSY = "+73517654322"  # Busy()
RINGS_OUT = "+73517654323"  # rings until the Originate's timeout


class RecordedCommands:
    """The bridge's real AMI door, noting each Originate so a test can say none was sent."""

    def __init__(self, commands: AmiCommands) -> None:
        self._commands = commands
        self.originated: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._commands, name)

    async def originate(self, channel: str, **options: Any) -> str:
        self.originated.append(channel)
        return await self._commands.originate(channel, **options)


@dataclass
class Clock:
    now: datetime = TUESDAY_NOON_MSK

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    sim: PbxSimulator
    bridge: Bridge
    bus: MemoryBus
    commands: RecordedCommands
    service: DiallerService
    sessions: sessionmaker[Session]
    stop: asyncio.Event
    clock: Clock = field(default_factory=Clock)

    async def running(self, until, timeout: float = 10.0):  # type: ignore[no-untyped-def]
        """Run the service until `until()` is truthy; returns its value."""
        runner = asyncio.create_task(self.service.run(self.stop))
        try:
            return await _until(until, timeout)
        finally:
            self.stop.set()
            await runner


@dataclass
class World:
    campaign_id: int
    operators: list[int]
    debts: list[int]


def _world(sessions: sessionmaker[Session], *phones: str, ready: bool = True, mode: str = "progressive",
           operators: int = 1, client_facts: dict | None = None, promise: date | None = None,
           phone_status: str = "valid") -> World:
    """A running campaign, its operators (101, 102, ...) and one debtor per phone."""
    with sessions.begin() as s:
        ops = [Operator(login=f"op{101 + i}", name=f"Operator {101 + i}", password_hash="!",
                        interface=f"Local/{101 + i}@agents") for i in range(operators)]
        campaign = Campaign(name="Просрочка 30+", status="running", mode=mode, caller_id="+74950000000",
                            max_lines=5, ring_seconds=10, filters={"min_days": 30})
        debts = []
        for n, phone in enumerate(phones):
            client = Client(name=f"Должник {n}", debt_open=True, time_zone="Asia/Yekaterinburg",
                            **(client_facts or {}))
            client.phone_links.append(ClientPhone(phone=Phone(e164=phone, kind="mobile"), label="mobile",
                                                  status=phone_status))
            debts.append(Debt(client=client, creditor="Банк", contract=f"K-{n}", principal=Decimal("1000"),
                              total_due=Decimal("1500.50"), days_past_due=40, promised_date=promise,
                              status="promised" if promise else "active"))
        s.add_all([*ops, campaign, *debts])
        s.flush()
        s.add_all([CampaignOperator(campaign_id=campaign.id, operator_id=op.id, ready=ready) for op in ops])
        return World(campaign.id, [op.id for op in ops], [debt.id for debt in debts])


@pytest.fixture
async def rig(sessions: sessionmaker[Session]) -> AsyncIterator[Rig]:
    sim = PbxSimulator(default_config(time_scale=SCALE))
    await sim.start("127.0.0.1", 0)
    for ext in ("101", "102"):
        sim.set_agent(f"Local/{ext}@agents/n", 0.5, talk=600)  # the debtor ends the talk
    bus = MemoryBus()
    stop = asyncio.Event()
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now)
    tasks = [asyncio.create_task(bridge.run(stop))]
    await asyncio.wait_for(bridge.client.connected.wait(), 5)
    commands = RecordedCommands(bridge.commands)
    clock = Clock()
    service = DiallerService(sessions, bus, commands, clock=clock, tick=0.05,  # type: ignore[arg-type]
                             wrapup_seconds=0.0)
    yield Rig(sim, bridge, bus, commands, service, sessions, asyncio.Event(), clock)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await sim.stop()


async def _until(check, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not (result := check()):
            await asyncio.sleep(0.05)
    return result


def _attempts(sessions: sessionmaker[Session]) -> list[DialAttempt]:
    with sessions() as s:
        return list(s.scalars(select(DialAttempt).order_by(DialAttempt.id)))


def _ended(sessions: sessionmaker[Session], count: int = 1, skip: int = 0):  # type: ignore[no-untyped-def]
    """A check for `_until`: the ended attempts once `count` have ended (after the first `skip`)."""
    def check() -> list[DialAttempt] | None:
        done = [a for a in _attempts(sessions)[skip:] if a.ended_at is not None]
        return done if len(done) >= count else None
    return check


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


async def test_answered_debtor_is_put_through_and_the_ledger_counts_a_conversation(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS)
    calls = await rig.bus.subscribe(CALLS_TOPIC)
    runner = asyncio.create_task(rig.service.run(rig.stop))
    async with asyncio.timeout(10):
        async for event in calls:
            if event["kind"] == K.RINGING:
                ringing = event
                break
    assert ringing["interface"] == "Local/101@agents"
    assert ringing["linkedid"].startswith("dial-") and ringing["caller_num"] == ANSWERS
    (attempt,) = await _until(_ended(rig.sessions))
    rig.stop.set()
    await runner
    assert rig.commands.originated == [f"Local/{ANSWERS}@outbound"]
    assert (attempt.channel_id, attempt.outcome, attempt.phone_e164) == (ringing["linkedid"], "answered", ANSWERS)
    assert attempt.operator_id == world.operators[0]
    assert attempt.answered_at is not None and attempt.connected_at is not None
    with rig.sessions() as s:
        (contact,) = s.scalars(select(DebtContact))
        assert (contact.kind, contact.linkedid, contact.debt_id) == ("conversation", attempt.channel_id,
                                                                     world.debts[0])
        row = s.get(CampaignDebt, (world.campaign_id, attempt.debt_id))
        assert (row.state, row.attempts, row.last_outcome) == ("pending", 1, "answered")
        assert _utc(row.next_at) == TUESDAY_NOON_MSK + timedelta(days=1)  # no disposition yet: tomorrow


@pytest.mark.parametrize(("phone", "outcome", "delay"), [(BUSY, "busy", 45), (RINGS_OUT, "no_answer", 90)])
async def test_unreached_debtor_is_retried_per_the_campaigns_rules(rig: Rig, phone: str, outcome: str,
                                                                   delay: int) -> None:
    world = _world(rig.sessions, phone)
    with rig.sessions.begin() as s:
        s.get(Campaign, world.campaign_id).retry = {outcome: {"delay_minutes": delay, "max_attempts": 3}}
    (attempt,) = await rig.running(_ended(rig.sessions))
    assert attempt.outcome == outcome and attempt.connected_at is None
    with rig.sessions() as s:
        assert s.scalar(select(DebtContact.kind)) == "attempt"
        row = s.get(CampaignDebt, (world.campaign_id, attempt.debt_id))
        assert (row.state, row.attempts, row.last_outcome) == ("pending", 1, outcome)
        assert _utc(row.next_at) == TUESDAY_NOON_MSK + timedelta(minutes=delay)


async def test_retries_exhausted_take_the_debt_off_the_list(rig: Rig) -> None:
    world = _world(rig.sessions, BUSY)
    with rig.sessions.begin() as s:
        s.get(Campaign, world.campaign_id).retry = {"busy": {"delay_minutes": 1, "max_attempts": 2}}
        s.add(CampaignDebt(campaign_id=world.campaign_id, debt_id=world.debts[0], attempts=1, last_outcome="busy"))
    await rig.running(_ended(rig.sessions))
    with rig.sessions() as s:
        row = s.get(CampaignDebt, (world.campaign_id, world.debts[0]))
        assert (row.state, row.attempts, row.next_at) == ("done", 2, None)


async def test_no_ready_operator_means_no_originate_at_all(rig: Rig) -> None:
    _world(rig.sessions, ANSWERS, ready=False)
    runner = asyncio.create_task(rig.service.run(rig.stop))
    await _until(lambda: rig.service._campaigns)  # the campaign is loaded and ticking
    await asyncio.sleep(0.3)  # several ticks
    rig.stop.set()
    await runner
    assert rig.commands.originated == [] and _attempts(rig.sessions) == []


async def test_a_ready_operator_on_a_break_gets_no_debtor_until_back(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS)
    with rig.sessions.begin() as s:  # paused in their one queue, as the desk's "Lunch" leaves them
        s.add(AgentQueue(operator_id=world.operators[0], queue="collections", paused=True, pause_reason="lunch"))
    runner = asyncio.create_task(rig.service.run(rig.stop))
    await _until(lambda: rig.service._campaigns)
    await asyncio.sleep(0.3)  # several ticks
    assert rig.commands.originated == []
    with rig.sessions.begin() as s:
        s.get(AgentQueue, (world.operators[0], "collections")).paused = False
    await _until(lambda: rig.commands.originated)
    rig.stop.set()
    await runner
    with rig.sessions() as s:  # still ready on the campaign: the pause took nothing to tick again
        assert s.scalar(select(CampaignOperator.ready).where(CampaignOperator.operator_id == world.operators[0]))


async def test_debtor_answering_when_every_operator_is_busy_hears_the_apology_and_gets_a_callback(rig: Rig) -> None:
    """Predictive over-dials by the measured answer rate (1 in 5 here): three lines for two
    operators; all three debtors answer, so the third finds nobody."""
    world = _world(rig.sessions, ANSWERS, "+73517654325", "+73517654326", mode="predictive", operators=2)
    with rig.sessions.begin() as s:
        collections = Department(code="collections", name="Взыскание", queue="collections")
        s.add(collections)
        for i in range(20):  # yesterday's calls: what the pacing learns the answer rate from
            at = TUESDAY_NOON_MSK - timedelta(days=1, minutes=i)
            s.add(DialAttempt(channel_id=f"dial-old-{i}", campaign_id=world.campaign_id, debt_id=world.debts[0],
                              phone_e164=ANSWERS, placed_at=at, ended_at=at + timedelta(seconds=30),
                              outcome="answered" if i % 5 == 0 else "no_answer"))
        s.flush()
        collections_id = collections.id
    ended = await rig.running(_ended(rig.sessions, 3, skip=20))
    assert len(rig.commands.originated) == 3
    assert sorted(a.outcome for a in ended) == ["abandoned", "answered", "answered"]
    (abandoned,) = [a for a in ended if a.outcome == "abandoned"]
    assert abandoned.answered_at is not None and abandoned.connected_at is None
    assert {a.operator_id for a in ended if a.outcome == "answered"} == set(world.operators)
    with rig.sessions() as s:
        (callback,) = s.scalars(select(Request).where(Request.linkedid == abandoned.channel_id))
        assert (callback.kind, callback.source, callback.contact) == ("callback", "call", abandoned.phone_e164)
        assert callback.department_id == collections_id and callback.due_at is not None
        assert s.scalar(select(DebtContact.kind).where(DebtContact.linkedid == abandoned.channel_id)) == "attempt"
        row = s.get(CampaignDebt, (world.campaign_id, abandoned.debt_id))
        assert row.last_outcome == "abandoned" and _utc(row.next_at) == TUESDAY_NOON_MSK + timedelta(minutes=15)
    assert rig.service.state.abandon_rate(world.campaign_id) == pytest.approx(1 / 7)  # 4 seeded answers + 3


@pytest.mark.parametrize(("facts", "phone_status", "promise", "code"), [
    ({"protection": "bankruptcy"}, "valid", None, "protected"),
    ({"contact_refused": True}, "valid", None, "refused_interaction"),
    ({}, "do_not_call", None, "do_not_call"),
    ({}, "refused", None, "do_not_call"),
    ({}, "valid", date(2026, 11, 30), "promise_to_pay"),
])
async def test_guard_refusals_are_recorded_and_never_dialled(rig: Rig, facts: dict, phone_status: str,
                                                             promise: date | None, code: str) -> None:
    world = _world(rig.sessions, ANSWERS, client_facts=facts, promise=promise, phone_status=phone_status)
    for _ in range(3):
        await rig.service.tick()
    assert rig.commands.originated == [] and _attempts(rig.sessions) == []
    with rig.sessions() as s:
        (skip,) = s.scalars(select(DialSkip))
        assert (skip.campaign_id, skip.phone_e164, skip.code, skip.count) == (world.campaign_id, ANSWERS, code, 1)
        assert skip.reason
        row = s.scalar(select(CampaignDebt))
        if code == "promise_to_pay":  # the day after the promise, from 08:00 in Yekaterinburg
            assert "2026-11-30" in skip.reason
            assert _utc(row.next_at) == _utc(skip.next_allowed_at) == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
        else:
            assert (row.state, skip.next_allowed_at) == ("excluded", None)


async def test_a_promise_to_pay_holds_the_debt_until_the_day_after_then_it_is_dialled(rig: Rig) -> None:
    _world(rig.sessions, ANSWERS, promise=date(2026, 11, 30))
    await rig.service.tick()
    rig.clock.now = datetime(2026, 11, 30, 18, 59, tzinfo=UTC)  # 23:59 on the promised day, local
    await rig.service.tick()
    assert rig.commands.originated == []
    rig.clock.now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # 08:00 the day after: lawful again
    await rig.service.tick()
    assert rig.commands.originated == [f"Local/{ANSWERS}@outbound"]


async def test_outside_the_debtors_hours_the_call_waits_for_the_morning(rig: Rig) -> None:
    _world(rig.sessions, ANSWERS)
    rig.clock.now = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 22:00 in Yekaterinburg, 20:00 in Moscow
    await rig.service.tick()
    assert rig.commands.originated == []
    with rig.sessions() as s:
        (skip,) = s.scalars(select(DialSkip))
        assert skip.code == "outside_hours" and "22:00" in skip.reason
        assert _utc(skip.next_allowed_at) == datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 08:00 local
        assert _utc(s.scalar(select(CampaignDebt.next_at))) == _utc(skip.next_allowed_at)


async def test_outside_the_campaigns_schedule_nothing_happens(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS)
    with rig.sessions.begin() as s:
        s.get(Campaign, world.campaign_id).schedule = {
            "weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00", "time_zone": "Europe/Moscow"}
    rig.clock.now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)  # Saturday
    await rig.service.tick()
    rig.clock.now = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 18:00 in Moscow: closed
    await rig.service.tick()
    assert rig.commands.originated == []
    with rig.sessions() as s:
        assert s.scalars(select(DialSkip)).all() == []
        assert s.scalar(select(CampaignDebt.state)) == "pending"
    rig.clock.now = datetime(2026, 11, 24, 14, 59, tzinfo=UTC)  # 17:59: open
    await rig.service.tick()
    assert rig.commands.originated == [f"Local/{ANSWERS}@outbound"]


async def test_a_campaign_with_a_broken_filter_does_not_stop_the_others(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS, ready=False)
    with rig.sessions.begin() as s:
        s.add(Campaign(name="broken", status="running", filters={"min_total": "много"}))
    await rig.service.tick()
    assert list(rig.service._campaigns) == [world.campaign_id]
    with rig.sessions() as s:
        assert s.scalar(select(CampaignDebt.campaign_id)) == world.campaign_id


# --- preview mode ------------------------------------------------------------------------------


async def test_preview_holds_the_debt_for_one_operator_and_calls_it_when_asked(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS, mode="preview", operators=2)
    anna, boris = world.operators
    calls = await rig.bus.subscribe(CALLS_TOPIC)
    runner = asyncio.create_task(rig.service.run(rig.stop))
    await _until(lambda: rig.service._campaigns)
    await asyncio.sleep(0.2)
    assert rig.commands.originated == []  # preview: nothing automatic
    found = await rig.service.preview_next(anna, world.campaign_id)
    assert found == {"debt_id": world.debts[0], "client_id": found["client_id"], "phone": ANSWERS,
                     "contract": "K-0"}
    assert await rig.service.preview_next(boris, world.campaign_id) is None  # Anna's for now
    with pytest.raises(DialRefused) as refused:
        await rig.service.dial_preview(boris, world.campaign_id, world.debts[0])
    assert refused.value.code == "held"
    assert await rig.service.preview_next(anna, world.campaign_id) == found  # nothing else is due
    channel_id = await rig.service.dial_preview(anna, world.campaign_id, world.debts[0])
    async with asyncio.timeout(10):
        async for event in calls:
            if event["kind"] == K.RINGING:
                break
    assert (event["linkedid"], event["interface"]) == (channel_id, "Local/101@agents")
    (attempt,) = await _until(_ended(rig.sessions))
    rig.stop.set()
    await runner
    assert (attempt.channel_id, attempt.outcome, attempt.operator_id) == (channel_id, "answered", anna)
    assert rig.commands.originated == [f"Local/{ANSWERS}@outbound"]


async def test_preview_moves_on_to_the_next_debt_and_each_operator_gets_another(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS, "+73517654325", "+73517654326", mode="preview", operators=2)
    anna, boris = world.operators
    await rig.service.tick()
    first = await rig.service.preview_next(anna, world.campaign_id)
    second = await rig.service.preview_next(boris, world.campaign_id)
    assert (first["debt_id"], second["debt_id"]) == tuple(world.debts[:2])
    moved = await rig.service.preview_next(anna, world.campaign_id)  # "next": lets go of the first
    assert moved["debt_id"] == world.debts[2]
    assert (await rig.service.preview_next(boris, world.campaign_id))["debt_id"] == world.debts[0]


async def test_preview_call_the_guard_refuses_carries_its_reason(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS, mode="preview", client_facts={"protection": "bankruptcy"})
    await rig.service.tick()
    assert await rig.service.preview_next(world.operators[0], world.campaign_id) is None
    with rig.sessions.begin() as s:  # say the list row came back (a supervisor re-listed it)
        s.get(CampaignDebt, (world.campaign_id, world.debts[0])).state = "pending"
    with pytest.raises(DialRefused) as refused:
        await rig.service.dial_preview(world.operators[0], world.campaign_id, world.debts[0])
    assert refused.value.code == "protected" and "банкротство" in str(refused.value)
    assert rig.commands.originated == []
    with rig.sessions() as s:
        assert s.scalar(select(DialSkip.count)) == 2


async def test_preview_call_by_an_operator_not_ready_is_refused(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS, mode="preview", ready=False)
    with pytest.raises(DialRefused) as refused:
        await rig.service.dial_preview(world.operators[0], world.campaign_id, world.debts[0])
    assert refused.value.code == "not_ready" and rig.commands.originated == []


# --- a restarted dialler --------------------------------------------------------------------------


async def test_a_restarted_dialler_finishes_what_the_last_run_left_open(rig: Rig) -> None:
    world = _world(rig.sessions, BUSY, RINGS_OUT, ANSWERS, ready=False)
    busy_debt, old_debt, lost_debt = world.debts
    now = TUESDAY_NOON_MSK
    with rig.sessions.begin() as s:
        for debt_id in world.debts:
            s.add(CampaignDebt(campaign_id=world.campaign_id, debt_id=debt_id, state="dialling"))
        # ended while the dialler was down: the call log saw it
        s.add(DialAttempt(channel_id="dial-busy", campaign_id=world.campaign_id, debt_id=busy_debt,
                          phone_e164=BUSY, placed_at=now - timedelta(minutes=5)))
        s.add(Call(linkedid="dial-busy", direction="outbound", started_at=now - timedelta(minutes=5),
                   status="ended", outcome="busy", ended_at=now - timedelta(minutes=5)))
        # placed long ago and never heard of again
        s.add(DialAttempt(channel_id="dial-old", campaign_id=world.campaign_id, debt_id=old_debt,
                          phone_e164=RINGS_OUT, placed_at=now - timedelta(hours=3)))
        # `lost_debt` was picked but its Originate never went out
    await rig.service.tick()
    with rig.sessions() as s:
        busy, old = (s.scalar(select(DialAttempt).where(DialAttempt.channel_id == c)) for c in ("dial-busy", "dial-old"))
        assert (busy.outcome, old.outcome) == ("busy", "failed")
        assert busy.ended_at is not None and old.ended_at is not None
        states = {row.debt_id: (row.state, row.attempts) for row in s.scalars(select(CampaignDebt))}
        assert states == {busy_debt: ("pending", 1), old_debt: ("pending", 1), lost_debt: ("pending", 0)}


async def test_a_restarted_dialler_follows_a_call_still_on_to_its_end(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS)
    with rig.sessions.begin() as s:
        s.add(CampaignDebt(campaign_id=world.campaign_id, debt_id=world.debts[0], state="dialling"))
        s.add(DialAttempt(channel_id="dial-on", campaign_id=world.campaign_id, debt_id=world.debts[0],
                          phone_e164=ANSWERS, placed_at=TUESDAY_NOON_MSK, answered_at=TUESDAY_NOON_MSK,
                          connected_at=TUESDAY_NOON_MSK, operator_id=world.operators[0]))
    anna = Agent(world.operators[0], "Local/101@agents")
    runner = asyncio.create_task(rig.service.run(rig.stop))
    await _until(lambda: "dial-on" in rig.service.state.calls)
    await asyncio.sleep(0.2)
    assert rig.service.state.on_call(anna) and rig.commands.originated == []  # still talking: not free
    await rig.bus.publish(CALLS_TOPIC, {"kind": "ended", "linkedid": "dial-on", "at": 0.0, "direction": "outbound",
                                        "interface": anna.interface, "outcome": "answered", "talk_seconds": 30})
    (attempt,) = await _until(_ended(rig.sessions))
    rig.stop.set()
    await runner
    assert attempt.outcome == "answered" and not rig.service.state.on_call(anna)
    with rig.sessions() as s:
        assert s.scalar(select(CampaignDebt.state)) == "pending"


async def test_a_call_the_pbx_never_took_is_not_counted_and_is_retried(rig: Rig) -> None:
    world = _world(rig.sessions, ANSWERS, mode="preview")
    await rig.service.tick()
    await rig.sim.stop()  # Asterisk is gone
    with pytest.raises(DialRefused) as refused:
        await rig.service.dial_preview(world.operators[0], world.campaign_id, world.debts[0])
    assert refused.value.code == "not_placed"
    (attempt,) = _attempts(rig.sessions)
    assert (attempt.outcome, attempt.connected_at) == ("failed", None) and attempt.ended_at is not None
    with rig.sessions() as s:
        assert s.scalars(select(DebtContact)).all() == []  # no call took place: the law's ledger is untouched
        row = s.get(CampaignDebt, (world.campaign_id, world.debts[0]))
        assert (row.state, row.last_outcome) == ("pending", "failed")
        assert _utc(row.next_at) == TUESDAY_NOON_MSK + timedelta(minutes=60)
    assert rig.service.state.calls == {}
