"""A Redirect out of a queue is a transfer, not an abandon: the simulator's own event sequence
(QueueCallerAbandon + QueueCallerLeave in the old queue, or AgentComplete Reason transfer, then
QueueCallerJoin in the new one) replayed through the pure CallTracker."""

from __future__ import annotations

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import FrameParser
from ami_bridge.tracker import CallTracker
from callcard.pbx_sim.messages import Message, encode
from callcard.pbx_sim.model import AgentBehaviour, MemberConfig, Pbx, PbxConfig, QueueConfig

OP1, OP3 = "Local/101@agents/n", "Local/103@agents/n"
T0 = 1_800_000_000.0


class Replay:
    """The simulator's PBX model wired to a tracker through the real frame parser."""

    def __init__(self) -> None:
        config = PbxConfig(
            queues=(QueueConfig("sales", (MemberConfig(OP1, "op1"),)),
                    QueueConfig("support", (MemberConfig(OP3, "op3"),))),
            agents={OP1: AgentBehaviour(None), OP3: AgentBehaviour(None)},
        )
        self.now = T0
        self.pbx = Pbx(config, T0)
        self.tracker = CallTracker(clock=lambda: self.now)
        self.parser = FrameParser()

    def feed(self, messages: list[Message]) -> list[CallEvent]:
        events: list[CallEvent] = []
        for message in self.parser.feed(b"".join(encode(m) for m in messages)):
            events += self.tracker.feed(message)
        return events

    def at(self, seconds: float) -> float:
        self.now = T0 + seconds
        return self.now


def kinds(events: list[CallEvent]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.queue) for e in events]


def test_redirect_while_waiting_is_a_transfer_and_the_call_goes_on() -> None:
    r = Replay()
    call, messages = r.pbx.originate_inbound(r.at(0), "+73511234567", "Ivan", 60.0, [("QUEUE", "sales")])
    events = r.feed(messages)
    assert ("ringing", "sales") in kinds(events)
    channel = r.tracker.caller_channel(call.linkedid)
    assert channel == call.inner.name  # the ;2 leg sits in the queue: that is what a Redirect moves

    assert r.tracker.expect_redirect(call.linkedid)
    events = r.feed(r.pbx.redirect(r.at(5), channel, "queues", "support"))
    assert kinds(events) == [("ring_stopped", "sales"), ("transferred", "support"), ("ringing", "support")]
    assert CallEventKind.ABANDONED not in [e.kind for e in events]
    assert events[-1].interface == "Local/103@agents"

    r.feed(r.pbx.answer(r.at(8), OP3))
    ended = r.feed(r.pbx.hangup_agent(r.at(20), OP3))
    assert ended[-1].kind is CallEventKind.ENDED
    assert (ended[-1].outcome, ended[-1].queue, ended[-1].interface) == (
        Outcome.ANSWERED, "support", "Local/103@agents")


def test_redirect_while_talking_hands_the_call_to_the_other_queue() -> None:
    r = Replay()
    call, messages = r.pbx.originate_inbound(r.at(0), "+73511234567", "Ivan", 60.0, [("QUEUE", "sales")])
    r.feed(messages)
    answered = r.feed(r.pbx.answer(r.at(2), OP1))
    assert [e.kind for e in answered] == [CallEventKind.ANSWERED]
    r.tracker.expect_redirect(call.linkedid)
    events = r.feed(r.pbx.redirect(r.at(30), r.tracker.caller_channel(call.linkedid) or "", "queues", "support"))
    assert kinds(events) == [("transferred", "support"), ("ringing", "support")]
    assert call.linkedid in r.tracker.active_calls


def test_abandon_without_a_redirect_is_still_an_abandon() -> None:
    r = Replay()
    call, messages = r.pbx.originate_inbound(r.at(0), "+73511234567", "Ivan", 3.0, [("QUEUE", "sales")])
    r.feed(messages)
    r.tracker.expect_redirect(call.linkedid)
    r.tracker.cancel_redirect(call.linkedid)  # the Redirect action failed
    events = r.feed(r.pbx.advance(r.at(4)))
    assert [e.kind for e in events if e.kind in (CallEventKind.ABANDONED, CallEventKind.ENDED)] == [
        CallEventKind.ABANDONED, CallEventKind.ENDED]
    assert events[-1].outcome is Outcome.ABANDONED


def test_caller_channel_of_an_unknown_call_is_none() -> None:
    tracker = CallTracker()
    assert tracker.caller_channel("nope") is None
    assert tracker.expect_redirect("nope") is False
