"""Recorded Asterisk traffic -> QueueTracker -> LiveState: the wall shows what each recording's .md states.

No socket: the trace's messages are fed in order, with the clock set to the recorder's step
times (`t=` in the .md) as the replies to its actions go by.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ami_bridge.events import QueueEventKind
from ami_bridge.frames import AmiMessage, FrameParser
from ami_bridge.queue_tracker import QueueTracker
from routing.live import LiveState, OperatorRef, Thresholds

T0 = 1795394676.0  # the recordings' epoch (Uniqueid prefix)
GHOST = "Local/201@noanswer"
OP106 = "Local/106@agents"


class TraceClock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def step_times(md: str) -> dict[str, float]:
    """ActionID -> seconds after connect, from the `* t=2.820 [crm] Action: X (ActionID id)` lines."""
    return {aid: T0 + float(t) for t, aid in re.findall(r"^\* t=([\d.]+) \[crm\] Action: \w+ \(ActionID ([\w-]+)\)",
                                                         md, re.M)}


def replay(traces_dir: Path, name: str, checkpoints: dict[str, Any] | None = None,
           state: LiveState | None = None) -> tuple[LiveState, list[AmiMessage]]:
    """Feed a trace; `checkpoints[action_id](state, now)` runs when that action's reply arrives."""
    clock = TraceClock()
    times = step_times((traces_dir / f"{name}.md").read_text())
    tracker = QueueTracker(clock)
    state = state or LiveState()
    msgs = FrameParser().feed((traces_dir / f"{name}.ami").read_bytes())
    for msg in msgs:
        if msg.response and msg.action_id in times:
            clock.t = max(clock.t, times[msg.action_id])
            if checkpoints and msg.action_id in checkpoints:
                checkpoints[msg.action_id](state, clock.t)
        for event in tracker.feed(msg):
            state.apply(event)
    return state, msgs


def queue(figures: dict[str, Any], name: str) -> dict[str, Any]:
    return next(q for q in figures["queues"] if q["name"] == name)


def member(figures: dict[str, Any], queue_name: str, interface: str) -> dict[str, Any] | None:
    return next((m for m in queue(figures, queue_name)["members"] if m["interface"] == interface), None)


def agent(figures: dict[str, Any], interface: str) -> dict[str, Any]:
    return next(a for a in figures["agents"] if a["interface"] == interface)


def recorded_lists(traces_dir: Path) -> tuple[list[AmiMessage], list[AmiMessage]]:
    """The QueueStatus (002) and CoreShowChannels (005) items the recorder got while two callers waited."""
    msgs = FrameParser().feed((traces_dir / "queue_status.ami").read_bytes())
    queues = [m for m in msgs if m.action_id == "crm-queue_status-002" and m.event
              and m.get("EventList") != "Complete"]
    channels = [m for m in msgs if m.action_id == "crm-queue_status-005" and m.event == "CoreShowChannel"]
    return queues, channels


def test_queue_status_trace_wall_follows_every_step(traces_dir: Path) -> None:
    """Live events from the start; at 006 the recorded lists are applied as the bridge's login resync
    would be, so members that sent no event yet (104, 105) are on the wall too."""
    seen: list[str] = []
    queues, channels = recorded_lists(traces_dir)

    def resync(state: LiveState, now: float) -> None:
        for event in QueueTracker(lambda: now).resync(queues, channels):
            state.apply(event)
        assert queue(state.figures(now), "support")["agents"]["ringing"] == 1

    def two_waiting_while_member_rings(state: LiveState, now: float) -> None:
        f = state.figures(now)
        support = queue(f, "support")
        assert [w["linkedid"] for w in support["waiting"]] == ["1795394676.84", "1795394676.86"]
        assert [w["caller_num"] for w in support["waiting"]] == ["83512000001", "83512000002"]
        assert support["agents"]["ringing"] == 1 and support["agents"]["logged_in"] == 1
        assert agent(f, GHOST)["state"] == "ringing"
        seen.append("waiting")

    def paused_training(state: LiveState, now: float) -> None:
        assert member(state.figures(now), "support", GHOST)["reason"] == "training"  # type: ignore[index]
        assert member(state.figures(now), "support", GHOST)["paused"] is True  # type: ignore[index]
        seen.append("training")

    def unpaused(state: LiveState, now: float) -> None:
        m = member(state.figures(now), "support", GHOST)
        assert m is not None and m["paused"] is False and m["reason"] == ""
        seen.append("unpaused")

    def added_106(state: LiveState, now: float) -> None:
        f = state.figures(now)
        m = member(f, "collections", OP106)
        assert m == {"interface": OP106, "name": "Operator 106", "state": "available", "paused": False,
                     "reason": "", "penalty": 2}
        assert queue(f, "collections")["agents"]["available"] == 3
        seen.append("added")

    def paused_lunch(state: LiveState, now: float) -> None:
        f = state.figures(now)
        assert member(f, "collections", OP106)["state"] == "paused"  # type: ignore[index]
        assert queue(f, "collections")["paused_reasons"] == {"lunch": 1}
        assert agent(f, OP106)["state"] == "paused" and agent(f, OP106)["reason"] == "lunch"
        seen.append("lunch")

    def penalty_5(state: LiveState, now: float) -> None:
        assert member(state.figures(now), "collections", OP106)["penalty"] == 5  # type: ignore[index]
        seen.append("penalty")

    def removed(state: LiveState, now: float) -> None:
        f = state.figures(now)
        assert member(f, "collections", OP106) is None
        assert queue(f, "collections")["agents"]["logged_in"] == 2
        assert agent(f, OP106)["state"] == "offline"
        assert agent(f, OP106)["pause_today"] == 1  # paused at t=5.327, removed at t=6.331
        seen.append("removed")

    def both_abandoned(state: LiveState, now: float) -> None:
        f = state.figures(now)
        support = queue(f, "support")
        assert support["waiting"] == [] and support["longest_wait"] == 0
        assert (support["answered"], support["abandoned"]) == (0, 2)
        assert support["abandon_rate"] == 100.0
        assert support["service_level"] is None  # both gave up after 16 s, within T = 20 s: 0 / 0
        assert support["asa"] is None and support["aht"] is None
        assert agent(f, GHOST)["state"] == "available"  # rang out (AgentRingNoAnswer), Status 1
        seen.append("abandoned")

    replay(traces_dir, "queue_status", {
        "crm-queue_status-002": two_waiting_while_member_rings,
        "crm-queue_status-006": resync,
        "crm-queue_status-007": paused_training,
        "crm-queue_status-009": unpaused,
        "crm-queue_status-010": added_106,
        "crm-queue_status-011": paused_lunch,
        "crm-queue_status-012": penalty_5,
        "crm-queue_status-015": removed,
        "crm-queue_status-019": both_abandoned,
    })
    assert seen == ["waiting", "training", "unpaused", "added", "lunch", "penalty", "removed", "abandoned"]


