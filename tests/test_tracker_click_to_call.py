"""CallTracker on click-to-call: the simulator's pure model feeds it bytes directly, no socket."""

from __future__ import annotations

import pytest

from ami_bridge.events import CallEventKind, Outcome
from ami_bridge.frames import FrameParser
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
