"""Outbound calls in the PBX simulator over real TCP: click-to-call (operator first) and the
dialler shape (customer first), with the results of the recorded `[outbound]` dialplan."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from test_pbx_sim import SCALE, Client, Msg, event_name, first, keys
from test_pbx_sim import assert_layouts_recorded as assert_recorded

from callcard.pbx_sim import PbxSimulator, default_config


@pytest.fixture
async def sim() -> AsyncIterator[PbxSimulator]:
    simulator = PbxSimulator(default_config(time_scale=SCALE))
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.stop()


@pytest.fixture
async def ami(sim: PbxSimulator) -> AsyncIterator[Client]:
    client = await Client.connect(sim)
    await client.login()
    await client.until(lambda x: event_name(x) == "SuccessfulAuth")
    yield client
    client.close()


def originate(channel: str, context: str, exten: str, channel_id: str, *variables: str,
              timeout: int = 30000) -> tuple[tuple[str, str], ...]:
    """What ami_bridge.client.AmiClient.originate sends."""
    return (("Action", "Originate"), ("ActionID", f"orig-{channel_id}"), ("Channel", channel),
            ("ChannelId", channel_id), ("Timeout", str(timeout)), ("Async", "true"), ("Context", context),
            ("Exten", exten), ("Priority", "1"), ("CallerID", exten),
            *(("Variable", v) for v in variables))


def assert_layouts_recorded(got: list[Msg]) -> None:
    """The recordings have only application Originates: the Context/Exten OriginateResponse is
    checked against manager.c's order in the tests instead."""
    assert_recorded([x for x in got if event_name(x) != "OriginateResponse"])


def named(got: list[Msg], name: str) -> list[Msg]:
    return [x for x in got if event_name(x) == name]


def response_of(got: list[Msg]) -> Msg:
    (resp,) = named(got, "OriginateResponse")
    return resp


async def until_gone(ami: Client, uniqueid: str, timeout: float = 5.0) -> list[Msg]:
    """Everything up to the Hangup of the originated channel and the OriginateResponse."""
    got: list[Msg] = []
    while not (named(got, "OriginateResponse")
               and any(event_name(x) == "Hangup" and first(x, "Uniqueid") == uniqueid for x in got)):
        got += await ami.until(lambda x: event_name(x) in {"Hangup", "OriginateResponse"}, timeout)
    return got


