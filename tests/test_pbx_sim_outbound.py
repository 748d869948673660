"""Outbound calls in the PBX simulator over real TCP: click-to-call (operator first), the dialler
shapes (customer first: `[connect-agent]` directly, or `[dialler]` hold and a Redirect by ChannelId),
with the results of the recorded `[outbound]` dialplan, and the seeded CustomerModel."""

from __future__ import annotations

import statistics
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_pbx_sim import SCALE, Client, Msg, event_name, first, keys
from test_pbx_sim import assert_layouts_recorded as assert_recorded

from callcard.pbx_sim import AgentBehaviour, CustomerModel, PbxSimulator, default_config
from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.model import Pbx
from callcard.pbx_sim.wire import Request


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


# --- the predictive dialler: `[dialler]` hold, Redirect by ChannelId, `[dialler-abandon]` ----------

DEBTOR = "+73517654321"  # answers at once (last digit 1)


def dial(channel_id: str, *variables: str, number: str = DEBTOR, timeout: int = 30000) -> tuple[tuple[str, str], ...]:
    """What the dialler sends: AmiCommands.originate(Local/<e164>@outbound, context=dialler, exten=<campaign>)."""
    return (("Action", "Originate"), ("ActionID", f"orig-{channel_id}"), ("Channel", f"Local/{number}@outbound"),
            ("ChannelId", channel_id), ("Timeout", str(timeout)), ("Async", "true"), ("Context", "dialler"),
            ("Exten", "7"), ("Priority", "1"), ("CallerID", "+74950000000"),
            ("Variable", "CALLCARD_CAMPAIGN=7"), ("Variable", "CALLCARD_DEBT=12"), *(("Variable", v) for v in variables))


def redirect(channel: str, context: str, exten: str, aid: str = "redir-1") -> tuple[tuple[str, str], ...]:
    return (("Action", "Redirect"), ("ActionID", aid), ("Channel", channel), ("Context", context),
            ("Exten", exten), ("Priority", "1"))


async def dial_and_redirect(ami: Client, channel_id: str, context: str, exten: str, *variables: str) -> list[Msg]:
    """Originate and Redirect in one write: the debtor answers at once, so the Redirect finds them on hold
    whatever the machine's load. Returns everything read up to the Redirect's reply, which must succeed."""
    ami.send(*dial(channel_id, *variables))
    ami.send(*redirect(channel_id, context, exten))
    got = await ami.until(lambda x: first(x, "ActionID") == "redir-1" and not event_name(x))
    assert (first(got[-1], "Response"), first(got[-1], "Message")) == ("Success", "Redirect successful")
    return got


async def until_hung_up(ami: Client, uniqueid: str, timeout: float = 5.0) -> list[Msg]:
    """Everything up to the Hangup of the debtor's ;1 (the last of the call's channels to go)."""
    return await ami.until(lambda x: event_name(x) == "Hangup" and first(x, "Uniqueid") == uniqueid, timeout)


def steps(got: list[Msg], channel_id: str) -> list[tuple[str, str, str, str]]:
    """The dialplan the debtor's ;1 ran: (context, exten, priority, application) per Newexten."""
    return [(first(x, "Context"), first(x, "Exten"), first(x, "Priority"), first(x, "Application"))
            for x in named(got, "Newexten") if first(x, "Uniqueid") == channel_id]


