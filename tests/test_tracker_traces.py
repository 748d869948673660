"""CallTracker: replay every real recording (no socket) and a few synthetic edge cases."""

from __future__ import annotations

from pathlib import Path

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import AmiMessage, FrameParser
from ami_bridge.tracker import CallTracker, device_of, normalize_interface

K = CallEventKind


def replay(data: bytes, tracker: CallTracker | None = None) -> list[CallEvent]:
    tracker = tracker or CallTracker(clock=lambda: 1000.0)
    return [event for msg in FrameParser().feed(data) for event in tracker.feed(msg)]


def kinds(events: list[CallEvent]) -> list[tuple[str, str]]:
    return [(e.kind.value, e.linkedid) for e in events]


def ended(events: list[CallEvent]) -> list[CallEvent]:
    return [e for e in events if e.kind is K.ENDED]


def test_inbound_answered_is_one_answered_call(traces_dir: Path) -> None:
    events = replay((traces_dir / "inbound_answered.ami").read_bytes())
    call = "1795394611.0"
    assert kinds(events) == [("offered", call), ("ringing", call), ("answered", call), ("ended", call)]
    offered, ringing, answered, end = events
    assert (offered.caller_num, offered.caller_name, offered.queue) == (
        "+73511234567",
        "Ivan Petrov",
        "sales",
    )
    assert offered.direction == "inbound"
    assert offered.variables == {"CRM_CALL_ID": "ans-0001", "QUEUE": "sales", "IVR": ""}
    assert (ringing.interface, ringing.member_name) == ("Local/101@agents", "Operator 101")
    assert (answered.interface, answered.wait_seconds) == ("Local/101@agents", 0)
    assert end.outcome is Outcome.ANSWERED
    assert (end.wait_seconds, end.talk_seconds, end.interface, end.member_name) == (
        0,
        4,
        "Local/101@agents",
        "Operator 101",
    )
    assert end.caller_num == "+73511234567" and end.queue == "sales"


def test_abandoned_call_stops_the_ring_once_and_keeps_wait_time(traces_dir: Path) -> None:
    events = replay((traces_dir / "inbound_abandoned.ami").read_bytes())
    call = "1795394619.4"
    assert kinds(events) == [
        ("offered", call),
        ("ringing", call),
        ("ring_stopped", call),
        ("abandoned", call),
        ("ended", call),
    ]
    offered, ringing, stopped, abandoned, end = events
    assert (offered.caller_num, offered.queue) == ("83517654321", "support")
    assert ringing.interface == stopped.interface == "Local/201@noanswer"
    assert stopped.member_name == "Support Ghost 201"
    assert abandoned.wait_seconds == 5
    assert (end.outcome, end.wait_seconds, end.talk_seconds) == (Outcome.ABANDONED, 5, None)


def test_queue_status_two_callers_both_abandoned_after_16s(traces_dir: Path) -> None:
    events = replay((traces_dir / "queue_status.ami").read_bytes())
    ends = ended(events)
    assert [(e.linkedid, e.queue, e.outcome, e.wait_seconds) for e in ends] == [
        ("1795394676.84", "support", Outcome.ABANDONED, 16),
        ("1795394676.86", "support", Outcome.ABANDONED, 16),
    ]
    assert [e.caller_num for e in ends] == ["83512000001", "83512000002"]
    stops = [e for e in events if e.kind is K.RING_STOPPED]
    assert [(e.linkedid, e.interface) for e in stops] == [("1795394676.84", "Local/201@noanswer")]
    assert [e.linkedid for e in events if e.kind is K.RINGING] == ["1795394676.84"]


def test_ivr_call_lands_in_collections_and_is_answered(traces_dir: Path) -> None:
    events = replay((traces_dir / "ivr_fastagi.ami").read_bytes())
    call = "1795394630.8"
    assert kinds(events) == [("offered", call), ("ringing", call), ("answered", call), ("ended", call)]
    offered, end = events[0], events[-1]
    assert offered.queue == "collections"
    assert offered.variables["CRM_CALL_ID"] == "ivr-0001-routed"  # set by the AGI script
    assert (end.outcome, end.interface, end.member_name) == (
        Outcome.ANSWERED,
        "Local/104@agents",
        "Operator 104",
    )
    assert (end.wait_seconds, end.talk_seconds) == (0, 7)


