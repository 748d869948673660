"""ChanSpy in the pure simulator model: a phone the PBX does not have fails like Asterisk's
Originate (Reason 0), a supervisor who rejects the ringing phone gives Reason 5, and with
nothing to spy on ChanSpy ends at once."""

from __future__ import annotations

from callcard.pbx_sim import default_config
from callcard.pbx_sim.actions import run_action
from callcard.pbx_sim.model import AgentBehaviour, Pbx
from callcard.pbx_sim.wire import RequestParser

SUPER = "Local/110@agents/n"


def _originate(pbx: Pbx, channel: str, now: float = 100.0):  # type: ignore[no-untyped-def]
    raw = (f"Action: Originate\r\nActionID: spy-1\r\nChannel: {channel}\r\nApplication: ChanSpy\r\n"
           "Data: Local/101@agents-,qE\r\nAsync: true\r\n\r\n").encode()
    outcome = run_action(pbx, now, RequestParser().feed(raw)[0], "spy-1")
    assert outcome is not None and outcome.replies[0][-1] == ("Message", "Originate successfully queued")
    return [dict(e) for e in outcome.events]


def test_spy_from_a_phone_the_pbx_does_not_have_fails_with_reason_0() -> None:
    events = _originate(Pbx(default_config(), 100.0), "Local/999@agents")
    assert [(e["Event"], e["Response"], e["Reason"]) for e in events] == [("OriginateResponse", "Failure", "0")]


def test_rejected_ringing_spy_phone_fails_with_reason_5() -> None:
    pbx = Pbx(default_config(), 100.0)
    pbx.agents[SUPER] = AgentBehaviour(None)
    _originate(pbx, "Local/110@agents")
    assert [s.state for s in pbx.snapshot().spies] == ["ringing"]
    events = [dict(e) for e in pbx.hangup_agent(101.0, SUPER)]
    response = next(e for e in events if e["Event"] == "OriginateResponse")
    assert (response["Response"], response["Reason"], response["Application"]) == ("Failure", "5", "ChanSpy")
    assert pbx.snapshot().spies == [] and pbx.snapshot().channels == []


def test_spy_with_nobody_to_spy_on_ends_at_once() -> None:
    pbx = Pbx(default_config(), 100.0)
    pbx.agents[SUPER] = AgentBehaviour(0.0, 60.0)
    events = _originate(pbx, "Local/110@agents")
    names = [e["Event"] for e in events]
    assert "ChanSpyStart" not in names and names.count("Hangup") == 2
    assert next(e for e in events if e["Event"] == "OriginateResponse")["Reason"] == "4"
    assert pbx.snapshot().spies == []
