"""The dialler end to end over real AMI: DiallerService -> Bridge -> PBX simulator -> CallEvents ->
DialAttempt, contact ledger, retry schedule and skip report in SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import CallEventKind as K
from ami_bridge.service import Bridge
from callcard.bus import CALLS_TOPIC, MemoryBus
from callcard.pbx_sim import PbxSimulator, default_config
from callcard.settings import Settings
from crm_core.models import Client, ClientPhone, Debt, DebtContact, Operator, Phone, Request
from routing.campaigns.dialler import Agent
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip
from routing.campaigns.service import CampaignView, DiallerService, Pick

SCALE = 10.0
TUESDAY_NOON_MSK = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ANSWERS = "+73517654321"  # the simulated debtor answers (last digit 1)
BUSY = "+73517654322"  # Busy()


@dataclass
class Rig:
    sim: PbxSimulator
    bridge: Bridge
    bus: MemoryBus
    service: DiallerService
    sessions: sessionmaker[Session]
    stop: asyncio.Event


def _people(sessions: sessionmaker[Session], phone: str, *, ready: bool = True, mode: str = "progressive",
            client_facts: dict | None = None, promise: date | None = None) -> int:
    with sessions.begin() as s:
        op = Operator(login="op101", name="Operator 101", password_hash="!", interface="Local/101@agents")
        client = Client(name="Иван Должников", debt_open=True, time_zone="Asia/Yekaterinburg",
                        **(client_facts or {}))
        client.phone_links.append(ClientPhone(phone=Phone(e164=phone, kind="mobile"), label="mobile"))
        debt = Debt(client=client, creditor="Банк", contract="K-1", principal=Decimal("1000"),
                    total_due=Decimal("1500.50"), days_past_due=40, promised_date=promise,
                    status="promised" if promise else "active")
        campaign = Campaign(name="Просрочка 30+", status="running", mode=mode, caller_id="+74950000000",
                            max_lines=5, filters={"min_days": 30})
        s.add_all([op, client, debt, campaign])
        s.flush()
        s.add(CampaignOperator(campaign_id=campaign.id, operator_id=op.id, ready=ready))
        return campaign.id


@pytest.fixture
async def rig(sessions: sessionmaker[Session]) -> AsyncIterator[Rig]:
    sim = PbxSimulator(default_config(time_scale=SCALE))
    await sim.start("127.0.0.1", 0)
    sim.set_agent("Local/101@agents/n", 0.5, talk=600)  # the debtor ends the talk
    bus = MemoryBus()
    stop = asyncio.Event()
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now)
    tasks = [asyncio.create_task(bridge.run(stop))]
    await asyncio.wait_for(bridge.client.connected.wait(), 5)
    service = DiallerService(sessions, bus, bridge.commands, clock=lambda: TUESDAY_NOON_MSK, tick=0.05,
                             wrapup_seconds=0.0)
    yield Rig(sim, bridge, bus, service, sessions, stop)
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
        return list(s.scalars(select(DialAttempt)))


async def test_answered_debtor_is_put_through_and_the_ledger_counts_a_conversation(rig: Rig) -> None:
    campaign_id = _people(rig.sessions, ANSWERS)
    calls = await rig.bus.subscribe(CALLS_TOPIC)
    runner = asyncio.create_task(rig.service.run(rig.stop))
    ringing = None
    async with asyncio.timeout(10):
        async for event in calls:
            if event["kind"] == K.RINGING:
                ringing = event
                break
    assert ringing is not None and ringing["interface"] == "Local/101@agents"
    assert ringing["linkedid"].startswith("dial-") and ringing["caller_num"] == ANSWERS
    done = await _until(lambda: [a for a in _attempts(rig.sessions) if a.ended_at is not None])
    rig.stop.set()
    await runner
    (attempt,) = done
    assert (attempt.channel_id, attempt.outcome, attempt.phone_e164) == (ringing["linkedid"], "answered", ANSWERS)
    assert attempt.connected_at is not None and attempt.operator_id is not None
    with rig.sessions() as s:
        (contact,) = s.scalars(select(DebtContact))
        assert (contact.kind, contact.linkedid) == ("conversation", attempt.channel_id)
        row = s.get(CampaignDebt, (campaign_id, attempt.debt_id))
        assert (row.state, row.attempts, row.last_outcome) == ("pending", 1, "answered")
        assert row.next_at is not None and row.next_at.replace(tzinfo=UTC) == TUESDAY_NOON_MSK + timedelta(days=1)


async def test_busy_debtor_is_retried_per_the_campaigns_rules(rig: Rig) -> None:
    campaign_id = _people(rig.sessions, BUSY)
    with rig.sessions.begin() as s:
        s.get(Campaign, campaign_id).retry = {"busy": {"delay_minutes": 45, "max_attempts": 3}}
    runner = asyncio.create_task(rig.service.run(rig.stop))
    (attempt,) = await _until(lambda: [a for a in _attempts(rig.sessions) if a.ended_at is not None])
    rig.stop.set()
    await runner
    assert attempt.outcome == "busy"
    with rig.sessions() as s:
        (contact,) = s.scalars(select(DebtContact))
        assert contact.kind == "attempt"
        row = s.get(CampaignDebt, (campaign_id, attempt.debt_id))
        assert row.next_at.replace(tzinfo=UTC) == TUESDAY_NOON_MSK + timedelta(minutes=45)


async def test_no_ready_operator_means_no_call_at_all(rig: Rig) -> None:
    _people(rig.sessions, ANSWERS, ready=False)
    for _ in range(5):
        await rig.service.tick()
    assert _attempts(rig.sessions) == [] and rig.service.placed == 0


async def test_debtor_answering_when_nobody_is_free_hears_the_apology_and_gets_a_callback(rig: Rig) -> None:
    campaign_id = _people(rig.sessions, ANSWERS, ready=False)
    with rig.sessions() as s:
        debt_id = s.scalar(select(Debt.id))
    runner = asyncio.create_task(rig.service.run(rig.stop))
    view = CampaignView(campaign_id, "predictive", 5, 30, "+74950000000", "ru_230fz", {}, {}, None, ())
    channel_id = await rig.service._originate(view, Pick(debt_id, ANSWERS))  # over-dialled: no agent for it
    (attempt,) = await _until(lambda: [a for a in _attempts(rig.sessions) if a.ended_at is not None])
    rig.stop.set()
    await runner
    assert (attempt.channel_id, attempt.outcome, attempt.connected_at) == (channel_id, "abandoned", None)
    with rig.sessions() as s:
        (callback,) = s.scalars(select(Request).where(Request.linkedid == channel_id))
        assert callback.kind == "callback" and callback.client_id is not None
        assert s.scalar(select(DebtContact.kind)) == "attempt"  # nobody spoke with the debtor


@pytest.mark.parametrize(("facts", "promise", "code"), [
    ({"protection": "bankruptcy"}, None, "protected"),
    ({"contact_refused": True}, None, "refused_interaction"),
    ({}, date(2026, 11, 30), "promise_to_pay"),
])
async def test_guard_refusals_are_recorded_and_never_dialled(rig: Rig, facts: dict, promise: date | None,
                                                             code: str) -> None:
    campaign_id = _people(rig.sessions, ANSWERS, client_facts=facts, promise=promise)
    for _ in range(3):
        await rig.service.tick()
    assert _attempts(rig.sessions) == []
    with rig.sessions() as s:
        (skip,) = s.scalars(select(DialSkip))
        assert (skip.campaign_id, skip.phone_e164, skip.code) == (campaign_id, ANSWERS, code)
        assert skip.reason
        row = s.scalar(select(CampaignDebt))
        if code == "promise_to_pay":  # the day after the promise, from 08:00 in Yekaterinburg
            assert row.next_at.replace(tzinfo=UTC) == datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
        else:
            assert row.state == "excluded"


async def test_outside_the_debtors_hours_the_call_waits_for_the_morning(sessions: sessionmaker[Session]) -> None:
    _people(sessions, ANSWERS)
    late = datetime(2026, 11, 24, 17, 30, tzinfo=UTC)  # 22:30 in Yekaterinburg
    service = DiallerService(sessions, MemoryBus(), commands=None, clock=lambda: late)  # type: ignore[arg-type]
    await service.tick()
    with sessions() as s:
        (skip,) = s.scalars(select(DialSkip))
        assert skip.code == "outside_hours"
        assert skip.next_allowed_at.replace(tzinfo=UTC) == datetime(2026, 11, 25, 3, 0, tzinfo=UTC)  # 08:00 local


def test_agent_extension_is_what_connect_agent_dials() -> None:
    assert Agent(1, "Local/101@agents").extension == "101"
    assert Agent(2, "PJSIP/204").extension == "204"
