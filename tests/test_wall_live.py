"""LiveState's additions for issue 4, pure (no socket, no database): figures per queue per 15
minutes, thresholds swapped at run time, pause intervals out and back in, memberships as
Asterisk reports them; and the wall feed's split of a snapshot into queues and agents."""

from __future__ import annotations

from datetime import datetime

from agent_desk.wall_ws import requested_view, split_snapshot
from ami_bridge.events import QueueEvent
from ami_bridge.events import QueueEventKind as K
from routing.live import LiveState, MemberTruth, PauseChange, Thresholds
from routing.thresholds import problems

NOON = datetime(2026, 11, 26, 12, 0).timestamp()
A, B = "Local/101@agents", "Local/102@agents"


def synced_state(limits: dict[str, Thresholds] | None = None) -> LiveState:
    """Two queues after a resync: A in sales (penalty 2), B in support."""
    state = LiveState(limits)
    for event in (
        QueueEvent(K.RESYNC, NOON),
        QueueEvent(K.QUEUE, NOON, queue="sales", snapshot=True),
        QueueEvent(K.QUEUE, NOON, queue="support", snapshot=True),
        QueueEvent(K.MEMBER, NOON, queue="sales", interface=A, member_name="A", status=1, paused=False,
                   penalty=2, snapshot=True),
        QueueEvent(K.MEMBER, NOON, queue="support", interface=B, member_name="B", status=1, paused=False,
                   penalty=0, snapshot=True),
    ):
        state.apply(event)
    return state


def queue(figures: dict, name: str) -> dict:
    return next(q for q in figures["queues"] if q["name"] == name)


def test_intervals_are_kept_per_queue_and_summed_for_all() -> None:
    state = synced_state()
    state.apply(QueueEvent(K.AGENT_CONNECTED, NOON + 10, queue="sales", interface=A, linkedid="c1", holdtime=5))
    state.apply(QueueEvent(K.CALLER_ABANDONED, NOON + 20 * 60, queue="support", linkedid="c2", holdtime=40))
    f = state.figures(NOON + 30 * 60)
    sales, support = queue(f, "sales")["intervals"], queue(f, "support")["intervals"]
    assert [(i["start"], i["answered"], i["abandoned"]) for i in sales] == [(NOON, 1, 0)]
    assert [(i["start"], i["answered"], i["abandoned"]) for i in support] == [(NOON + 15 * 60, 0, 1)]
    assert [(i["answered"], i["abandoned"]) for i in f["intervals"]] == [(1, 0), (0, 1)]
    assert sales[0]["service_level"] == 100.0 and support[0]["service_level"] == 0.0


def test_a_new_threshold_recolours_the_next_figures() -> None:
    state = synced_state()
    state.apply(QueueEvent(K.CALLER_JOINED, NOON, queue="sales", linkedid="w1", holdtime=0))
    assert queue(state.figures(NOON + 20), "sales")["alerts"]["longest_wait"] == "ok"
    state.set_thresholds({"sales": Thresholds(longest_wait_warn=5, longest_wait_alert=10)})
    figures = queue(state.figures(NOON + 20), "sales")
    assert figures["alerts"]["longest_wait"] == "alert"
    assert figures["thresholds"]["longest_wait_alert"] == 10


def test_pause_intervals_go_out_and_a_restart_rebuilds_todays_pause_time() -> None:
    state = synced_state()
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 60, queue="sales", interface=A, paused=True, reason="lunch"))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 660, queue="sales", interface=A, paused=False))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 900, queue="sales", interface=A, paused=True, reason="training"))
    assert state.pause_changes == [PauseChange(A, NOON + 60, None, "lunch"), PauseChange(A, NOON + 60, NOON + 660),
                                   PauseChange(A, NOON + 900, None, "training")]

    restarted = LiveState()
    yesterday = NOON - 24 * 3600
    restarted.seed_pauses([PauseChange(A, yesterday, yesterday + 60), PauseChange(A, NOON + 60, NOON + 660),
                           PauseChange(A, NOON + 900, None, "training")], NOON + 1000)
    before_resync = restarted.figures(NOON + 1000)  # nothing is known yet: the open pause stays open
    assert restarted.pause_changes == [] and before_resync["agents"][0]["pause_today"] == 600 + 100
    for event in (QueueEvent(K.RESYNC, NOON + 1010),
                  QueueEvent(K.MEMBER, NOON + 1010, queue="sales", interface=A, status=1, paused=True,
                             reason="training", snapshot=True)):
        restarted.apply(event)
    agent = restarted.figures(NOON + 1200)["agents"][0]
    assert agent["pause_today"] == 600 + 300 and agent["state"] == "paused"
    assert restarted.pause_changes == []  # still the same open pause: nothing new to write


