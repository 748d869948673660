"""QueueTracker: a pure translation from app_queue's AMI events to QueueEvents.

It keeps almost no state: every queue event names its queue, member and Linkedid, so the
wall (routing.live) holds the picture. After a login `resync` turns the QueueStatus and
CoreShowChannels lists into a snapshot that replaces whatever was live before, which is how
callers or rings missed while the connection was down stop haunting the wall.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from ami_bridge.events import QueueEvent, QueueEventKind
from ami_bridge.frames import AmiMessage
from ami_bridge.tracker import device_of, normalize_interface

UNKNOWN = "<unknown>"

_MEMBER_KINDS = {
    "queuememberstatus": QueueEventKind.MEMBER_STATUS,
    "queuememberpause": QueueEventKind.MEMBER_PAUSED,
    "queuememberadded": QueueEventKind.MEMBER_ADDED,
    "queuememberremoved": QueueEventKind.MEMBER_REMOVED,
    "queuememberpenalty": QueueEventKind.MEMBER_PENALTY,
}
# Every event the queue tracker reads, as Asterisk spells them (see tracker.CALL_EVENTS).
QUEUE_EVENTS = frozenset({
    "QueueMemberStatus", "QueueMemberPause", "QueueMemberAdded", "QueueMemberRemoved", "QueueMemberPenalty",
    "QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentRingNoAnswer", "AgentConnect",
    "AgentComplete",
})


def _int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _text(value: str) -> str:
    return "" if value == UNKNOWN else value


class QueueTracker:
    """Feed every AMI event; get the QueueEvents it means (most events mean none)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._redirecting: set[str] = set()  # Linkedids we Redirect out of a queue: no abandon
        self._handlers: dict[str, Callable[[AmiMessage], list[QueueEvent]]] = {
            **{name: self._on_member for name in _MEMBER_KINDS},
            "queuecallerjoin": self._on_join,
            "queuecallerleave": self._on_leave,
            "queuecallerabandon": self._on_abandon,
            "agentcalled": self._on_agent_called,
            "agentringnoanswer": self._on_ring_no_answer,
            "agentconnect": self._on_agent_connect,
            "agentcomplete": self._on_agent_complete,
        }

    def expect_redirect(self, linkedid: str) -> None:
        """The caller is being moved to another queue: its QueueCallerAbandon is not an abandon."""
        self._redirecting.add(linkedid)

    def cancel_redirect(self, linkedid: str) -> None:
        self._redirecting.discard(linkedid)

    def feed(self, msg: AmiMessage) -> list[QueueEvent]:
        handler = self._handlers.get(msg.event.lower())
        if handler is None or msg.action_id:  # list items answer an action: they are not news
            return []
        return handler(msg)

    def resync(self, queues: list[AmiMessage], channels: list[AmiMessage]) -> list[QueueEvent]:
        """A snapshot from QueueStatus items (QueueParams/QueueMember/QueueEntry) and CoreShowChannels."""
        at = self._clock()
        linkedid_of = {ch.get("Uniqueid"): ch.get("Linkedid") for ch in channels}
        events = [QueueEvent(QueueEventKind.RESYNC, at)]
        members: set[str] = set()
        for item in queues:
            name = item.event.lower()
            if name == "queueparams":
                events.append(QueueEvent(QueueEventKind.QUEUE, at, queue=item.get("Queue"),
                                         service_level=_int(item.get("ServiceLevel")), snapshot=True))
            elif name == "queuemember":
                interface = normalize_interface(item.get("Location") or item.get("Interface"))
                members.add(interface)
                events.append(self._member(QueueEventKind.MEMBER, item, at, interface,
                                           item.get("Name") or item.get("MemberName"), snapshot=True))
        for item in queues:
            if item.event.lower() == "queueentry":
                uniqueid = item.get("Uniqueid")
                events.append(QueueEvent(
                    QueueEventKind.CALLER_JOINED, at, queue=item.get("Queue"),
                    linkedid=_text(item.get("Linkedid")) or linkedid_of.get(uniqueid) or uniqueid,
                    caller_num=_text(item.get("CallerIDNum")), caller_name=_text(item.get("CallerIDName")),
                    position=_int(item.get("Position")), holdtime=_int(item.get("Wait")), snapshot=True))
        return events + _agent_calls(channels, members, at)

    # --- live events ---------------------------------------------------------------------

    @staticmethod
    def _member(kind: QueueEventKind, msg: AmiMessage, at: float, interface: str, name: str,
                snapshot: bool = False) -> QueueEvent:
        return QueueEvent(
            kind, at, queue=msg.get("Queue"), interface=interface, member_name=name,
            status=_int(msg.get("Status")), paused=msg.get("Paused") == "1",
            reason=msg.get("PausedReason"), penalty=_int(msg.get("Penalty")), snapshot=snapshot,
        )

    def _on_member(self, msg: AmiMessage) -> list[QueueEvent]:
        kind = _MEMBER_KINDS[msg.event.lower()]
        interface = normalize_interface(msg.get("Interface"))
        return [self._member(kind, msg, self._clock(), interface, msg.get("MemberName"))]

    def _caller(self, kind: QueueEventKind, msg: AmiMessage, **fields: object) -> QueueEvent:
        return QueueEvent(
            kind, self._clock(), queue=msg.get("Queue"), linkedid=msg.get("Linkedid"),
            caller_num=_text(msg.get("CallerIDNum")), caller_name=_text(msg.get("CallerIDName")),
            **fields,  # type: ignore[arg-type]
        )

    def _agent(self, kind: QueueEventKind, msg: AmiMessage, **fields: object) -> QueueEvent:
        return self._caller(kind, msg, interface=normalize_interface(msg.get("Interface")),
                            member_name=msg.get("MemberName"), **fields)

    def _on_join(self, msg: AmiMessage) -> list[QueueEvent]:
        self._redirecting.discard(msg.get("Linkedid"))
        return [self._caller(QueueEventKind.CALLER_JOINED, msg, position=_int(msg.get("Position")), holdtime=0)]

    def _on_leave(self, msg: AmiMessage) -> list[QueueEvent]:
        return [self._caller(QueueEventKind.CALLER_LEFT, msg, position=_int(msg.get("Position")))]

    def _on_abandon(self, msg: AmiMessage) -> list[QueueEvent]:
        if msg.get("Linkedid") in self._redirecting:
            return []
        return [self._caller(QueueEventKind.CALLER_ABANDONED, msg, holdtime=_int(msg.get("HoldTime")))]

    def _on_agent_called(self, msg: AmiMessage) -> list[QueueEvent]:
        return [self._agent(QueueEventKind.AGENT_RINGING, msg)]

    def _on_ring_no_answer(self, msg: AmiMessage) -> list[QueueEvent]:
        ms = _int(msg.get("RingTime"))
        return [self._agent(QueueEventKind.AGENT_RING_NO_ANSWER, msg, ringtime=None if ms is None else ms / 1000)]

    def _on_agent_connect(self, msg: AmiMessage) -> list[QueueEvent]:
        return [self._agent(QueueEventKind.AGENT_CONNECTED, msg, holdtime=_int(msg.get("HoldTime")))]

    def _on_agent_complete(self, msg: AmiMessage) -> list[QueueEvent]:
        return [self._agent(QueueEventKind.AGENT_COMPLETED, msg, holdtime=_int(msg.get("HoldTime")),
                            talktime=_int(msg.get("TalkTime")), end_reason=msg.get("Reason"))]


