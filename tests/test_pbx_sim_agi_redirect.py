"""An AMI Redirect of a caller still in its IVR (AGI()) in the pure simulator model: as in Asterisk,
the AGI ends (AGISTATUS=HANGUP, the script's next command gets HANGUP, then 511) and the channel
goes on where it was sent; the later end of the AGI session routes it nowhere."""

from __future__ import annotations

from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.agi import DEAD_CHANNEL, AgiLeg
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import AgentBehaviour, Call, MemberConfig, Pbx, PbxConfig, QueueConfig
from callcard.pbx_sim.wire import Request

T0 = 1000.0
SALES_OP, SUPPORT_OP, COLLEAGUE = "Local/201@agents/n", "Local/202@agents/n", "Local/301@agents"


def _pbx() -> Pbx:
    """Operators who ring until answered through the API, so nothing happens on its own."""
    agents = {x: AgentBehaviour(None, 5.0) for x in (SALES_OP, SUPPORT_OP, f"{COLLEAGUE}/n")}
    return Pbx(PbxConfig(queues=(QueueConfig("sales", (MemberConfig(SALES_OP, "Sales 201"),)),
                                 QueueConfig("support", (MemberConfig(SUPPORT_OP, "Support 202"),))),
                         agents=agents), T0)


def _ivr_call(pbx: Pbx) -> tuple[Call, AgiLeg]:
    leg = AgiLeg("agi://127.0.0.1:4573/ivr", "", [], T0 + 60.0, 1)
    call, _ = pbx.originate_inbound(T0, "+73510000001", "", 60.0, [("QUEUE", "sales"), ("IVR", "1")], agi=leg)
    assert call.agi is leg and call.inner.application == "AGI"
    return call, leg


def _act(pbx: Pbx, now: float, *headers: tuple[str, str]) -> list[Message]:
    outcome = run_action(pbx, now, Request([("ActionID", "a1"), *headers]), "a1")
    assert outcome is not None and dict(outcome.replies[0])["Response"] == "Success", outcome.replies
    return outcome.events


def _names(events: list[Message]) -> list[str]:
    return [dict(e).get("Event", "") for e in events]


def test_caller_redirected_to_a_queue_during_its_ivr_waits_there_once_and_leaves_it_on_hangup() -> None:
    pbx = _pbx()
    call, leg = _ivr_call(pbx)
    events = _act(pbx, T0 + 1.0, ("Action", "Redirect"), ("Channel", call.inner.name), ("Context", "queues"),
                  ("Exten", "support"), ("Priority", "1"))
    assert _names(events).count("QueueCallerJoin") == 1 and _names(events).count("AgentCalled") == 1
    assert pbx.agi_done(T0 + 2.0, call.linkedid, leg, "SUCCESS") == []
    assert pbx.snapshot().waiting == {"sales": [], "support": [call.linkedid]}
    assert ("Variable", "AGISTATUS") in events[0] and ("Value", "HANGUP") in events[0]
    assert pbx.agi_command(T0 + 2.0, call.linkedid, leg, "NOOP still-here").reply == ["HANGUP", DEAD_CHANNEL]
    assert [r.member.interface for r in call.rings] == [SUPPORT_OP]

    hangup = _act(pbx, T0 + 3.0, ("Action", "Hangup"), ("Channel", call.outer.name), ("Cause", "16"))
    assert _names(hangup).count("QueueCallerAbandon") == 1
    assert pbx.snapshot().waiting == {"sales": [], "support": []}
    assert pbx.snapshot().channels == [] and pbx._busy() == set()
    assert "AgentCalled" not in _names(pbx.advance(T0 + 120.0))
    assert pbx.next_deadline() is None


def test_caller_redirected_to_a_colleague_during_its_ivr_is_not_queued_when_the_ivr_session_ends() -> None:
    pbx = _pbx()
    call, leg = _ivr_call(pbx)
    _act(pbx, T0 + 1.0, ("Action", "Setvar"), ("Channel", call.inner.name), ("Variable", "TRANSFER_TO"),
         ("Value", COLLEAGUE))
    _act(pbx, T0 + 1.0, ("Action", "Redirect"), ("Channel", call.inner.name), ("Context", "transfer"),
         ("Exten", "colleague"), ("Priority", "1"))
    assert pbx.agi_done(T0 + 2.0, call.linkedid, leg, "SUCCESS") == []
    assert pbx.snapshot().waiting == {"sales": [], "support": []}

    pbx.answer(T0 + 3.0, COLLEAGUE)
    assert call.talking is not None and call.talking.member.interface == COLLEAGUE
    pbx.advance(T0 + 8.0)  # the colleague talks 5 s and hangs up
    assert not pbx.calls and pbx.snapshot().waiting == {"sales": [], "support": []}
    assert pbx.next_deadline() is None


def test_the_end_of_a_replaced_calls_ivr_session_does_not_route_the_call_that_reused_its_channel_id() -> None:
    pbx = _pbx()
    ivr = [("QUEUE", "sales"), ("IVR", "1")]
    first = AgiLeg("agi://127.0.0.1:4573/ivr", "", [], T0 + 60.0, 1)
    old, _ = pbx.originate_inbound(T0, "+73510000001", "", 60.0, ivr, ids=("reused", ""), agi=first)
    second = AgiLeg("agi://127.0.0.1:4573/ivr", "", [], T0 + 60.0, 2)
    new, _ = pbx.originate_inbound(T0 + 1.0, "+73510000002", "", 60.0, ivr, ids=("reused", ""), agi=second)
    assert old.linkedid == new.linkedid == "reused" and pbx.calls["reused"] is new

    assert pbx.agi_done(T0 + 2.0, "reused", first, "SUCCESS") == []
    assert new.agi is second and pbx.snapshot().waiting == {"sales": [], "support": []}
    assert "QueueCallerJoin" in _names(pbx.agi_done(T0 + 3.0, "reused", second, "SUCCESS"))
    assert pbx.snapshot().waiting == {"sales": ["reused"], "support": []}
