"""CallTracker on click-to-call: the simulator's pure model feeds it bytes directly, no socket."""

from __future__ import annotations

import pytest

from ami_bridge.events import CallEventKind, Outcome
from ami_bridge.frames import AmiMessage, FrameParser
from ami_bridge.tracker import CallTracker
from callcard.pbx_sim import messages as m
from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.model import AgentBehaviour, Pbx, default_config
from callcard.pbx_sim.wire import Request

K = CallEventKind
OPERATOR = "Local/101@agents"


def click_to_call(number: str, agent: AgentBehaviour) -> list:  # type: ignore[type-arg]
    """Every CallEvent of one click-to-call, from the Originate to the last hangup."""
    pbx = Pbx(default_config(), 1000.0)
    pbx.agents[f"{OPERATOR}/n"] = agent
    clock = [1000.0]
    tracker = CallTracker(clock=lambda: clock[0])
    tracker.expect_outbound("orig-1", "c2c-1")
    tracker.expect_click_to_call("c2c-1", OPERATOR, number)
    req = Request([("Action", "Originate"), ("ActionID", "orig-1"), ("Channel", OPERATOR), ("Context", "outbound"),
                   ("Exten", number), ("Priority", "1"), ("ChannelId", "c2c-1"), ("Async", "true"),
                   ("CallerID", number), ("Timeout", "30000")])
    outcome = run_action(pbx, 1000.0, req, "orig-1")
    assert outcome is not None
    parser = FrameParser()
    events = [e for msg in parser.feed(b"".join(map(m.encode, outcome.events))) for e in tracker.feed(msg)]
    while (deadline := pbx.next_deadline()) is not None:
        clock[0] = deadline
        events += [e for msg in parser.feed(b"".join(map(m.encode, pbx.advance(deadline))))
                   for e in tracker.feed(msg)]
    assert tracker.active_calls == []
    return events


def test_click_to_call_pops_the_operator_and_answers_when_the_customer_does() -> None:
    events = click_to_call("+73517654321", AgentBehaviour(2.0, 600))
    assert [(e.kind, e.interface) for e in events] == [
        (K.OFFERED, OPERATOR), (K.RINGING, OPERATOR), (K.ANSWERED, OPERATOR), (K.ENDED, OPERATOR)]
    assert {(e.direction, e.caller_num, e.did) for e in events} == {("outbound", "+73517654321", "+73517654321")}
    answered, end = events[2], events[3]
    assert answered.wait_seconds == 2, "the operator's ring counts, the customer answered at once"
    assert (end.outcome, end.talk_seconds) == (Outcome.ANSWERED, 4)


@pytest.mark.parametrize(("number", "agent", "outcome"), [
    ("+73517654322", AgentBehaviour(0.0, 600), Outcome.BUSY),
    ("+73517654323", AgentBehaviour(0.0, 600), Outcome.MISSED),
    ("+73517654324", AgentBehaviour(0.0, 600), Outcome.FAILED),
    ("+73517654321", AgentBehaviour(None, 600), Outcome.MISSED),
])
def test_click_to_call_without_an_answer_ends_with_the_customers_result(
    number: str, agent: AgentBehaviour, outcome: Outcome
) -> None:
    """The operator's own answer (OriginateResponse Reason 4) is not the call's answer."""
    events = click_to_call(number, agent)
    assert [e.kind for e in events] == [K.OFFERED, K.RINGING, K.RING_STOPPED, K.ENDED]
    assert (events[-1].outcome, events[-1].interface, events[-1].caller_num) == (outcome, OPERATOR, number)


def test_operators_pjsip_phone_answering_is_not_the_customers_answer() -> None:
    """Production: the originated `Local/101@agents` leg's ;2 runs `[agents]` Dial(PJSIP/101). That
    Dial is the operator's phone, not the customer: a busy customer stays a busy call."""
    tracker = CallTracker(clock=lambda: 1000.0)
    tracker.expect_outbound("orig-1", "c2c-1")
    tracker.expect_click_to_call("c2c-1", OPERATOR, "+73517654322")
    one, two, phone, trunk = ("Local/101@agents-00000001;1", "Local/101@agents-00000001;2", "PJSIP/101-00000002",
                              "PJSIP/trunk-00000003")

    def ev(name: str, uniqueid: str, channel: str, **fields: str) -> AmiMessage:
        return AmiMessage.of(Event=name, Channel=channel, Uniqueid=uniqueid, Linkedid="c2c-1", **fields)

    script = [
        ev("Newchannel", "c2c-1", one, Exten="101"), ev("Newchannel", "c2c-1;2", two, Exten="101"),
        ev("Newchannel", "u3", phone), ev("DialBegin", "c2c-1;2", two, DestChannel=phone, DialString="101"),
        ev("DialEnd", "c2c-1;2", two, DestChannel=phone, DialStatus="ANSWER"),
        AmiMessage.of(Event="OriginateResponse", ActionID="orig-1", Response="Success", Reason="4", Uniqueid="c2c-1"),
        ev("Newchannel", "u4", trunk), ev("DialBegin", "c2c-1", one, DestChannel=trunk, DialString="+73517654322@trunk"),
        ev("DialEnd", "c2c-1", one, DestChannel=trunk, DialStatus="BUSY"),
        ev("Hangup", "u4", trunk), ev("Hangup", "u3", phone), ev("Hangup", "c2c-1;2", two), ev("Hangup", "c2c-1", one),
    ]
    events = [e for msg in script for e in tracker.feed(msg)]
    assert [e.kind for e in events] == [K.OFFERED, K.RINGING, K.RING_STOPPED, K.ENDED]
    assert (events[-1].outcome, events[-1].interface) == (Outcome.BUSY, OPERATOR)
