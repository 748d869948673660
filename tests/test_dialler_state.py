"""The dialler's pure state: who is free, how many lines to open, who takes an answered debtor."""

from __future__ import annotations

import pytest

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from routing.campaigns.dialler import Abandon, Agent, Connect, Connected, DiallerState, Ended, LiveCall

ANNA, BORIS = Agent(1, "Local/101@agents"), Agent(2, "Local/102@agents")


def ev(kind: CallEventKind, linkedid: str, interface: str = "", outcome: Outcome | None = None) -> CallEvent:
    return CallEvent(kind, linkedid, 0.0, direction="outbound", interface=interface, outcome=outcome)


def placed(state: DiallerState, channel_id: str, campaign_id: int = 1) -> LiveCall:
    call = LiveCall(channel_id, campaign_id, 10, "+73517654321", 0.0)
    state.placed(call)
    return call


def test_an_operator_on_any_call_is_not_free_until_it_ends() -> None:
    state = DiallerState()
    state.on_event(ev(CallEventKind.RINGING, "inbound-1", ANNA.interface), [], 0.0)
    assert state.free([ANNA, BORIS], 0.0) == [BORIS]
    state.on_event(ev(CallEventKind.RING_STOPPED, "inbound-1", ANNA.interface), [], 1.0)
    assert ANNA in state.free([ANNA, BORIS], 1.0)
    state.on_event(ev(CallEventKind.ANSWERED, "inbound-2", ANNA.interface), [], 2.0)
    state.on_event(ev(CallEventKind.ENDED, "inbound-2", ANNA.interface, Outcome.ANSWERED), [], 3.0)
    assert ANNA in state.free([ANNA, BORIS], 3.0)


def test_progressive_dials_one_line_per_free_operator_and_none_without_one() -> None:
    state = DiallerState()
    assert state.to_dial(1, "progressive", [ANNA, BORIS], 10, 0.0) == 2
    placed(state, "a")
    assert state.to_dial(1, "progressive", [ANNA, BORIS], 10, 0.0) == 1  # one already rings for them
    assert state.to_dial(1, "progressive", [], 10, 0.0) == 0
    assert state.to_dial(1, "preview", [ANNA], 10, 0.0) == 0


def test_answered_debtor_goes_to_the_longest_idle_operator_then_the_next_is_abandoned() -> None:
    state = DiallerState(wrapup_seconds=30.0)
    first, second, third = placed(state, "a"), placed(state, "b"), placed(state, "c")
    # Boris finished a call at t=5 and Anna at t=2: Anna has waited longest
    for agent, t in ((ANNA, 2.0), (BORIS, 5.0)):
        state._idle_since[agent.operator_id] = t
    assert state.on_event(ev(CallEventKind.ANSWERED, "a"), [ANNA, BORIS], 10.0) == [Connect(first, ANNA)]
    assert state.on_event(ev(CallEventKind.ANSWERED, "b"), [ANNA, BORIS], 10.0) == [Connect(second, BORIS)]
    assert state.on_event(ev(CallEventKind.ANSWERED, "c"), [ANNA, BORIS], 10.0) == [Abandon(third)]
    assert state.abandon_rate(1) == 1 / 3


def test_connected_call_ends_into_wrap_up_and_a_disposition_frees_the_operator() -> None:
    state = DiallerState(wrapup_seconds=30.0)
    call = placed(state, "a")
    state.on_event(ev(CallEventKind.ANSWERED, "a"), [ANNA], 0.0)
    assert state.on_event(ev(CallEventKind.RINGING, "a", ANNA.interface), [ANNA], 0.5) == []
    assert state.on_event(ev(CallEventKind.ANSWERED, "a", ANNA.interface), [ANNA], 1.0) == [Connected(call)]
    assert state.on_event(ev(CallEventKind.ENDED, "a", ANNA.interface, Outcome.ANSWERED), [ANNA], 61.0) == [
        Ended(call, "answered")]
    assert state.free([ANNA], 70.0) == []  # writing up the call
    assert state.free([ANNA], 91.0) == [ANNA]
    state.on_event(ev(CallEventKind.ENDED, "a2", ANNA.interface, Outcome.ANSWERED), [ANNA], 62.0)
    state._wrapup_until[ANNA.operator_id] = 200.0
    state.wrapped_up(ANNA.operator_id)  # the disposition is saved: no need to wait
    assert state.free([ANNA], 100.0) == [ANNA]


