"""CallTracker on dialler calls: the simulator's pure model plays the dialplan on a simulated clock,
its AMI bytes go through the real frame parser into the tracker, no socket. Every CallEvent of the
contract's point 3/4 is checked with exact seconds; a production-shaped trace (the operator's
`Local/<ext>@agents` leg dialling a PJSIP phone) is replayed by hand at the end."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import AmiMessage, FrameParser
from ami_bridge.tracker import CallTracker
from callcard.pbx_sim import messages as m
from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import AgentBehaviour, Pbx, default_config
from callcard.pbx_sim.wire import Request

K = CallEventKind
T0 = 1000.0
CALL = "dial-0123abcd"
DEBTOR = "+73517654321"  # answers at once
OPERATOR = "Local/101@agents"


class Dialler:
    """The dialler's side of one call: Originate into `[dialler]`, Redirects, a clock it moves itself."""

    def __init__(self, agents: dict[str, AgentBehaviour] | None = None) -> None:
        """`agents`: extension -> how that operator behaves (the rest as in default_config)."""
        self.pbx = Pbx(default_config(), T0)
        for ext, behaviour in (agents or {}).items():
            self.pbx.agents[f"Local/{ext}@agents/n"] = behaviour
        self.now = T0
        self.tracker = CallTracker(clock=lambda: self.now)
        self.parser = FrameParser()
        self.events: list[CallEvent] = []

    def _feed(self, messages: list[Message]) -> list[CallEvent]:
        got = [e for msg in self.parser.feed(b"".join(map(m.encode, messages))) for e in self.tracker.feed(msg)]
        self.events += got
        return got

    def action(self, *headers: tuple[str, str]) -> Message:
        outcome = run_action(self.pbx, self.now, Request(list(headers)), dict(headers).get("ActionID"))
        assert outcome is not None
        self._feed(outcome.events)
        return outcome.replies[0]

    def dial(self, number: str = DEBTOR, talk: float = 600, **variables: str) -> None:
        self.tracker.expect_outbound("orig-1", CALL)  # what Bridge does on AmiClient.on_originate
        extra = [("Variable", f"{k}={v}") for k, v in {"OUT_TALK": f"{talk:g}", **variables}.items()]
        self.action(("Action", "Originate"), ("ActionID", "orig-1"), ("Channel", f"Local/{number}@outbound"),
                    ("ChannelId", CALL), ("Timeout", "30000"), ("Async", "true"), ("Context", "dialler"),
                    ("Exten", "7"), ("Priority", "1"), ("CallerID", "+74950000000"),
                    ("Variable", "CALLCARD_CAMPAIGN=7"), *extra)

    def redirect(self, context: str, exten: str) -> None:
        reply = self.action(("Action", "Redirect"), ("ActionID", "r"), ("Channel", CALL), ("Context", context),
                            ("Exten", exten), ("Priority", "1"))
        assert ("Message", "Redirect successful") in reply

    def wait(self, seconds: float) -> None:
        """Let the PBX play out `seconds` of simulated time."""
        self.run(until=lambda e: False, stop_at=self.now + seconds)

    def run(self, until: Callable[[CallEvent], bool] = lambda e: e.kind is K.ENDED,
            stop_at: float | None = None) -> None:
        """Timer by timer, until an event matches (or `stop_at`, or nothing is left to happen)."""
        while (deadline := self.pbx.next_deadline()) is not None and (stop_at is None or deadline <= stop_at):
            self.now = deadline
            if any(until(e) for e in self._feed(self.pbx.advance(deadline))):
                return
        if stop_at is not None:
            self.now = stop_at

    def seen(self) -> list[tuple[CallEventKind, str]]:
        return [(e.kind, e.interface) for e in self.events]

    @property
    def end(self) -> CallEvent:
        assert self.events[-1].kind is K.ENDED and self.tracker.active_calls == []
        return self.events[-1]