async def test_answered_debtor_redirected_by_channel_id_talks_with_the_operator(
        sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/101@agents/n", None)  # a human: answers through the control API
    got = await dial_and_redirect(ami, "dial-a", "connect-agent", "101", "OUT_TALK=600")
    got += await ami.until(lambda x: event_name(x) == "DialBegin" and first(x, "Channel"))
    (call,) = sim.snapshot().calls
    assert (call.linkedid, call.state, call.agent) == ("dial-a", "ringing", "Local/101@agents/n")
    await sim.answer("Local/101@agents")
    got += await ami.until(lambda x: event_name(x) == "BridgeEnter" and first(x, "Uniqueid") == "dial-a")
    assert sim.snapshot().calls[0].state == "talking"
    await sim.hangup_agent("Local/101@agents")
    got += await until_hung_up(ami, "dial-a")
    got += await ami.collect(0.1)
    assert_layouts_recorded(got)
    assert steps(got, "dial-a") == [("outbound", DEBTOR, "1", "AppDial2"), ("dialler", "7", "1", "Wait"),
                                    ("connect-agent", "101", "1", "Dial")]
    resp = response_of(got)
    assert (first(resp, "Response"), first(resp, "Reason"), first(resp, "Uniqueid"), first(resp, "Context"),
            first(resp, "Exten")) == ("Success", "4", "dial-a", "dialler", "7")
    (agent_dial,) = [x for x in named(got, "DialBegin") if first(x, "Channel")]
    assert (first(agent_dial, "Uniqueid"), first(agent_dial, "DialString")) == ("dial-a", "101@agents/n")
    assert first(agent_dial, "DestChannel").startswith("Local/101@agents-")
    assert [first(x, "DialStatus") for x in named(got, "DialEnd") if first(x, "Channel")] == ["ANSWER"]
    assert len(named(got, "BridgeEnter")) == 2
    assert {first(x, "Linkedid") for x in got if first(x, "Linkedid")} == {"dial-a"}
    assert first(named(got, "Hangup")[0], "Channel").startswith("Local/101@agents-"), "the operator hung up first"
    assert sim.snapshot().channels == []


async def test_debtor_nobody_redirects_in_two_seconds_hears_the_apology_and_is_hung_up(
        sim: PbxSimulator, ami: Client) -> None:
    ami.send(*dial("dial-b", "OUT_TALK=600"))
    got = await until_hung_up(ami, "dial-b")
    got += await ami.collect(0.1)
    assert_layouts_recorded(got)
    assert steps(got, "dial-b") == [
        ("outbound", DEBTOR, "1", "AppDial2"), ("dialler", "7", "1", "Wait"), ("dialler", "7", "2", "Goto"),
        ("dialler-abandon", "s", "1", "Playback"), ("dialler-abandon", "s", "2", "Hangup")]
    wait = next(x for x in named(got, "Newexten") if first(x, "Application") == "Wait" and first(x, "Uniqueid") == "dial-b")
    assert first(wait, "AppData") == "2"
    assert (first(response_of(got), "Response"), first(response_of(got), "Reason")) == ("Success", "4")
    assert {first(x, "Cause") for x in named(got, "Hangup")} == {"16"}
    assert {first(x, "Disposition") for x in named(got, "Cdr")} == {"ANSWERED"}
    assert not [x for x in named(got, "DialBegin") if first(x, "Channel")], "no operator was dialled"


async def test_redirect_to_the_apology_by_channel_name() -> None:
    """The name is known only from the events: a slow clock (the hold lasts 1 s) leaves time to read it."""
    simulator = PbxSimulator(default_config(time_scale=2.0))
    await simulator.start("127.0.0.1", 0)
    ami = await Client.connect(simulator)
    try:
        await ami.login()
        ami.send(*dial("dial-c", "OUT_TALK=600"))
        got = await ami.until(lambda x: event_name(x) == "Newexten" and first(x, "Uniqueid") == "dial-c"
                              and first(x, "Application") == "Wait")
        reply, _ = await ami.action(*redirect(first(got[-1], "Channel"), "dialler-abandon", "s"))
        assert first(reply, "Message") == "Redirect successful"
        got += await until_hung_up(ami, "dial-c")
    finally:
        ami.close()
        await simulator.stop()
    assert steps(got, "dial-c")[-3:] == [("dialler", "7", "1", "Wait"), ("dialler-abandon", "s", "1", "Playback"),
                                        ("dialler-abandon", "s", "2", "Hangup")], "a Redirect skips the Goto"


async def test_operator_who_does_not_answer_in_20_seconds_sends_the_debtor_to_the_apology(
        sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/102@agents/n", None)
    got = await dial_and_redirect(ami, "dial-d", "connect-agent", "102", "OUT_TALK=600")
    got += await until_hung_up(ami, "dial-d", timeout=5)
    assert_layouts_recorded(got)
    assert [first(x, "DialStatus") for x in named(got, "DialEnd") if first(x, "Channel")] == ["NOANSWER"]
    assert steps(got, "dial-d")[2:] == [
        ("connect-agent", "102", "1", "Dial"), ("connect-agent", "102", "2", "Goto"),
        ("dialler-abandon", "s", "1", "Playback"), ("dialler-abandon", "s", "2", "Hangup")]
    operator_hangups = [x for x in named(got, "Hangup") if first(x, "Channel").startswith("Local/102@agents-")]
    assert {first(x, "Cause") for x in operator_hangups} == {"19"}
    assert next(m for m in sim.snapshot().members if m.interface == "Local/102@agents/n").status == 1


async def test_operator_already_on_a_call_is_busy_and_the_debtor_hears_the_apology(
        sim: PbxSimulator, ami: Client) -> None:
    sim.set_agent("Local/103@agents/n", 0.0, talk=600)
    await ami.action(*originate("Local/103@agents", "outbound", "+73517654329", "c2c-busy", "OUT_TALK=600"))
    await ami.until(lambda x: event_name(x) == "BridgeEnter" and first(x, "Uniqueid") == "c2c-busy")
    got = await dial_and_redirect(ami, "dial-e", "connect-agent", "103", "OUT_TALK=600")
    got += await until_hung_up(ami, "dial-e")
    assert [first(x, "DialStatus") for x in named(got, "DialEnd")
            if first(x, "Uniqueid") == "dial-e" and first(x, "Channel")] == ["BUSY"]
    assert steps(got, "dial-e")[-2:] == [("dialler-abandon", "s", "1", "Playback"), ("dialler-abandon", "s", "2", "Hangup")]
    (other,) = sim.snapshot().calls
    assert (other.linkedid, other.state) == ("c2c-busy", "talking"), "the operator's own call goes on"


async def test_redirect_to_an_extension_agents_does_not_have_plays_the_apology(ami: Client) -> None:
    got = await dial_and_redirect(ami, "dial-f", "connect-agent", "199", "OUT_TALK=600")
    got += await until_hung_up(ami, "dial-f")
    assert steps(got, "dial-f")[2:4] == [("connect-agent", "199", "1", "Dial"), ("connect-agent", "199", "2", "Goto")]
    assert not [x for x in named(got, "DialBegin") if first(x, "Channel")]


async def test_redirect_of_an_unknown_channel_is_an_error_as_in_asterisk(ami: Client) -> None:
    reply, _ = await ami.action(*redirect("dial-nobody", "connect-agent", "101"))
    assert (first(reply, "Response"), first(reply, "Message")) == ("Error", "Channel does not exist: dial-nobody")


@pytest.mark.parametrize(("context", "exten", "variables"), [
    ("connect-agent", "101", ("OUT_RESULT=3",)),  # still ringing: no dialplan runs on it yet
    ("sales", "s", ("OUT_TALK=600",)),  # a context this dialplan does not send debtors to
])
async def test_redirect_the_dialplan_cannot_follow_fails(ami: Client, context: str, exten: str,
                                                         variables: tuple[str, ...]) -> None:
    ami.send(*dial("dial-g", *variables))
    await ami.until(lambda x: event_name(x) == "DialBegin")
    reply, _ = await ami.action(*redirect("dial-g", context, exten))
    assert (first(reply, "Response"), first(reply, "Message")) == ("Error", "Redirect failed")
    await ami.action(("Action", "Hangup"), ("ActionID", "h-1"), ("Channel", "dial-g"))  # Hangup takes the uniqueid too
    await until_hung_up(ami, "dial-g")


async def test_hangup_of_a_debtor_on_hold_ends_the_call(sim: PbxSimulator, ami: Client) -> None:
    ami.send(*dial("dial-h", "OUT_TALK=600"))
    await ami.until(lambda x: event_name(x) == "Newexten" and first(x, "Application") == "Wait")
    reply, _ = await ami.action(("Action", "Hangup"), ("ActionID", "h-2"), ("Channel", "dial-h"))
    assert first(reply, "Message") == "Channel Hungup"
    await until_hung_up(ami, "dial-h")
    assert sim.snapshot().calls == []


async def test_customer_model_answers_about_as_often_as_configured_over_ami() -> None:
    """300 seeded debtors, 30 % answer after 1..4 s; the rest ring out at the 20 s Originate timeout."""
    model = CustomerModel(answer_prob=0.3, talk_mean=60.0, talk_sd=20.0, ring_min=1.0, ring_max=4.0, seed=4)
    simulator = PbxSimulator(default_config(time_scale=2000.0, customers=model))
    await simulator.start("127.0.0.1", 0)
    client = await Client.connect(simulator)
    try:
        await client.login()
        for n in range(300):
            client.send(*dial(f"dial-m{n}", number=f"+7916{n:07d}", timeout=20000))
        got: list[Msg] = []
        while len(named(got, "OriginateResponse")) < 300:
            got += await client.until(lambda x: event_name(x) == "OriginateResponse", timeout=20)
        reasons = [first(x, "Reason") for x in named(got, "OriginateResponse")]
        assert set(reasons) == {"4", "3"}
        assert 0.24 < reasons.count("4") / 300 < 0.36
    finally:
        client.close()
        await simulator.stop()


def test_customer_model_rings_talks_and_rings_out_as_configured() -> None:
    """The pure model: the answer comes ring_min..ring_max after the Originate, the talk after the operator's
    answer is gamma(mean, sd), and a ring longer than the Originate timeout is no answer."""
    model = CustomerModel(answer_prob=1.0, talk_mean=90.0, talk_sd=30.0, ring_min=2.0, ring_max=6.0, seed=1)
    pbx = Pbx(default_config(customers=model), 1000.0)
    pbx.agents["Local/101@agents/n"] = AgentBehaviour(0.0, 1e9)
    rings, talks, now = [], [], 1000.0
    for n in range(200):
        req = Request(list(dial(f"dial-t{n}", number=f"+7916{n:07d}")))
        run_action(pbx, now, req, f"orig-dial-t{n}")
        answered = pbx.next_deadline()
        assert answered is not None
        rings.append(answered - now)
        pbx.advance(answered)
        run_action(pbx, answered, Request(list(redirect(f"dial-t{n}", "connect-agent", "101"))), "r")
        ends = pbx.next_deadline()
        assert ends is not None
        talks.append(ends - answered)
        pbx.advance(ends)
        assert pbx.snapshot().calls == []
        now = ends
    assert 2.0 <= min(rings) and max(rings) <= 6.0 and abs(statistics.mean(rings) - 4.0) < 0.3
    assert abs(statistics.mean(talks) - 90.0) < 9.0 and abs(statistics.stdev(talks) - 30.0) < 6.0
    late = Pbx(default_config(customers=CustomerModel(1.0, 60.0, 0.0, 25.0, 25.0)), 1000.0)
    run_action(late, 1000.0, Request(list(dial("dial-late", timeout=20000))), "orig-dial-late")
    late.advance(1030.0)
    assert late.snapshot().calls == [], "a 25 s ring outlasts the 20 s Originate: no answer"


@pytest.mark.parametrize("bad", [dict(answer_prob=1.5), dict(talk_mean=0.0), dict(ring_min=5.0, ring_max=1.0)])
def test_customer_model_refuses_impossible_numbers(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        CustomerModel(**{"answer_prob": 0.5, "talk_mean": 60.0, "talk_sd": 10.0, **bad})


@pytest.mark.parametrize(("channel", "context", "exten", "agent"), [
    ("Local/101@agents", "outbound", "+73517654321", "Local/101@agents/n"),  # click-to-call
    ("Local/89991234561@outbound", "connect-agent", "105", "Local/105@agents/n"),  # a campaign's
])
async def test_a_talked_outbound_call_leaves_its_recording(tmp_path: Path, channel: str, context: str,
                                                           exten: str, agent: str) -> None:
    """MixMonitor in `[outbound]` or `[connect-agent]`: the talk from the bridge to the hangup,
    under the call's Linkedid (the ChannelId the bridge gave)."""
    sim = PbxSimulator(default_config(time_scale=SCALE), recordings=tmp_path)
    await sim.start("127.0.0.1", 0)
    client = await Client.connect(sim)
    try:
        await client.login()
        sim.set_agent(agent, 0.0, talk=600)
        await client.action(*originate(channel, context, exten, "out-rec", "OUT_TALK=5"))
        await until_gone(client, "out-rec")
        (path,) = tmp_path.rglob("*.wav")
        assert path.name == "out-rec.wav"
        with wave.open(str(path)) as audio:
            assert audio.getnframes() == 5 * audio.getframerate()
    finally:
        client.close()
        await sim.stop()
