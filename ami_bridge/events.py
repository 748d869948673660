"""The call-event vocabulary: what the bridge tells the rest of callcard about calls.

Everything downstream of the bridge (call log, desk pops, live state) speaks only these
events, never raw AMI, so a second telephony source would only need a second tracker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallEvent:
        data = dict(data)
        data["kind"] = CallEventKind(data["kind"])
        if data.get("outcome") is not None:
            data["outcome"] = Outcome(data["outcome"])
        return cls(**data)