def test_a_call_ending_in_the_ivr_keeps_the_caller_id_the_dialplan_set(traces_dir: Path) -> None:
    """The real IVR call up to its queue join, then the caller hangs up instead (a callback chosen,
    a hang-up mid-menu): its Newchannel said <unknown>, NewCallerid gave the number."""
    messages = list(FrameParser().feed((traces_dir / "ivr_fastagi.ami").read_bytes()))
    before_queue = messages[:next(i for i, m in enumerate(messages) if m.event == "QueueCallerJoin")]
    assert {m.get("CallerIDNum") for m in before_queue if m.event == "Newchannel"} == {"<unknown>"}
    tracker = CallTracker(clock=lambda: 1000.0)
    events = [e for m in before_queue for e in tracker.feed(m)]
    call = "1795394630.8"
    hangups = [chan("Hangup", "1795394630.9", call, "Local/s@inbound-00000004;2", num="+73511234567"),
               chan("Hangup", call, call, "Local/s@inbound-00000004;1", num="+73511234567")]
    events += feed_all(tracker, hangups)
    assert kinds(events) == [("offered", call), ("ended", call)]
    assert (events[-1].caller_num, events[-1].outcome, events[-1].queue) == ("+73511234567", Outcome.MISSED, "")


def test_login_failure_trace_has_no_calls(traces_dir: Path) -> None:
    tracker = CallTracker()
    assert replay((traces_dir / "login_failure.ami").read_bytes(), tracker) == []
    assert tracker.active_calls == []


def test_every_trace_ends_every_call_it_offers(traces_dir: Path) -> None:
    for path in sorted(traces_dir.glob("*.ami")):
        tracker = CallTracker()
        events = replay(path.read_bytes(), tracker)
        offered = [e.linkedid for e in events if e.kind is K.OFFERED]
        assert sorted(set(offered)) == sorted(e.linkedid for e in ended(events)), path.name
        assert tracker.active_calls == [], path.name


def test_script_caller_name_passes_through_as_data(traces_dir: Path) -> None:
    data = (traces_dir / "inbound_answered.ami").read_bytes().replace(b"Ivan Petrov", b"<script>x()</script>")
    events = replay(data)
    assert {e.caller_name for e in events} == {"<script>x()</script>"}


def test_resync_adopts_live_calls_after_a_restart(traces_dir: Path) -> None:
    """A tracker started mid-call learns the calls from CoreShowChannels and still ends them."""
    msgs = FrameParser().feed((traces_dir / "queue_status.ami").read_bytes())
    listing = [m for m in msgs if m.event == "CoreShowChannel"]
    after = msgs[[m.event for m in msgs].index("CoreShowChannelsComplete") + 1 :]
    tracker = CallTracker(clock=lambda: 1000.0)
    adopted = tracker.resync(listing)
    assert kinds(adopted) == [("offered", "1795394676.86"), ("offered", "1795394676.84")]
    assert adopted[0].caller_num == "83512000002"
    events = [e for m in after for e in tracker.feed(m)]
    assert [(e.linkedid, e.outcome, e.wait_seconds) for e in ended(events)] == [
        ("1795394676.84", Outcome.ABANDONED, 16),
        ("1795394676.86", Outcome.ABANDONED, 16),
    ]
    assert tracker.active_calls == []


def test_resync_ends_ghost_calls_with_what_was_known(traces_dir: Path) -> None:
    msgs = FrameParser().feed((traces_dir / "inbound_answered.ami").read_bytes())
    upto = [m.event for m in msgs].index("BridgeEnter")  # answered, talking, then the link drops
    tracker = CallTracker(clock=lambda: 1000.0)
    before = [e for m in msgs[:upto] for e in tracker.feed(m)]
    assert [e.kind for e in before] == [K.OFFERED, K.RINGING, K.ANSWERED]
    events = tracker.resync([])
    assert [(e.kind, e.outcome) for e in events] == [(K.ENDED, Outcome.ANSWERED)]
    assert tracker.active_calls == []
    assert [e for m in msgs[upto:] for e in tracker.feed(m)] == []  # late Hangups make no ghosts


def test_resync_stops_a_ring_before_ending_the_ghost(traces_dir: Path) -> None:
    msgs = FrameParser().feed((traces_dir / "inbound_abandoned.ami").read_bytes())
    upto = [m.event for m in msgs].index("DialState")
    tracker = CallTracker(clock=lambda: 1000.0)
    for m in msgs[:upto]:
        tracker.feed(m)
    events = tracker.resync([AmiMessage.of(Event="CoreShowChannel", Uniqueid="9.9", Linkedid="9.9")])
    assert [(e.kind, e.linkedid, e.outcome) for e in events] == [
        (K.RING_STOPPED, "1795394619.4", None),
        (K.ENDED, "1795394619.4", Outcome.ABANDONED),  # gone from the queue while we were away
        (K.OFFERED, "9.9", None),
    ]


# --- synthetic: direct dials, outbound originates, transfers --------------------------------