def test_answered_debtor_put_through_to_an_operator_is_an_answered_call() -> None:
    d = Dialler({"101": AgentBehaviour(2.0, 600)})
    d.dial(talk=40)
    d.wait(1)
    d.redirect("connect-agent", "101")
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, OPERATOR), (K.ANSWERED, OPERATOR),
                        (K.ENDED, OPERATOR)]
    assert {(e.linkedid, e.direction, e.caller_num) for e in d.events} == {(CALL, "outbound", DEBTOR)}
    ringing, answered = d.events[2], d.events[3]
    assert (ringing.at, answered.at) == (T0 + 1, T0 + 3)
    assert (d.end.outcome, d.end.talk_seconds, d.end.at) == (Outcome.ANSWERED, 37, T0 + 40)


def test_debtor_nobody_redirects_is_abandoned_after_hold_and_apology() -> None:
    d = Dialler()
    d.dial()
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.ENDED, "")]
    assert (d.end.outcome, d.end.wait_seconds) == (Outcome.ABANDONED, 5)  # Wait(2) + the 3 s apology


def test_debtor_redirected_to_the_apology_is_abandoned_from_their_answer() -> None:
    d = Dialler()
    d.dial()
    d.wait(1)
    d.redirect("dialler-abandon", "s")
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.ENDED, "")]
    assert (d.end.outcome, d.end.wait_seconds) == (Outcome.ABANDONED, 4)


def test_operator_who_does_not_answer_stops_ringing_and_the_debtor_is_abandoned() -> None:
    d = Dialler({"102": AgentBehaviour(None, 600)})
    d.dial()
    d.wait(1)
    d.redirect("connect-agent", "102")
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, "Local/102@agents"),
                        (K.RING_STOPPED, "Local/102@agents"), (K.ENDED, "")]
    assert d.events[3].at == T0 + 21
    assert (d.end.outcome, d.end.wait_seconds) == (Outcome.ABANDONED, 24)  # 1 s hold, 20 s ring, apology


def test_busy_operator_rings_off_at_once_and_the_debtor_is_abandoned() -> None:
    d = Dialler({"101": AgentBehaviour(0.0, 600)})
    d.action(("Action", "Originate"), ("ActionID", "c2c"), ("Channel", OPERATOR), ("ChannelId", "c2c-1"),
             ("Async", "true"), ("Context", "outbound"), ("Exten", "+73517654329"), ("Variable", "OUT_TALK=600"))
    d.events.clear()  # the operator's own click-to-call, already talking
    d.dial()
    d.redirect("connect-agent", "101")
    d.run(until=lambda e: e.kind is K.ENDED and e.linkedid == CALL)
    mine = [(e.kind, e.interface) for e in d.events if e.linkedid == CALL]
    assert mine == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, OPERATOR), (K.RING_STOPPED, OPERATOR),
                    (K.ENDED, "")]
    assert (d.events[-1].outcome, d.events[-1].wait_seconds) == (Outcome.ABANDONED, 3)


def test_debtor_hanging_up_while_the_operator_rings_is_abandoned() -> None:
    d = Dialler({"102": AgentBehaviour(None, 600)})
    d.dial(talk=6)
    d.redirect("connect-agent", "102")
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, "Local/102@agents"),
                        (K.RING_STOPPED, "Local/102@agents"), (K.ENDED, "")]
    assert (d.end.outcome, d.end.wait_seconds, d.end.at) == (Outcome.ABANDONED, 6, T0 + 6)


def test_debtor_redirected_out_of_the_apology_still_reaches_an_operator() -> None:
    """The dialler's Redirect lands after the 2 s hold: Asterisk moves the channel out of Playback."""
    d = Dialler({"101": AgentBehaviour(0.0, 600)})
    d.dial(talk=30)
    d.wait(3)
    d.redirect("connect-agent", "101")
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, OPERATOR), (K.ANSWERED, OPERATOR),
                        (K.ENDED, OPERATOR)]
    assert (d.end.outcome, d.end.talk_seconds) == (Outcome.ANSWERED, 27)