def _agent_calls(channels: list[AmiMessage], members: set[str], at: float) -> list[QueueEvent]:
    """Members whose device has a channel up: bridged legs are calls in progress, others ring."""
    by_call: dict[str, list[AmiMessage]] = defaultdict(list)
    for ch in channels:
        by_call[ch.get("Linkedid") or ch.get("Uniqueid")].append(ch)
    events: list[QueueEvent] = []
    for linkedid, legs in by_call.items():
        queue = next((ch.get("ApplicationData").split(",")[0] for ch in legs if ch.get("Application") == "Queue"), "")
        agents: dict[str, bool] = {}
        for ch in legs:
            device = device_of(ch.get("Channel"))
            if device in members:
                agents[device] = agents.get(device, False) or bool(ch.get("BridgeId"))
        first = next((ch for ch in legs if ch.get("Uniqueid") == linkedid), None)
        for device, bridged in agents.items():
            caller = first if first is not None and device_of(first.get("Channel")) != device else None
            leg = next(ch for ch in legs if device_of(ch.get("Channel")) == device)
            events.append(QueueEvent(
                QueueEventKind.AGENT_CONNECTED if bridged else QueueEventKind.AGENT_RINGING, at,
                queue=queue, interface=device, linkedid=linkedid,
                caller_num=_text(caller.get("CallerIDNum") if caller else leg.get("ConnectedLineNum")),
                caller_name=_text(caller.get("CallerIDName") if caller else leg.get("ConnectedLineName")),
                snapshot=True,
            ))
    return events
