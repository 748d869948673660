"""Click-to-call end to end: AmiDialer -> real Bridge (AMI over TCP) -> PBX simulator -> bus ->
call logger -> Call rows on SQLite and PostgreSQL, for every result of the `[outbound]` dialplan.

The bridge runs on the simulator's clock, so talk and wait times are simulated seconds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.service import Bridge
from callcard.bus import MemoryBus
from callcard.pbx_sim import PbxSimulator, default_config
from callcard.runtime import AmiDialer
from callcard.settings import Settings
from crm_core.call_log import CallLogger
from crm_core.models import Call, Client, ClientPhone, Operator, Phone
from crm_core.phones import normalize_phone

SCALE = 25.0
CUSTOMER = "+73517654321"


@dataclass(frozen=True)
class Row:
    direction: str
    operator: str | None
    caller_raw: str
    caller_e164: str | None
    did: str
    client: str | None
    outcome: str | None
    talk: int | None


def _people(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        for ext in range(101, 106):
            s.add(Operator(login=f"op{ext}", name=f"Operator {ext}", password_hash="!",
                           interface=f"Local/{ext}@agents"))
        client = Client(name="Ivan Petrov")
        client.phone_links.append(ClientPhone(phone=Phone(e164=CUSTOMER, kind="mobile"), label="mobile"))
        s.add(client)
        s.commit()


def _rows(sessions: sessionmaker[Session]) -> dict[str, Row]:
    with sessions() as s:
        return {
            c.caller_raw: Row(c.direction, c.operator.login if c.operator else None, c.caller_raw, c.caller_e164,
                              c.did, c.client.name if c.client else None, c.outcome, c.talk_seconds)
            for c in s.scalars(select(Call).where(Call.status == "ended"))
        }


async def test_click_to_call_logs_each_outcome_under_the_customers_number(sessions: sessionmaker[Session]) -> None:
    _people(sessions)
    sim = PbxSimulator(default_config(time_scale=SCALE))
    await sim.start("127.0.0.1", 0)
    for ext in range(101, 105):
        sim.set_agent(f"Local/{ext}@agents/n", 0.0, talk=600)  # the customer ends each talk
    sim.set_agent("Local/105@agents/n", None)  # never picks up their own phone
    bus = MemoryBus()
    stop = asyncio.Event()
    logger = asyncio.create_task(CallLogger(sessions, "RU").run(bus, stop))
    await asyncio.sleep(0)
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now)
    runner = asyncio.create_task(bridge.run(stop))
    dialer = AmiDialer(bridge)
    try:
        await asyncio.wait_for(bridge.client.connected.wait(), 5)
        numbers = {"op101": CUSTOMER, "op102": "+73517654322", "op103": "+73517654323",
                   "op104": "+73517654324", "op105": "+73517654325"}
        for login, number in numbers.items():
            await dialer.click_to_call(f"Local/{login[2:]}@agents", normalize_phone(number, "RU"))
        async with asyncio.timeout(10):
            while len(_rows(sessions)) < len(numbers):
                await asyncio.sleep(0.05)
        rows = _rows(sessions)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(runner, logger), 5)
        await sim.stop()

    def row(login: str, outcome: str, talk: int | None = None, client: str | None = None) -> Row:
        number = numbers[login]
        return Row("outbound", login, number, number, number, client, outcome, talk)

    assert rows[CUSTOMER].talk in (4, 5)  # OUT_TALK default 4 simulated seconds, whole seconds as seen
    assert rows == {
        CUSTOMER: row("op101", "answered", rows[CUSTOMER].talk, client="Ivan Petrov"),
        "+73517654322": row("op102", "busy"),
        "+73517654323": row("op103", "missed"),  # rang until the Originate timeout
        "+73517654324": row("op104", "failed"),  # congestion
        "+73517654325": row("op105", "missed"),  # the operator's own phone rang out: Reason 3
    }
