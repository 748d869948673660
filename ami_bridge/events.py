"""The call-event vocabulary: what the bridge tells the rest of callcard about calls.

Everything downstream of the bridge (call log, desk pops, live state) speaks only these
events, never raw AMI, so a second telephony source would only need a second tracker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class CallEventKind(StrEnum):
    OFFERED = "offered"  # caller joined a queue (or reached us without one)
    RINGING = "ringing"  # an agent's phone rings: pop the card now
    RING_STOPPED = "ring_stopped"  # that agent did not (or no longer may) answer
    ANSWERED = "answered"  # an agent took the call
    ABANDONED = "abandoned"  # caller hung up while waiting in a queue
    TRANSFERRED = "transferred"  # the caller moved to another queue (carries the new one); the call goes on
    ENDED = "ended"  # every channel of the call is gone; carries the outcome


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"  # hung up while queued
    MISSED = "missed"  # reached us, nobody answered, caller did not abandon a queue
    BUSY = "busy"
    FAILED = "failed"


@dataclass(frozen=True)
class CallEvent:
    """One moment in a call's life, keyed by Asterisk's Linkedid (stable across all legs)."""

    kind: CallEventKind
    linkedid: str
    at: float  # epoch seconds when the bridge saw it
    direction: str = "inbound"
    caller_num: str = ""  # raw caller ID number, attacker-controlled text
    caller_name: str = ""  # raw caller ID name, attacker-controlled text
    did: str = ""  # number or extension dialled, when known
    queue: str = ""
    interface: str = ""  # agent device, normalised (`Local/101@agents`, `PJSIP/101`)
    member_name: str = ""
    wait_seconds: int | None = None
    talk_seconds: int | None = None
    outcome: Outcome | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # by hand: `dataclasses.asdict` deep-copies and was ~2 % of the event loop per event
        return {
            "kind": self.kind,
            "linkedid": self.linkedid,
            "at": self.at,
            "direction": self.direction,
            "caller_num": self.caller_num,
            "caller_name": self.caller_name,
            "did": self.did,
            "queue": self.queue,
            "interface": self.interface,
            "member_name": self.member_name,
            "wait_seconds": self.wait_seconds,
            "talk_seconds": self.talk_seconds,
            "outcome": self.outcome,
            "variables": dict(self.variables),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallEvent:
        data = dict(data)
        data["kind"] = CallEventKind(data["kind"])
        if data.get("outcome") is not None:
            data["outcome"] = Outcome(data["outcome"])
        return cls(**data)


class QueueEventKind(StrEnum):
    """Queue and agent moments; `RESYNC` and the kinds flagged `snapshot` rebuild state after a login."""

    RESYNC = "resync"  # a fresh snapshot follows: forget every live caller, ring, call and member
    QUEUE = "queue"  # snapshot: a queue exists, with its service-level seconds (QueueParams)
    MEMBER = "member"  # snapshot: a member as QueueStatus lists it
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    MEMBER_STATUS = "member_status"  # the member's device state changed
    MEMBER_PAUSED = "member_paused"  # paused or unpaused (see `paused`, `reason`)
    MEMBER_PENALTY = "member_penalty"
    CALLER_JOINED = "caller_joined"  # live, or snapshot of a caller still waiting (holdtime = waited so far)
    CALLER_LEFT = "caller_left"  # no longer waiting: answered, abandoned or transferred
    CALLER_ABANDONED = "caller_abandoned"  # hung up while waiting (holdtime)
    AGENT_RINGING = "agent_ringing"
    AGENT_RING_NO_ANSWER = "agent_ring_no_answer"  # ringtime in seconds
    AGENT_CONNECTED = "agent_connected"  # live (holdtime) or snapshot of a call in progress
    AGENT_COMPLETED = "agent_completed"  # talktime, end_reason caller|agent|transfer


@dataclass(frozen=True)
class QueueEvent:
    """One queue/agent moment, published on the `queues` topic; interfaces are normalised (no `/n`)."""

    kind: QueueEventKind
    at: float  # epoch seconds when the bridge saw it
    queue: str = ""
    interface: str = ""
    member_name: str = ""
    status: int | None = None  # Asterisk device state: 1 not in use, 2 in use, 5 unavailable, 6 ringing...
    paused: bool | None = None
    reason: str = ""  # pause reason
    penalty: int | None = None
    linkedid: str = ""
    caller_num: str = ""  # attacker-controlled text
    caller_name: str = ""  # attacker-controlled text
    position: int | None = None
    holdtime: int | None = None  # seconds
    talktime: int | None = None  # seconds
    ringtime: float | None = None  # seconds (AMI says milliseconds)
    end_reason: str = ""
    service_level: int | None = None  # QUEUE: the queue's ServiceLevel seconds
    snapshot: bool = False  # rebuilt from a list after login: never counted in today's figures

    def to_dict(self) -> dict[str, Any]:
        # by hand: `dataclasses.asdict` deep-copies and was ~2 % of the event loop per event
        return {
            "kind": self.kind,
            "at": self.at,
            "queue": self.queue,
            "interface": self.interface,
            "member_name": self.member_name,
            "status": self.status,
            "paused": self.paused,
            "reason": self.reason,
            "penalty": self.penalty,
            "linkedid": self.linkedid,
            "caller_num": self.caller_num,
            "caller_name": self.caller_name,
            "position": self.position,
            "holdtime": self.holdtime,
            "talktime": self.talktime,
            "ringtime": self.ringtime,
            "end_reason": self.end_reason,
            "service_level": self.service_level,
            "snapshot": self.snapshot,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueueEvent:
        data = dict(data)
        data["kind"] = QueueEventKind(data["kind"])
        return cls(**data)