def chan(event: str, uniqueid: str, linkedid: str, channel: str, **extra: str) -> AmiMessage:
    return AmiMessage.of(
        Event=event,
        Channel=channel,
        Uniqueid=uniqueid,
        Linkedid=linkedid,
        CallerIDNum=extra.pop("num", "+73510000001"),
        CallerIDName=extra.pop("name", "Anna"),
        **extra,
    )


def direct_dial(status: str) -> list[AmiMessage]:
    return [
        chan("Newchannel", "5.1", "5.1", "PJSIP/trunk-00000001", Exten="3512000000"),
        chan("Newchannel", "5.2", "5.1", "PJSIP/101-00000002"),
        chan("DialBegin", "5.1", "5.1", "PJSIP/trunk-00000001", DestChannel="PJSIP/101-00000002"),
        chan(
            "DialEnd",
            "5.1",
            "5.1",
            "PJSIP/trunk-00000001",
            DestChannel="PJSIP/101-00000002",
            DialStatus=status,
        ),
        chan("Hangup", "5.2", "5.1", "PJSIP/101-00000002"),
        chan("Hangup", "5.1", "5.1", "PJSIP/trunk-00000001"),
    ]


def feed_all(tracker: CallTracker, msgs: list[AmiMessage]) -> list[CallEvent]:
    return [e for m in msgs for e in tracker.feed(m)]


def test_direct_dial_busy_ends_busy_without_a_queue() -> None:
    events = feed_all(CallTracker(clock=lambda: 1000.0), direct_dial("BUSY"))
    assert [e.kind for e in events] == [K.OFFERED, K.RINGING, K.RING_STOPPED, K.ENDED]
    assert events[0].did == "3512000000" and events[0].caller_num == "+73510000001"
    assert events[1].interface == "PJSIP/101"
    assert (events[-1].outcome, events[-1].queue) == (Outcome.BUSY, "")


def test_direct_dial_congestion_and_unavailable_end_failed() -> None:
    for status in ("CONGESTION", "CHANUNAVAIL"):
        events = feed_all(CallTracker(), direct_dial(status))
        assert events[-1].outcome is Outcome.FAILED


def test_direct_dial_answered_gets_talk_time_from_the_clock() -> None:
    now = [1000.0]
    tracker = CallTracker(clock=lambda: now[0])
    msgs = direct_dial("ANSWER")
    events = feed_all(tracker, msgs[:3])
    now[0] = 1003.0
    events += feed_all(tracker, msgs[3:4])
    now[0] = 1045.0
    events += feed_all(tracker, msgs[4:])
    assert [e.kind for e in events] == [K.OFFERED, K.RINGING, K.ANSWERED, K.ENDED]
    end = events[-1]
    assert (end.outcome, end.interface, end.wait_seconds, end.talk_seconds) == (
        Outcome.ANSWERED,
        "PJSIP/101",
        3,
        42,
    )


def test_unanswered_direct_dial_is_missed() -> None:
    assert feed_all(CallTracker(), direct_dial("NOANSWER"))[-1].outcome is Outcome.MISSED


def test_failed_outbound_originate_without_channels_ends_busy() -> None:
    tracker = CallTracker()
    tracker.expect_outbound("orig-1", "out-1")
    events = tracker.feed(
        AmiMessage.of(
            Event="OriginateResponse",
            ActionID="orig-1",
            Response="Failure",
            Channel="Local/89991234565@outbound",
            Reason="5",
            Uniqueid="<unknown>",
            CallerIDNum="<unknown>",
            CallerIDName="<unknown>",
        )
    )
    assert [(e.kind, e.linkedid, e.direction, e.outcome) for e in events] == [
        (K.OFFERED, "out-1", "outbound", None),
        (K.ENDED, "out-1", "outbound", Outcome.BUSY),
    ]
    assert tracker.active_calls == []


def test_outbound_call_waits_for_originate_response_whatever_the_order() -> None:
    tracker = CallTracker()
    tracker.expect_outbound("orig-2", "out-2")
    legs = [
        chan("Newchannel", "out-2", "out-2", "Local/89991234568@outbound-0000000a;1", Exten="89991234568"),
        chan("Newchannel", "6.2", "out-2", "Local/89991234568@outbound-0000000a;2"),
        chan("Hangup", "6.2", "out-2", "Local/89991234568@outbound-0000000a;2"),
        chan("Hangup", "out-2", "out-2", "Local/89991234568@outbound-0000000a;1"),
    ]
    events = feed_all(tracker, legs)
    assert [(e.kind, e.direction, e.did) for e in events] == [(K.OFFERED, "outbound", "89991234568")]
    events = tracker.feed(
        AmiMessage.of(
            Event="OriginateResponse", ActionID="orig-2", Response="Failure", Reason="8", Uniqueid="out-2"
        )
    )
    assert [(e.kind, e.outcome) for e in events] == [(K.ENDED, Outcome.FAILED)]