def test_memberships_are_what_asterisk_reports() -> None:
    state = synced_state()
    state.apply(QueueEvent(K.MEMBER_ADDED, NOON + 1, queue="support", interface=A, member_name="A", status=1,
                           paused=False, penalty=1))
    state.apply(QueueEvent(K.MEMBER_PAUSED, NOON + 2, queue="sales", interface=A, paused=True, reason="logged out"))
    state.apply(QueueEvent(K.MEMBER_REMOVED, NOON + 3, queue="support", interface=B))
    assert {interface: state.membership(interface) for interface in state.agent_interfaces()} == {
        A: (MemberTruth("sales", 2, True, "logged out"), MemberTruth("support", 1, False, "")),
        B: (),
    }


def test_snapshot_split_sends_agents_only_to_table_walls() -> None:
    state = synced_state()
    snapshot = {"type": "wall", **state.figures(NOON + 5)}
    big, detail = split_snapshot(snapshot)
    assert "agents" not in big and all("members" not in q for q in big["queues"])
    assert [q["name"] for q in big["queues"]] == ["sales", "support"] and big["at"] == NOON + 5
    assert detail == {"type": "wall_agents", "at": NOON + 5, "agents": snapshot["agents"]}
    assert "members" in snapshot["queues"][0]  # the kept snapshot itself is whole
    assert requested_view('{"view": "table"}') == "table"
    assert [requested_view(t) for t in ('{"view": "tabel"}', "table", "[1]", "{}")] == [None] * 4


def test_threshold_problems_name_what_is_inconsistent() -> None:
    assert problems(Thresholds()) == []
    assert problems(Thresholds(longest_wait_warn=60, longest_wait_alert=30, abandon_rate_warn=5,
                               abandon_rate_alert=120, service_seconds=0)) == [
        "thr.err.service_seconds", "thr.err.longest_wait", "thr.err.abandon_rate"]


def test_figures_built_in_steps_survive_events_between_the_steps() -> None:
    """The wall builds its snapshot in steps, letting the event loop run pops in between: an event
    applied mid-way must neither break the build nor be lost for the next snapshot."""
    state = synced_state()
    steps = state.figure_steps(NOON + 5, chunk=1)
    assert next(steps) is None  # a first step, then other work may run
    state.apply(QueueEvent(K.CALLER_JOINED, NOON + 5, queue="sales", linkedid="c1", caller_num="+79990000001"))
    *pauses, figures = list(steps)
    assert pauses and all(step is None for step in pauses)
    assert {a["interface"] for a in figures["agents"]} == {A, B}
    assert [w["linkedid"] for w in queue(state.figures(NOON + 6), "sales")["waiting"]] == ["c1"]


def test_queue_members_are_built_in_steps_too() -> None:
    """A queue of 1,000 members was one unyielding step; its rows now come a chunk per step, and a
    member leaving before the queue's turn is left out."""
    state = synced_state()
    state.apply(QueueEvent(K.MEMBER_ADDED, NOON + 1, queue="sales", interface=B, member_name="B", status=1))
    members = len(queue(state.figures(NOON + 5), "sales")["members"])
    assert members == 2
    steps = state.figure_steps(NOON + 5, chunk=1)
    next(steps)
    state.apply(QueueEvent(K.MEMBER_REMOVED, NOON + 5, queue="sales", interface=B))
    *pauses, figures = list(steps)
    assert len(pauses) + 1 >= 2 * len(state.agent_interfaces()) + members, "a step per agent and per member"
    assert [m["interface"] for m in queue(figures, "sales")["members"]] == [A]
