"""The predictive dialler's telephony over real AMI: Originate into `[dialler]`, Redirect by the
pre-assigned ChannelId to `[connect-agent]` or `[dialler-abandon]`, and the CallEvents the bridge
turns that into (the operator's answer named, an answered debtor nobody took logged as abandoned)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from ami_bridge.client import AmiError
from ami_bridge.events import CallEventKind as K
from ami_bridge.events import Outcome
from ami_bridge.service import Bridge
from callcard.bus import CALLS_TOPIC, MemoryBus
from callcard.pbx_sim import PbxSimulator, default_config
from callcard.settings import Settings

SCALE = 10.0
CHANNEL_ID = "dial-test-1"


@dataclass
class Rig:
    sim: PbxSimulator
    bridge: Bridge
    bus: MemoryBus


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = PbxSimulator(default_config(time_scale=SCALE))
    await sim.start("127.0.0.1", 0)
    sim.set_agent("Local/101@agents/n", 0.5, talk=600)  # the debtor ends each talk
    sim.set_agent("Local/102@agents/n", None)  # rings until told
    bus = MemoryBus()
    stop = asyncio.Event()
    bridge = Bridge(Settings(ami_port=sim.port, ami_action_timeout=2.0), bus, clock=sim.now)
    runner = asyncio.create_task(bridge.run(stop))
    await asyncio.wait_for(bridge.client.connected.wait(), 5)
    yield Rig(sim, bridge, bus)
    stop.set()
    await runner
    await sim.stop()


async def _dial(rig: Rig, number: str = "+73517654321", talk: str = "5") -> None:
    await rig.bridge.commands.originate(
        f"Local/{number}@outbound", context="dialler", exten="7", channel_id=CHANNEL_ID,
        caller_id="+74950000000", variables={"CALLCARD_CAMPAIGN": "7", "OUT_TALK": talk}, timeout=30)


async def _events(rig: Rig, on_answer: str | None = None, ext: str = "101", talk: str = "600") -> list[dict]:
    """The call's events until ENDED; `on_answer` = the Redirect context sent when the debtor answers,
    `talk` = how long after answering the debtor hangs up (OUT_TALK), whatever happens meanwhile."""
    sub = await rig.bus.subscribe(CALLS_TOPIC)
    await _dial(rig, talk=talk)
    got: list[dict] = []
    async with asyncio.timeout(15):
        async for event in sub:
            got.append(event)
            if event["kind"] == K.ANSWERED and not event["interface"] and on_answer:
                await rig.bridge.commands.redirect(CHANNEL_ID, on_answer, ext if on_answer == "connect-agent" else "s")
            if event["kind"] == K.ENDED:
                return got
    raise AssertionError("unreachable")


def _kinds(events: list[dict]) -> list[tuple[str, str]]:
    return [(e["kind"], e["interface"]) for e in events]


async def test_answered_debtor_redirected_to_an_operator_is_an_answered_call(rig: Rig) -> None:
    events = await _events(rig, "connect-agent", talk="5")
    assert _kinds(events) == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, "Local/101@agents"),
                              (K.ANSWERED, "Local/101@agents"), (K.ENDED, "Local/101@agents")]
    assert all(e["linkedid"] == CHANNEL_ID and e["direction"] == "outbound" for e in events)
    assert events[0]["caller_num"] == "+73517654321"
    end = events[-1]
    assert end["outcome"] == Outcome.ANSWERED
    assert end["talk_seconds"] in (4, 5)  # OUT_TALK counts from the debtor's answer; talk from the operator's


async def test_debtor_sent_to_the_apology_is_abandoned_with_the_time_they_waited(rig: Rig) -> None:
    events = await _events(rig, "dialler-abandon")
    assert _kinds(events) == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.ENDED, "")]
    assert events[-1]["outcome"] == Outcome.ABANDONED
    assert events[-1]["wait_seconds"] == 3  # the apology's length


async def test_debtor_nobody_redirects_hears_the_apology_after_two_seconds(rig: Rig) -> None:
    events = await _events(rig, None)
    assert events[-1]["outcome"] == Outcome.ABANDONED
    assert events[-1]["wait_seconds"] == 5  # Wait(2) + the apology


async def test_operator_who_does_not_answer_sends_the_debtor_to_the_apology(rig: Rig) -> None:
    events = await _events(rig, "connect-agent", ext="102")
    kinds = _kinds(events)
    assert kinds[:3] == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, "Local/102@agents")]
    assert (K.RING_STOPPED, "Local/102@agents") in kinds
    assert events[-1]["outcome"] == Outcome.ABANDONED
    assert events[-1]["wait_seconds"] == 23  # 20 s of ringing the operator + the apology


async def test_redirect_of_an_unknown_channel_is_refused(rig: Rig) -> None:
    with pytest.raises(AmiError):
        await rig.bridge.commands.redirect("dial-nobody", "connect-agent", "101")