def test_unanswered_outcomes_map_to_attempt_outcomes() -> None:
    state = DiallerState()
    for channel_id, outcome, expected in (("a", Outcome.MISSED, "no_answer"), ("b", Outcome.BUSY, "busy"),
                                          ("c", Outcome.FAILED, "failed")):
        call = placed(state, channel_id)
        assert state.on_event(ev(CallEventKind.ENDED, channel_id, "", outcome), [], 1.0) == [Ended(call, expected)]
    assert state.calls == {}


def test_predictive_over_dials_once_the_answer_rate_is_known() -> None:
    state = DiallerState()
    for i in range(40):  # one answer in four
        call = placed(state, f"r{i}")
        if i % 4 == 0:
            state.on_event(ev(CallEventKind.ANSWERED, call.channel_id), [], 0.0)
        state.calls.pop(call.channel_id, None)
        if i % 4:
            state._campaign(1).resolved.append(False)
    state.seed_abandon_rate(1, 100, 0)
    agents = [Agent(i, f"Local/{100 + i}@agents") for i in range(1, 5)]
    assert state.to_dial(1, "predictive", agents, 30, 0.0) > 4
    assert state.to_dial(1, "progressive", agents, 30, 0.0) == 4


# --- tables ----------------------------------------------------------------------------------

R, A, S, E = CallEventKind.RINGING, CallEventKind.ANSWERED, CallEventKind.RING_STOPPED, CallEventKind.ENDED


@pytest.mark.parametrize(("events", "free"), [
    ([], [ANNA, BORIS]),
    ([(R, "in-1", ANNA)], [BORIS]),  # an inbound call ringing Anna
    ([(R, "in-1", ANNA), (S, "in-1", ANNA)], [ANNA, BORIS]),  # it went to someone else
    ([(R, "in-1", ANNA), (A, "in-1", ANNA)], [BORIS]),
    ([(R, "in-1", ANNA), (A, "in-1", ANNA), (E, "in-1", ANNA)], [ANNA, BORIS]),
    ([(A, "in-1", ANNA), (R, "in-2", ANNA), (S, "in-2", ANNA)], [BORIS]),  # still talking on the first
    ([(A, "in-1", ANNA), (A, "in-2", BORIS), (E, "in-2", None)], [BORIS]),  # ENDED frees every leg of its call
])
def test_free_operators_follow_every_call(events: list, free: list[Agent]) -> None:
    state = DiallerState()
    for kind, linkedid, agent in events:
        state.on_event(ev(kind, linkedid, agent.interface if agent else ""), [], 0.0)
    assert state.free([ANNA, BORIS], 0.0) == free


def test_ended_calls_leave_nothing_behind_however_many_operators_they_rang() -> None:
    """1,000 calls, each ringing three operators (two stop ringing, one answers), end: every
    operator is free again and the state holds no trace of them (it runs for weeks)."""
    state = DiallerState()
    agents = [Agent(i, f"Local/{100 + i}@agents") for i in range(10)]
    for n in range(1000):
        rung = [agents[(n + k) % 10] for k in range(3)]
        for agent in rung:
            state.on_event(ev(R, f"c{n}", agent.interface), [], 0.0)
        for agent in rung[:2]:
            state.on_event(ev(S, f"c{n}", agent.interface), [], 0.0)
        state.on_event(ev(A, f"c{n}", rung[2].interface), [], 0.0)
        if n % 2:  # half end while their neighbours still ring
            state.on_event(ev(E, f"c{n - 1}"), [], 0.0)
            state.on_event(ev(E, f"c{n}"), [], 0.0)
    assert state.free(agents, 0.0) == agents
    assert state._busy == {} and state._on_call == {}