async def test_click_to_call_answered_rings_operator_then_customer_and_talks(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/101@agents/n", 0.0, talk=600)
    reply, _ = await ami.action(*originate("Local/101@agents", "outbound", "+73517654321", "c2c-1", "OUT_TALK=5"))
    assert first(reply, "Message") == "Originate successfully queued"
    got = await until_gone(ami, "c2c-1")
    assert_layouts_recorded(got)
    new = named(got, "Newchannel")
    assert [(first(x, "Channel").rsplit("-", 1)[0], first(x, "Uniqueid")) for x in new[:2]] == [
        ("Local/101@agents", "c2c-1"), ("Local/101@agents", "c2c-1;2")]
    assert first(new[2], "Channel").startswith("Local/+73517654321@outbound-")
    assert {first(x, "Linkedid") for x in got if first(x, "Linkedid")} == {"c2c-1"}
    dials = [(first(x, "Channel"), first(x, "DestChannel").rsplit("-", 1)[0], first(x, "DialStatus"))
             for x in named(got, "DialEnd")]
    operator_leg = first(new[0], "Channel")
    assert dials == [("", "Local/101@agents", "ANSWER"), (operator_leg, "Local/+73517654321@outbound", "ANSWER")]
    resp = response_of(got)
    assert keys(resp)[:11] == ("Event", "Privilege", "ActionID", "Response", "Channel", "Context", "Exten",
                               "Reason", "Uniqueid", "CallerIDNum", "CallerIDName")
    assert (first(resp, "Response"), first(resp, "Reason"), first(resp, "Uniqueid")) == ("Success", "4", "c2c-1")
    assert len(named(got, "BridgeEnter")) == 2
    hangups = named(got, "Hangup")
    assert {first(x, "Cause") for x in hangups} == {"16"} and len(hangups) == 4
    cdrs = named(await ami.collect(0.2), "Cdr") + named(got, "Cdr")
    assert {first(x, "Disposition") for x in cdrs} == {"ANSWERED"}
    customer_cdr = next(x for x in cdrs if "@outbound-" in first(x, "Channel"))
    assert first(customer_cdr, "BillableSeconds") in ("4", "5", "6")


@pytest.mark.parametrize(("number", "variables", "status", "cause", "disposition"), [
    ("+73517654322", (), "BUSY", "17", "BUSY"),
    ("+73517654324", (), "CONGESTION", "34", "FAILED"),
    ("+73517654320", ("OUT_RESULT=3",), "NOANSWER", "19", "NO ANSWER"),
])
async def test_click_to_call_customer_results_end_the_call_with_their_cause(
    sim: PbxSimulator, ami: Client, number: str, variables: tuple[str, ...], status: str, cause: str,
    disposition: str,
) -> None:
    await ami.action(*originate("Local/102@agents/n", "outbound", number, "c2c-2", *variables, timeout=20000))
    got = await ami.until(lambda x: event_name(x) == "Hangup" and first(x, "Uniqueid") == "c2c-2", timeout=5)
    got += await ami.collect(0.1)
    assert_layouts_recorded(got)
    customer_end = next(x for x in named(got, "DialEnd") if first(x, "Channel"))
    assert first(customer_end, "DialStatus") == status
    assert {first(x, "Cause") for x in named(got, "Hangup")} == {cause}
    assert disposition in {first(x, "Disposition") for x in named(got, "Cdr")}
    resp = response_of(got)
    assert (first(resp, "Response"), first(resp, "Reason")) == ("Success", "4"), "the operator did answer"
    assert sim.snapshot().channels == []


async def test_operator_who_never_answers_fails_the_originate_with_reason_3(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/103@agents/n", None)
    await ami.action(*originate("Local/103@agents", "outbound", "+73517654321", "c2c-3", timeout=10000))
    got = await ami.until(lambda x: event_name(x) == "OriginateResponse", timeout=5)
    resp = got[-1]
    assert (first(resp, "Response"), first(resp, "Reason"), first(resp, "Uniqueid"), first(resp, "Channel")) == (
        "Failure", "3", "<unknown>", "Local/103@agents")
    assert not any("ChanVariable" in k for k in keys(resp))
    assert [first(x, "DialStatus") for x in named(got, "DialEnd")] == ["NOANSWER"]
    assert {first(x, "Cause") for x in named(got, "Hangup")} == {"19"}
    assert not any("@outbound-" in first(x, "Channel") for x in named(got, "Newchannel")), "customer never dialled"


async def test_human_operator_answers_via_the_api_and_hangs_up(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/104@agents/n", None)
    await ami.action(*originate("Local/104@agents", "outbound", "+73517654321", "c2c-4", "OUT_TALK=600"))
    await ami.until(lambda x: event_name(x) == "DialBegin")
    (call,) = sim.snapshot().calls
    assert (call.linkedid, call.state, call.agent, call.caller_num) == (
        "c2c-4", "ringing", "Local/104@agents/n", "+73517654321")
    assert next(m for m in sim.snapshot().members if m.interface == "Local/104@agents/n").status == 2
    await sim.answer("Local/104@agents")
    await ami.until(lambda x: event_name(x) == "BridgeEnter" and first(x, "Uniqueid") == "c2c-4")
    assert sim.snapshot().calls[0].state == "talking"
    await sim.hangup_agent("Local/104@agents/n")
    got = await ami.until(lambda x: event_name(x) == "Hangup" and first(x, "Uniqueid") == "c2c-4")
    assert first(named(got, "Hangup")[0], "Channel").startswith("Local/104@agents-"), "the operator hung up first"
    snap = sim.snapshot()
    assert snap.calls == [] and snap.channels == []


async def test_operator_busy_on_an_outbound_call_is_not_rung_by_the_queue(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/101@agents/n", None)
    await ami.action(*originate("Local/101@agents", "outbound", "+73517654321", "c2c-5"))
    await ami.until(lambda x: event_name(x) == "DialBegin")
    await sim.place_call("83512000001", queue="sales")
    got = await ami.until(lambda x: event_name(x) == "AgentCalled")
    assert first(got[-1], "MemberName") == "Operator 102"


async def test_dialler_customer_first_then_agent(sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/105@agents/n", 0.0, talk=600)
    await ami.action(*originate("Local/89991234561@outbound", "connect-agent", "105", "dial-1", "OUT_TALK=3"))
    got = await until_gone(ami, "dial-1")
    assert_layouts_recorded(got)
    resp = response_of(got)
    assert (first(resp, "Response"), first(resp, "Reason"), first(resp, "Uniqueid")) == ("Success", "4", "dial-1")
    (agent_dial,) = [x for x in named(got, "DialBegin") if first(x, "Channel")]
    assert first(agent_dial, "DestChannel").startswith("Local/105@agents-")
    assert first(agent_dial, "DialString") == "105@agents/n"
    assert len(named(got, "BridgeEnter")) == 2


@pytest.mark.parametrize(("number", "reason", "cause"), [
    ("89991234562", "5", "17"), ("89991234563", "3", "19"), ("89991234564", "8", "34")])
async def test_dialler_customer_failures_fail_the_originate(ami: Client, number: str, reason: str, cause: str) -> None:
    await ami.action(*originate(f"Local/{number}@outbound", "connect-agent", "105", "dial-2", timeout=5000))
    got = await ami.until(lambda x: event_name(x) == "OriginateResponse", timeout=5)
    resp = got[-1]
    assert (first(resp, "Response"), first(resp, "Reason"), first(resp, "Uniqueid"), first(resp, "Channel")) == (
        "Failure", reason, "<unknown>", f"Local/{number}@outbound")
    assert (first(resp, "Context"), first(resp, "Exten")) == ("connect-agent", "105")
    assert {first(x, "Cause") for x in named(got, "Hangup")} == {cause}


async def test_originate_the_dialplan_cannot_place_fails_with_reason_0(ami: Client) -> None:
    await ami.action(*originate("Local/999@agents", "outbound", "+73517654321", "c2c-6"))
    resp = (await ami.until(lambda x: event_name(x) == "OriginateResponse"))[-1]
    assert (first(resp, "Response"), first(resp, "Reason"), first(resp, "Uniqueid")) == ("Failure", "0", "<unknown>")