def test_ringing_operator_replaced_by_another_one() -> None:
    d = Dialler({"102": AgentBehaviour(None, 600), "103": AgentBehaviour(1.0, 600)})
    d.dial(talk=30)
    d.redirect("connect-agent", "102")
    d.wait(5)
    d.redirect("connect-agent", "103")
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, "Local/102@agents"),
                        (K.RING_STOPPED, "Local/102@agents"), (K.RINGING, "Local/103@agents"),
                        (K.ANSWERED, "Local/103@agents"), (K.ENDED, "Local/103@agents")]
    assert (d.end.outcome, d.end.talk_seconds) == (Outcome.ANSWERED, 24)
    assert d.pbx.snapshot().channels == []


@pytest.mark.parametrize(("number", "variables", "outcome"), [
    ("+73517654322", {}, Outcome.BUSY),
    ("+73517654320", {"OUT_RESULT": "3"}, Outcome.MISSED),
    ("+73517654324", {}, Outcome.FAILED),
])
def test_debtor_who_never_answers_keeps_the_outcome_of_the_originate(
        number: str, variables: dict[str, str], outcome: Outcome) -> None:
    d = Dialler()
    d.dial(number, **variables)
    d.run()
    assert d.seen() == [(K.OFFERED, ""), (K.ENDED, "")]
    assert (d.end.outcome, d.end.caller_num, d.end.linkedid) == (outcome, number, CALL)


def _ev(name: str, uniqueid: str, channel: str, **fields: str) -> AmiMessage:
    return AmiMessage.of(Event=name, Channel=channel, Uniqueid=uniqueid, Linkedid=CALL, **fields)


def test_operator_phone_behind_the_local_leg_is_the_same_ring_not_a_second_one() -> None:
    """Production: `[agents]` Dial(PJSIP/101) from the operator's Local ;2. The desk knows the operator
    as `Local/101@agents`: the PJSIP leg must neither ring nor answer under its own name."""
    clock = [T0]
    tracker = CallTracker(clock=lambda: clock[0])
    tracker.expect_outbound("orig-1", CALL)
    debtor, op1, op2, phone = (f"Local/{DEBTOR}@outbound-00000001;1", "Local/101@agents-00000002;1",
                               "Local/101@agents-00000002;2", "PJSIP/101-00000003")
    script: list[tuple[float, AmiMessage]] = [
        (0, _ev("Newchannel", CALL, debtor, Exten=DEBTOR, CallerIDNum="+74950000000")),
        (4, AmiMessage.of(Event="OriginateResponse", ActionID="orig-1", Response="Success", Reason="4",
                          Uniqueid=CALL)),
        (5, _ev("Newchannel", "u2", op1, Exten="101")),
        (5, _ev("Newchannel", "u3", op2, Exten="101")),
        (5, _ev("DialBegin", CALL, debtor, DestChannel=op1, DestUniqueid="u2", DialString="101@agents/n")),
        (5, _ev("Newchannel", "u4", phone, Exten="s")),
        (5, _ev("DialBegin", "u3", op2, DestChannel=phone, DestUniqueid="u4", DialString="101")),
        (8, _ev("DialEnd", "u3", op2, DestChannel=phone, DestUniqueid="u4", DialStatus="ANSWER")),
        (8, _ev("DialEnd", CALL, debtor, DestChannel=op1, DestUniqueid="u2", DialStatus="ANSWER")),
        (30, _ev("Hangup", "u4", phone)),
        (30, _ev("Hangup", "u3", op2)),
        (30, _ev("Hangup", "u2", op1)),
        (30, _ev("Hangup", CALL, debtor)),
    ]
    events = []
    for at, msg in script:
        clock[0] = T0 + at
        events += tracker.feed(msg)
    assert [(e.kind, e.interface) for e in events] == [
        (K.OFFERED, ""), (K.ANSWERED, ""), (K.RINGING, OPERATOR), (K.ANSWERED, OPERATOR), (K.ENDED, OPERATOR)]
    assert (events[-1].outcome, events[-1].talk_seconds, events[-1].caller_num) == (Outcome.ANSWERED, 22, DEBTOR)
