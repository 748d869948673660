"""Preview calls over HTTP with the real dialler behind the routes: the operator asks for the next
debtor, calls them, and hears the guard's reason (409) when the law forbids the call now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web_login import alog_in

from agent_desk.app import create_app
from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim import PbxSimulator, default_config
from callcard.settings import Settings
from crm_core.models import Client, ClientPhone, Debt, Operator, Phone
from crm_core.passwords import hash_password
from routing.campaigns.models import Campaign, CampaignOperator, DialAttempt
from routing.campaigns.service import DiallerService

NOON_UTC = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 14:00 in Yekaterinburg, 23:00 on Kiritimati
PASSWORD = "op-pass"


@dataclass
class Live:
    http: httpx.AsyncClient
    sessions: sessionmaker[Session]
    ids: dict[str, int]
    csrf: str = ""

    async def post(self, path: str) -> httpx.Response:
        return await self.http.post(path, headers={"X-CSRF-Token": self.csrf})


def _world(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions.begin() as s:
        ops = {login: Operator(login=login, name=login, password_hash=hash_password(PASSWORD),
                               interface=f"Local/{ext}@agents") for login, ext in (("op1", 101), ("op2", 102))}
        campaign = Campaign(name="Предпросмотр", status="running", mode="preview", caller_id="+74950000000",
                            ring_seconds=10)
        debts = {}
        for key, zone, phone in (("day", "Asia/Yekaterinburg", "+73517654321"),
                                 ("night", "Pacific/Kiritimati", "+73517654325")):
            client = Client(name=f"Должник {key}", debt_open=True, time_zone=zone)
            client.phone_links.append(ClientPhone(phone=Phone(e164=phone, kind="mobile")))
            debts[key] = Debt(client=client, creditor="Банк", contract=f"K-{key}", principal=Decimal("100"),
                              total_due=Decimal("100"), days_past_due=40)
        s.add_all([*ops.values(), campaign, *debts.values()])
        s.flush()
        s.add(CampaignOperator(campaign_id=campaign.id, operator_id=ops["op1"].id, ready=True))
        return {"campaign": campaign.id, "op1": ops["op1"].id, **{k: d.id for k, d in debts.items()}}


@pytest.fixture
async def live(sessions: sessionmaker[Session]) -> AsyncIterator[Live]:
    ids = _world(sessions)
    sim = PbxSimulator(default_config(time_scale=10.0))
    await sim.start("127.0.0.1", 0)
    sim.set_agent("Local/101@agents/n", 0.5, talk=600)
    bus, stop = MemoryBus(), asyncio.Event()
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now)
    dialler = DiallerService(sessions, bus, bridge.commands, clock=lambda: NOON_UTC, tick=0.05)
    tasks = [asyncio.create_task(bridge.run(stop)), asyncio.create_task(dialler.run(stop))]
    app = create_app(Settings(secret_key="t", default_language="en"), sessions, bus, campaign_dialler=dialler)
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk",
                                     follow_redirects=True) as http:
            yield Live(http, sessions, ids)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        await sim.stop()


async def test_operator_previews_the_next_debtor_and_calls_them(live: Live) -> None:
    live.csrf = await alog_in(live.http, "op1", PASSWORD)
    campaign = live.ids["campaign"]
    async with asyncio.timeout(5):  # the dialler has listed the campaign's debts
        while (found := await live.post(f"/api/campaigns/{campaign}/preview")).status_code == 404:
            await asyncio.sleep(0.05)
    assert found.status_code == 200, found.text
    assert (found.json()["debt_id"], found.json()["phone"]) == (live.ids["day"], "+73517654321")
    called = await live.post(f"/api/campaigns/{campaign}/preview/{live.ids['day']}/dial")
    assert called.status_code == 200, called.text
    channel_id = called.json()["channel_id"]
    async with asyncio.timeout(10):
        while True:
            with live.sessions() as s:
                attempt = s.scalar(select(DialAttempt).where(DialAttempt.channel_id == channel_id))
            if attempt is not None and attempt.ended_at is not None:
                break
            await asyncio.sleep(0.05)
    assert (attempt.outcome, attempt.operator_id) == ("answered", live.ids["op1"])


async def test_a_call_the_guard_forbids_is_refused_with_its_reason(live: Live) -> None:
    live.csrf = await alog_in(live.http, "op1", PASSWORD)
    refused = await live.post(f"/api/campaigns/{live.ids['campaign']}/preview/{live.ids['night']}/dial")
    assert refused.status_code == 409
    assert "Pacific/Kiritimati" in refused.json()["detail"] and "23:00" in refused.json()["detail"]
    with live.sessions() as s:
        assert s.scalars(select(DialAttempt)).all() == []


async def test_an_operator_not_in_the_campaign_may_not_preview_it(live: Live) -> None:
    live.csrf = await alog_in(live.http, "op2", PASSWORD)
    for path in ("preview", f"preview/{live.ids['day']}/dial"):
        assert (await live.post(f"/api/campaigns/{live.ids['campaign']}/{path}")).status_code == 403