def test_abandon_after_service_seconds_counts_against_service_level(traces_dir: Path) -> None:
    state, _ = replay(traces_dir, "queue_status", state=LiveState({"support": Thresholds(service_seconds=10)}))
    support = queue(state.figures(T0 + 20), "support")
    assert support["service_seconds"] == 10
    assert support["service_level"] == 0.0  # 0 answered in 10 s / (0 + 2 abandoned after 10 s)
    assert support["alerts"]["service_level"] == "alert"


def test_resync_from_the_recorded_lists_rebuilds_the_same_wall(traces_dir: Path) -> None:
    """QueueStatus (002) and CoreShowChannels (005) taken while two callers wait: a fresh wall built
    from them alone shows what the live events built."""
    live_figures: dict[str, Any] = {}

    def keep(state: LiveState, now: float) -> None:
        live_figures.update(state.figures(now))

    replay(traces_dir, "queue_status", {"crm-queue_status-006": keep})
    queues, channels = recorded_lists(traces_dir)
    rebuilt = LiveState()
    for event in QueueTracker(lambda: T0 + 2.822).resync(queues, channels):
        rebuilt.apply(event)
    after = rebuilt.figures(T0 + 2.822)
    for name in ("support",):  # sales and collections sent no live event before 006
        want, got = queue(live_figures, name), queue(after, name)
        assert [w["linkedid"] for w in got["waiting"]] == [w["linkedid"] for w in want["waiting"]]
        assert got["agents"] == want["agents"], name
        assert got["members"] == want["members"], name
    assert agent(after, GHOST)["state"] == "ringing"
    assert queue(after, "sales")["agents"]["available"] == 3
    assert queue(after, "collections")["agents"]["available"] == 2


def test_resync_kinds_are_flagged_snapshot(traces_dir: Path) -> None:
    msgs = FrameParser().feed((traces_dir / "queue_status.ami").read_bytes())
    queues = [m for m in msgs if m.action_id == "crm-queue_status-002" and m.event.startswith("Queue")
              and m.get("EventList") != "Complete"]
    events = QueueTracker(lambda: T0).resync(queues, [])
    assert events[0].kind is QueueEventKind.RESYNC
    assert {e.kind for e in events[1:]} == {QueueEventKind.QUEUE, QueueEventKind.MEMBER, QueueEventKind.CALLER_JOINED}
    assert all(e.snapshot for e in events[1:])


def test_answered_trace_counts_one_answered_call_for_operator_101(traces_dir: Path) -> None:
    state = LiveState()
    state.set_operators({"Local/101@agents": OperatorRef(7, "op101", "Operator One")})
    state, _ = replay(traces_dir, "inbound_answered", state=state)
    f = state.figures(T0)
    sales = queue(f, "sales")
    assert (sales["answered"], sales["abandoned"]) == (1, 0)
    assert sales["service_level"] == 100.0 and sales["asa"] == 0.0 and sales["aht"] == 4.0
    op = agent(f, "Local/101@agents")
    assert (op["name"], op["operator_id"], op["handled_today"], op["talk_today"]) == ("Operator One", 7, 1, 4)
    assert op["call"] is None and op["state"] == "available"


def test_abandoned_trace_counts_one_abandon_with_its_wait(traces_dir: Path) -> None:
    state, _ = replay(traces_dir, "inbound_abandoned")
    support = queue(state.figures(T0), "support")
    assert (support["answered"], support["abandoned"], support["abandon_rate"]) == (0, 1, 100.0)
    assert support["waiting"] == []
    assert support["alerts"]["abandon_rate"] == "alert"