@pytest.mark.parametrize(("mode", "agents", "ringing", "max_lines", "expected"), [
    ("progressive", [ANNA, BORIS], 0, 10, 2),
    ("progressive", [ANNA, BORIS], 1, 10, 1),
    ("progressive", [ANNA, BORIS], 2, 10, 0),
    ("progressive", [ANNA, BORIS], 0, 1, 1),  # the trunk allowance
    ("progressive", [], 0, 10, 0),  # nobody ready: nothing at once
    ("predictive", [], 0, 10, 0),
    ("predictive", [ANNA, BORIS], 0, 10, 2),  # no measured answer rate yet: progressive
    ("preview", [ANNA, BORIS], 0, 10, 0),
])
def test_lines_to_open(mode: str, agents: list[Agent], ringing: int, max_lines: int, expected: int) -> None:
    state = DiallerState()
    for i in range(ringing):
        placed(state, f"ring-{i}")
    assert state.to_dial(1, mode, agents, max_lines, 0.0) == expected


def test_a_seeded_answer_rate_lets_predictive_over_dial_at_once() -> None:
    state = DiallerState()
    state.seed_answers(1, [i % 5 == 0 for i in range(20)])
    assert state.to_dial(1, "predictive", [ANNA, BORIS], 10, 0.0) == 3
    state.seed_abandon_rate(1, 100, 3)  # at the cap: back to one line per operator
    assert state.to_dial(1, "predictive", [ANNA, BORIS], 10, 0.0) == 2


@pytest.mark.parametrize(("steps", "holders"), [
    # (operator, debt, at) holds in order -> who holds debts 10, 11 at t=30
    ([(1, 10, 0.0)], {10: 1, 11: None}),
    ([(1, 10, 0.0), (1, 11, 5.0)], {10: None, 11: 1}),  # "next" lets go of the last one
    ([(1, 10, 0.0), (2, 11, 5.0)], {10: 1, 11: 2}),
    ([(1, 10, -40.0)], {10: None, 11: None}),  # held for 60 s only
])
def test_preview_holds(steps: list[tuple[int, int, float]], holders: dict[int, int | None]) -> None:
    state = DiallerState()
    for operator_id, debt_id, at in steps:
        state.hold_preview(1, debt_id, operator_id, at)
    assert {debt_id: state.previewer(1, debt_id, 30.0) for debt_id in holders} == holders
    assert state.held_debts(1, 30.0, but=1) == {d for d, op in holders.items() if op not in (None, 1)}
    assert state.previewer(2, 10, 30.0) is None  # per campaign


def test_preview_call_goes_only_to_the_operator_who_asked_for_it() -> None:
    state = DiallerState()
    call = LiveCall("p", 1, 10, "+73517654321", 0.0, preview_operator=BORIS.operator_id)
    state.placed(call)
    assert state.on_event(ev(CallEventKind.ANSWERED, "p"), [ANNA, BORIS], 1.0) == [Connect(call, BORIS)]
    busy = LiveCall("q", 1, 11, "+73517654322", 0.0, preview_operator=BORIS.operator_id)
    state.placed(busy)
    state.on_event(ev(CallEventKind.ANSWERED, "x", BORIS.interface), [], 1.0)  # Boris took another call
    assert state.on_event(ev(CallEventKind.ANSWERED, "q"), [ANNA, BORIS], 2.0) == [Abandon(busy)]


def test_an_adopted_call_keeps_its_operator_busy_until_it_ends() -> None:
    state = DiallerState()
    call = LiveCall("old", 1, 10, "+73517654321", 0.0, answered=0.0, operator=ANNA, connected=0.0)
    state.adopt(call)
    assert state.on_call(ANNA) and state.free([ANNA, BORIS], 1.0) == [BORIS]
    assert state.on_event(ev(CallEventKind.ENDED, "old", ANNA.interface, Outcome.ANSWERED), [ANNA], 50.0) == [
        Ended(call, "answered")]
    assert not state.on_call(ANNA)