def test_answered_outbound_call_then_agent_leg() -> None:
    tracker = CallTracker()
    tracker.expect_outbound("orig-3", "out-3")
    events = feed_all(
        tracker,
        [
            chan(
                "Newchannel", "out-3", "out-3", "Local/89991234561@outbound-0000000b;1", Exten="89991234561"
            ),
            AmiMessage.of(
                Event="OriginateResponse", ActionID="orig-3", Response="Success", Reason="4", Uniqueid="out-3"
            ),
            chan(
                "DialBegin",
                "out-3",
                "out-3",
                "Local/89991234561@outbound-0000000b;1",
                DestChannel="Local/101@agents-0000000c;1",
            ),
            chan(
                "DialEnd",
                "out-3",
                "out-3",
                "Local/89991234561@outbound-0000000b;1",
                DestChannel="Local/101@agents-0000000c;1",
                DialStatus="ANSWER",
            ),
            chan("Hangup", "out-3", "out-3", "Local/89991234561@outbound-0000000b;1"),
        ],
    )
    # the debtor's answer, then the operator's: the second ANSWERED names who took the call
    assert [e.kind for e in events] == [K.OFFERED, K.ANSWERED, K.RINGING, K.ANSWERED, K.ENDED]
    assert (events[1].interface, events[2].interface, events[3].interface) == ("", "Local/101@agents",
                                                                               "Local/101@agents")
    assert (events[-1].outcome, events[-1].direction, events[-1].interface) == (
        Outcome.ANSWERED,
        "outbound",
        "Local/101@agents",
    )


def test_channels_stay_with_their_call_when_linkedid_changes() -> None:
    tracker = CallTracker()
    events = feed_all(
        tracker,
        [
            chan("Newchannel", "7.1", "7.1", "PJSIP/trunk-1"),
            chan("QueueCallerJoin", "7.1", "7.1", "PJSIP/trunk-1", Queue="sales"),
            chan("Newchannel", "8.1", "8.1", "PJSIP/102-1"),
            chan("BridgeEnter", "7.1", "8.1", "PJSIP/trunk-1"),  # attended transfer: Linkedid moves
            chan("Hangup", "8.1", "8.1", "PJSIP/102-1"),
        ],
    )
    assert [(e.kind, e.linkedid) for e in events] == [
        (K.OFFERED, "7.1"),
        (K.OFFERED, "8.1"),
        (K.ENDED, "8.1"),
    ]
    events = tracker.feed(chan("Hangup", "7.1", "8.1", "PJSIP/trunk-1"))
    assert [(e.kind, e.linkedid, e.queue) for e in events] == [(K.ENDED, "7.1", "sales")]
    assert tracker.active_calls == []


def test_events_after_hangup_do_not_resurrect_a_call(traces_dir: Path) -> None:
    tracker = CallTracker()
    replay((traces_dir / "inbound_answered.ami").read_bytes(), tracker)
    late = chan("Newstate", "1795394611.1", "1795394611.0", "Local/s@inbound-00000000;2")
    assert tracker.feed(late) == [] and tracker.active_calls == []


def test_interface_normalisation() -> None:
    assert normalize_interface("Local/101@agents/n") == "Local/101@agents"
    assert normalize_interface("Local/101@agents") == "Local/101@agents"
    assert normalize_interface("PJSIP/101") == "PJSIP/101"
    assert device_of("Local/101@agents-00000001;1") == "Local/101@agents"
    assert device_of("PJSIP/101-0000000a") == "PJSIP/101"


def test_a_busy_queue_member_does_not_make_the_call_busy() -> None:
    events = feed_all(
        CallTracker(),
        [
            chan("Newchannel", "9.1", "9.1", "PJSIP/trunk-2"),
            chan("QueueCallerJoin", "9.1", "9.1", "PJSIP/trunk-2", Queue="sales"),
            chan(
                "AgentCalled",
                "9.1",
                "9.1",
                "PJSIP/trunk-2",
                DestChannel="PJSIP/101-3",
                Interface="PJSIP/101",
                MemberName="Operator 101",
                Queue="sales",
            ),
            chan("DialEnd", "9.1", "9.1", "PJSIP/trunk-2", DestChannel="PJSIP/101-3", DialStatus="BUSY"),
            chan("Hangup", "9.1", "9.1", "PJSIP/trunk-2"),  # queue timed out, caller did not abandon
        ],
    )
    assert [e.kind for e in events] == [K.OFFERED, K.RINGING, K.RING_STOPPED, K.ENDED]
    assert events[-1].outcome is Outcome.MISSED
