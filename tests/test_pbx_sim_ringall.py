"""Ringall in the pure simulator model: an operator who picks up at once (answer_after=0) ends the
ringing for that caller as a later answer does: one agent connected, the legs rung before it
cancelled (DialEnd CANCEL, Hangup cause 0), the members after it not rung for that caller."""

from __future__ import annotations

import pytest

from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import INUSE, NOT_INUSE, AgentBehaviour, MemberConfig, Pbx, PbxConfig, QueueConfig

T0 = 1000.0
OPS = ("Local/101@agents/n", "Local/102@agents/n", "Local/103@agents/n")
ONE_LEG = ("Local/101@agents-", "Local/102@agents-", "Local/103@agents-")


def _ringall_pbx(at_once: int) -> Pbx:
    """Three members of a ringall queue; the one at `at_once` picks up at once, the others after 2 s."""
    agents = {x: AgentBehaviour(0.0 if i == at_once else 2.0, 5.0) for i, x in enumerate(OPS)}
    members = tuple(MemberConfig(x, x) for x in OPS)
    return Pbx(PbxConfig(queues=(QueueConfig("support", members, strategy="ringall"),), agents=agents), T0)


def _fields(events: list[Message], name: str) -> list[dict[str, str]]:
    return [dict(e) for e in events if dict(e).get("Event") == name]


@pytest.mark.parametrize("at_once", [0, 1, 2])
def test_ringall_operator_answering_at_once_is_the_one_agent_and_the_others_stop_ringing(at_once: int) -> None:
    pbx = _ringall_pbx(at_once)
    call, events = pbx.originate_inbound(T0, "+73510000001", "Caller 1", 60.0, [("QUEUE", "support")])

    assert call.talking is not None and call.talking.member.interface == OPS[at_once]
    assert call.rings == [call.talking]
    called = [e["Interface"] for e in _fields(events, "AgentCalled")]
    assert called == list(OPS[:at_once + 1]), "nobody is rung for a caller already connected"
    ends = [(e["DestChannel"].split("-")[0] + "-", e["DialStatus"]) for e in _fields(events, "DialEnd")
            if e["DestChannel"].startswith("Local/10")]
    assert ends == [(ONE_LEG[at_once], "ANSWER")] + [(ONE_LEG[i], "CANCEL") for i in range(at_once)]
    cancelled = [e for e in _fields(events, "Hangup") if e["Channel"].startswith(ONE_LEG[:at_once])]
    assert len(cancelled) == 2 * at_once and all(e["Cause"] == "0" for e in cancelled)
    assert [e["Interface"] for e in _fields(events, "AgentConnect")] == [OPS[at_once]]
    assert {x.interface: pbx.status(x) for x in pbx.queues["support"].members} == {
        x: INUSE if i == at_once else NOT_INUSE for i, x in enumerate(OPS)}

    while (deadline := pbx.next_deadline()) is not None:
        pbx.advance(deadline)
    assert not pbx.calls and pbx.snapshot().channels == [] and pbx._busy() == set()
    assert pbx.queues["support"].completed == 1
    assert [x.calls_taken for x in pbx.queues["support"].members] == [int(i == at_once) for i in range(3)]


def test_ringall_members_left_free_by_an_answer_at_once_ring_for_the_next_caller() -> None:
    pbx = _ringall_pbx(0)
    first, _ = pbx.originate_inbound(T0, "+73510000001", "Caller 1", 60.0, [("QUEUE", "support")])
    second, events = pbx.originate_inbound(T0, "+73510000002", "Caller 2", 60.0, [("QUEUE", "support")])

    assert first.talking is not None and first.talking.member.interface == OPS[0]
    assert [e["Interface"] for e in _fields(events, "AgentCalled")] == list(OPS[1:])
    assert second.talking is None and [r.member.interface for r in second.rings] == list(OPS[1:])
    pbx.advance(T0 + 2.0)
    assert second.talking is not None and second.talking.member.interface == OPS[1]
    assert second.rings == [second.talking]
