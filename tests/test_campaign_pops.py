"""A dialler call pops with its campaign (name, script, the debt, the ChannelId) and the debt on the card."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agent_desk.pops import DeskPopper
from ami_bridge.events import CallEvent, CallEventKind
from callcard.bus import MemoryBus, desk_topic
from crm_core.models import Client, ClientPhone, Debt, Operator, Phone
from routing.campaigns.models import Campaign, DialAttempt

IFACE = "Local/101@agents"
CHANNEL = "dial-5f0c2a9e1b7d4c3a8e6f0a1b2c3d4e5f"
DEBTOR = "+79161234567"
SCRIPT = "Здравствуйте, {имя}!\n<b>Не</b> угрожать.\n\nДоговор №…"


@pytest.fixture
def dialled(sessions) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with sessions.begin() as s:
        anna = Operator(login="anna", name="Anna", password_hash="x", interface=IFACE)
        client = Client(name="Должник", debt_open=True)
        client.phone_links.append(ClientPhone(phone=Phone(e164=DEBTOR, kind="mobile")))
        campaign = Campaign(name="<i>Просрочка</i>", status="running", script=SCRIPT)
        s.add_all([anna, client, campaign])
        s.flush()
        debt = Debt(client_id=client.id, creditor="Банк", contract="K-1", principal=Decimal("100"),
                    total_due=Decimal("150.25"), days_past_due=40)
        s.add(debt)
        s.flush()
        s.add(DialAttempt(channel_id=CHANNEL, campaign_id=campaign.id, debt_id=debt.id, phone_e164=DEBTOR,
                          placed_at=datetime.now(UTC), operator_id=anna.id))
        return {"anna": anna.id, "campaign": campaign.id, "debt": debt.id}


def ringing(linkedid: str, direction: str) -> CallEvent:
    return CallEvent(kind=CallEventKind.RINGING, linkedid=linkedid, at=time.time(), direction=direction,
                     caller_num=DEBTOR, interface=IFACE)


async def test_a_dialler_call_pops_with_its_campaign_and_the_debt(sessions, dialled) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    ((topic, pop),) = await popper.handle(ringing(CHANNEL, "outbound"))
    assert topic == desk_topic(dialled["anna"])
    assert pop["campaign"] == {"id": dialled["campaign"], "name": "<i>Просрочка</i>", "script": SCRIPT,
                               "debt_id": dialled["debt"], "channel_id": CHANNEL}
    (debtor,) = pop["card"]["matches"]
    assert [(d["id"], d["total_due"]) for d in debtor["debts"]] == [(dialled["debt"], "150.25")]
    # rung again (a reload replays, a second ring of the same call): the campaign stays on the pop
    ((_, again),) = await popper.handle(ringing(CHANNEL, "outbound"))
    assert again["campaign"] == pop["campaign"]


async def test_other_calls_carry_no_campaign(sessions, dialled) -> None:  # type: ignore[no-untyped-def]
    popper = DeskPopper(sessions, MemoryBus(), "RU")
    ((_, click_to_call),) = await popper.handle(ringing("callcard-orig-1", "outbound"))
    assert "campaign" not in click_to_call
    fresh = DeskPopper(sessions, MemoryBus(), "RU")
    ((_, inbound),) = await fresh.handle(ringing(CHANNEL, "inbound"))
    assert "campaign" not in inbound, "only outbound calls are looked up"
