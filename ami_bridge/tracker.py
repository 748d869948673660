"""CallTracker: a pure state machine from AMI messages to CallEvents.

Channels are tracked by Uniqueid and grouped into calls by the Linkedid they had when
first seen; a later Linkedid change (transfer, bridge merge) does not move a channel,
so every call ends exactly once, when its own legs are all gone. It never awaits and
never does I/O, so a recorded trace replays through it in one line.
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from ami_bridge.frames import AmiMessage

log = logging.getLogger(__name__)

UNKNOWN = "<unknown>"
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]+(;\d+)?$")
# OriginateResponse Reason codes (Asterisk's AST_CONTROL_*): 5 busy, 8 congestion, 0 unreachable.
_ORIGINATE_REASON_OUTCOME = {"5": Outcome.BUSY, "8": Outcome.FAILED, "0": Outcome.FAILED}
_DIAL_STATUS_OUTCOME = {"BUSY": Outcome.BUSY, "CONGESTION": Outcome.FAILED, "CHANUNAVAIL": Outcome.FAILED}
# Events that may introduce a live channel the tracker has not seen yet (started mid-call).
_ADOPTING_EVENTS = {"newchannel", "newstate", "queuecallerjoin", "dialbegin", "bridgeenter", "newcallerid"}
_RECENTLY_GONE_MAX = 10_000
# Every event the tracker reads, as Asterisk spells them: the bridge asks Asterisk for these alone
# (with those of the queue tracker), so a handler added below is added here too (a test checks).
CALL_EVENTS = frozenset({
    "Newchannel", "Newstate", "NewCallerid", "BridgeEnter", "QueueCallerJoin", "AgentCalled", "AgentRingNoAnswer",
    "AgentConnect", "AgentComplete", "QueueCallerAbandon", "DialBegin", "DialEnd", "Hangup", "OriginateResponse",
    "AttendedTransfer",
})


def normalize_interface(interface: str) -> str:
    """`Local/101@agents/n` -> `Local/101@agents`: the `/n` option is not part of the device."""
    if interface.startswith("Local/") and interface.count("/") > 1:
        return interface.rsplit("/", 1)[0]
    return interface


def device_of(channel: str) -> str:
    """`PJSIP/101-0000000a` or `Local/101@agents-00000001;1` -> the device that rang."""
    return _CHANNEL_SUFFIX.sub("", channel)


def _seconds(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _clean_id(value: str) -> str:
    return "" if value == UNKNOWN else value


@dataclass
class _Ring:
    interface: str
    member_name: str
    transfer: bool = False  # a Dial() the caller's channel made after a transfer: its answer counts


@dataclass
class _Consult:
    """The operator's leg dials a colleague before handing the caller over (attended transfer)."""

    channel: str  # the colleague's leg
    interface: str
    answered: bool = False


@dataclass
class _Call:
    linkedid: str
    started: float
    direction: str = "inbound"
    caller_num: str = ""
    caller_name: str = ""
    did: str = ""
    queue: str = ""
    interface: str = ""
    member_name: str = ""
    wait_seconds: int | None = None
    talk_seconds: int | None = None
    variables: dict[str, str] = field(default_factory=dict)
    channels: set[str] = field(default_factory=set)
    rings: dict[str, _Ring] = field(default_factory=dict)
    offered: bool = False
    answered_at: float | None = None
    abandoned: bool = False
    failure: Outcome | None = None
    awaiting_originate: bool = False  # our Originate: end only once OriginateResponse told how it went
    agent_first: bool = False  # click-to-call: the operator's phone is the originated leg
    customer_legs: set[str] = field(default_factory=set)  # click-to-call: channels dialled to the customer
    all_gone: bool = False
    caller_channel: str = ""  # the channel that sits in the queue: the one a transfer redirects
    transferring: bool = False  # a Redirect out of the queue is under way: its abandon is no abandon
    agent_channel: str = ""  # the operator's leg bridged with the caller: the one an Atxfer starts from
    consult: _Consult | None = None
    connected_at: float | None = None  # dialler call: when an operator took the answered debtor

    @property
    def customer_first(self) -> bool:
        """A dialler call: the debtor was dialled first and an operator is connected after they answer."""
        return self.direction == "outbound" and not self.agent_first

    @property
    def outcome(self) -> Outcome:
        if self.answered_at is not None:
            if self.customer_first and self.connected_at is None:
                return Outcome.ABANDONED  # the debtor answered and no operator ever took them
            return Outcome.ANSWERED
        if self.abandoned:
            return Outcome.ABANDONED
        return self.failure or Outcome.MISSED


class CallTracker:
    """Feed AMI messages in order; get the CallEvents each one causes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._calls: dict[str, _Call] = {}
        self._channel_call: dict[str, str] = {}  # Uniqueid -> call key (Linkedid when first seen)
        self._gone: OrderedDict[str, None] = OrderedDict()  # hung-up Uniqueids: never re-adopt
        self._outbound: dict[str, str] = {}  # our Originate ActionID -> pre-assigned ChannelId
        self._click_to_call: dict[str, tuple[str, str]] = {}  # ChannelId -> (operator interface, number)
        self._spies: OrderedDict[str, None] = OrderedDict()  # ChannelIds (= Linkedids) of our ChanSpy legs
        self._handlers: dict[str, Callable[[AmiMessage], list[CallEvent]]] = {
            "newchannel": self._on_newchannel,
            "newcallerid": self._on_new_caller_id,
            "queuecallerjoin": self._on_queue_join,
            "agentcalled": self._on_agent_called,
            "agentringnoanswer": self._on_agent_ring_no_answer,
            "agentconnect": self._on_agent_connect,
            "agentcomplete": self._on_agent_complete,
            "queuecallerabandon": self._on_queue_abandon,
            "dialbegin": self._on_dial_begin,
            "dialend": self._on_dial_end,
            "hangup": self._on_hangup,
            "originateresponse": self._on_originate_response,
            "attendedtransfer": self._on_attended_transfer,
        }

    @property
    def active_calls(self) -> list[str]:
        return list(self._calls)

    def caller_channel(self, linkedid: str) -> str | None:
        """The caller's channel of a live call (the one in the queue), for Redirect; None if unknown."""
        call = self._calls.get(linkedid)
        return call.caller_channel or None if call is not None else None

    def agent_channel(self, linkedid: str) -> str | None:
        """The operator's leg bridged with the caller of a live, answered call (for Atxfer); None if none."""
        call = self._calls.get(linkedid)
        return call.agent_channel or None if call is not None else None

    def on_phone(self, interface: str) -> bool:
        """Whether the phone `interface` rings or talks in a live call (a transfer would find it busy)."""
        device = normalize_interface(interface)
        return any(
            device_of(call.agent_channel) == device
            or any(r.interface == device for r in call.rings.values())
            or (call.consult is not None and call.consult.interface == device)
            for call in self._calls.values()
        )

    def expect_redirect(self, linkedid: str) -> bool:
        """We are about to Redirect this call's caller to another queue: the QueueCallerAbandon
        that Asterisk sends for the old queue is a transfer, not the caller giving up."""
        call = self._calls.get(linkedid)
        if call is None:
            return False
        call.transferring = True
        return True

    def cancel_redirect(self, linkedid: str) -> None:
        """The Redirect failed: a later abandon is a real one again."""
        call = self._calls.get(linkedid)
        if call is not None:
            call.transferring = False

    def expect_outbound(self, action_id: str, channel_id: str) -> None:
        """Record an Originate we sent, so its call is outbound and its failure is reported."""
        self._outbound[action_id] = channel_id

    def expect_click_to_call(self, channel_id: str, interface: str, number: str) -> None:
        """The Originate with this ChannelId rings the operator's `interface` first, then dials the
        customer's `number`. AMI alone cannot tell this from a dialler call (customer first, then
        the operator): both are a first leg that answers and dials the other end."""
        self._click_to_call[channel_id] = (normalize_interface(interface), number)

    def expect_spy(self, channel_id: str) -> None:
        """The Originate with this ChannelId is a supervisor's ChanSpy: their phone and the spy leg
        are no call (nothing to log, pop or follow up), so every channel of it is ignored."""
        self._spies[channel_id] = None
        if len(self._spies) > _RECENTLY_GONE_MAX:
            self._spies.popitem(last=False)

    def feed(self, msg: AmiMessage) -> list[CallEvent]:
        name = msg.event.lower()
        if not name:
            return []
        if name in _ADOPTING_EVENTS:
            self._adopt(msg, first_leg=name == "newchannel")
        handler = self._handlers.get(name)
        return handler(msg) if handler is not None else []

    def resync(self, channels: list[AmiMessage]) -> list[CallEvent]:
        """Reconcile with a CoreShowChannels list after a reconnect: end ghosts, adopt strangers, and
        learn what happened while nobody listened: the queue a caller waits in, an answer (the
        caller shares a bridge with a queue member's leg), a caller gone from a queue (abandoned)."""
        live = {ch.get("Uniqueid"): ch for ch in channels if ch.get("Uniqueid")}
        events: list[CallEvent] = []
        for key in list(self._calls):
            call = self._calls[key]
            for uniqueid in list(call.channels):
                if uniqueid not in live:
                    self._forget_channel(uniqueid)
                    call.channels.discard(uniqueid)
            if not call.channels:
                call.awaiting_originate = False
                if call.direction == "inbound" and call.queue and call.answered_at is None and not call.transferring:
                    call.abandoned = True  # hung up in the queue while we were away
                    call.wait_seconds = max(0, round(self._clock() - call.started))
                events += self._end(call)
        adopted: dict[str, _Call] = {}
        for ch in live.values():
            if ch.get("Uniqueid") not in self._channel_call:
                call = self._adopt(ch, first_leg=False)  # a listed leg's Exten is where it is now
                if call is not None and not call.offered:
                    adopted[call.linkedid] = call
        for ch in live.values():
            call = self._call_of(ch)
            if call is not None and ch.get("Application") == "Queue":
                call.queue = call.queue or ch.get("ApplicationData").split(",")[0]
                call.caller_channel = call.caller_channel or ch.get("Channel")
        events += [self._offer(call) for call in adopted.values()]
        return events + self._answered_while_away(list(live.values()))

    def _answered_while_away(self, channels: list[AmiMessage]) -> list[CallEvent]:
        """ANSWERED for inbound calls not known as answered whose queue member's leg is in a bridge."""
        bridges: dict[str, list[AmiMessage]] = {}
        for ch in channels:
            if ch.get("BridgeId"):
                bridges.setdefault(ch.get("BridgeId"), []).append(ch)
        events: list[CallEvent] = []
        for members in bridges.values():
            agent = next((m for m in members if m.get("Application") == "AppQueue"), None)
            call = self._call_of(agent) if agent is not None and len(members) > 1 else None
            if call is None or agent is None or call.answered_at is not None or call.direction != "inbound":
                continue
            channel = agent.get("Channel")
            call.rings.pop(channel, None)
            call.interface, call.member_name, call.agent_channel = device_of(channel), "", channel
            call.answered_at = self._clock()
            events += self._stop_rings(call) + [self._event(call, CallEventKind.ANSWERED)]
        return events

    # --- channels and calls -------------------------------------------------------------

    def _adopt(self, msg: AmiMessage, *, first_leg: bool) -> _Call | None:
        uniqueid = _clean_id(msg.get("Uniqueid"))
        if not uniqueid or uniqueid in self._gone:
            return None
        key = self._channel_call.get(uniqueid)
        if key is not None:
            return self._calls.get(key)
        linkedid = _clean_id(msg.get("Linkedid")) or uniqueid
        if linkedid in self._spies or uniqueid in self._spies:
            return None
        key = linkedid if linkedid in self._calls else self._channel_call.get(linkedid, linkedid)
        call = self._calls.get(key)
        if call is None:
            call = _Call(linkedid=key, started=self._clock())
            if first_leg and msg.get("Exten") not in ("", "s"):
                call.did = msg.get("Exten")  # Newchannel of a first leg names the dialled number
            self._calls[key] = call
        call.channels.add(uniqueid)
        self._channel_call[uniqueid] = key
        if not call.caller_num:
            call.caller_num = _clean_id(msg.get("CallerIDNum"))
            call.caller_name = _clean_id(msg.get("CallerIDName"))
        return call

    def _call_of(self, msg: AmiMessage) -> _Call | None:
        key = self._channel_call.get(msg.get("Uniqueid"))
        return self._calls.get(key) if key is not None else None

    def _forget_channel(self, uniqueid: str) -> None:
        self._channel_call.pop(uniqueid, None)
        self._gone[uniqueid] = None
        if len(self._gone) > _RECENTLY_GONE_MAX:
            self._gone.popitem(last=False)

    def _event(self, call: _Call, kind: CallEventKind, **overrides: object) -> CallEvent:
        event = CallEvent(
            kind=kind,
            linkedid=call.linkedid,
            at=self._clock(),
            direction=call.direction,
            caller_num=call.caller_num,
            caller_name=call.caller_name,
            did=call.did,
            queue=call.queue,
            interface=call.interface,
            member_name=call.member_name,
            wait_seconds=call.wait_seconds,
            talk_seconds=call.talk_seconds,
            variables=dict(call.variables),
        )
        return replace(event, **overrides) if overrides else event  # type: ignore[arg-type]

    def _offer(self, call: _Call) -> CallEvent:
        call.offered = True
        return self._event(call, CallEventKind.OFFERED)

    def _learn_caller(self, call: _Call, msg: AmiMessage) -> None:
        """Caller ID and variables as the caller leg shows them now (IVR may have changed them)."""
        num, name = _clean_id(msg.get("CallerIDNum")), _clean_id(msg.get("CallerIDName"))
        if num:
            call.caller_num, call.caller_name = num, name
        variables = msg.variables()
        if variables:
            call.variables.update(variables)
        did = call.variables.get("DID") or call.variables.get("FROM_DID")
        if did:
            call.did = did

    def _stop_rings(self, call: _Call) -> list[CallEvent]:
        events = [
            self._event(call, CallEventKind.RING_STOPPED, interface=r.interface, member_name=r.member_name)
            for r in call.rings.values()
        ]
        call.rings.clear()
        return events

    def _end(self, call: _Call) -> list[CallEvent]:
        """Emit ENDED once every leg is gone (and our Originate's result is known)."""
        call.all_gone = True
        if call.awaiting_originate:
            return []
        del self._calls[call.linkedid]
        now = self._clock()
        if call.customer_first and call.answered_at is not None:
            if call.connected_at is None:
                call.wait_seconds = max(0, round(now - call.answered_at))  # how long they heard no one
            elif call.talk_seconds is None:
                call.talk_seconds = max(0, round(now - call.connected_at))
        elif call.answered_at is not None and call.talk_seconds is None:
            call.talk_seconds = max(0, round(now - call.answered_at))
        events = self._stop_rings(call)
        if not call.offered:
            events.append(self._offer(call))
        events.append(self._event(call, CallEventKind.ENDED, outcome=call.outcome))
        return events

    # --- handlers -----------------------------------------------------------------------

    def _on_newchannel(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        uniqueid = msg.get("Uniqueid")
        if call is None or uniqueid not in self._outbound.values() or call.direction == "outbound":
            return []
        call.direction = "outbound"
        call.awaiting_originate = True
        call.did = msg.get("Exten") if msg.get("Exten") != "s" else ""
        click_to_call = self._click_to_call.pop(uniqueid, None)
        if click_to_call is not None:
            return self._start_click_to_call(call, msg.get("Channel"), *click_to_call)
        if call.did:  # `Local/<number>@outbound`: the customer is the first leg
            call.caller_num, call.caller_name = call.did, ""
        return [self._offer(call)]

    def _on_new_caller_id(self, msg: AmiMessage) -> list[CallEvent]:
        """The dialplan set the caller ID after the channel appeared (Asterisk's Newchannel then says
        <unknown>): the first number an inbound call gets is its caller's, so a call that ends in
        the IVR, before any queue, is logged with its number too."""
        call = self._call_of(msg)
        if call is not None and call.direction == "inbound" and not call.caller_num:
            call.caller_num = _clean_id(msg.get("CallerIDNum"))
            call.caller_name = _clean_id(msg.get("CallerIDName"))
        return []

    def _start_click_to_call(self, call: _Call, channel: str, interface: str, number: str) -> list[CallEvent]:
        """The operator's phone rings with the customer's card; the customer is the caller of record."""
        call.agent_first = True
        call.did = call.caller_num = number
        call.caller_name = ""
        call.interface = interface
        call.rings[channel] = _Ring(interface, "")
        return [self._offer(call), self._event(call, CallEventKind.RINGING)]

    def _on_queue_join(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        call.queue = msg.get("Queue")
        call.caller_channel = msg.get("Channel") or call.caller_channel
        self._learn_caller(call, msg)
        call.abandoned = False
        if call.transferring and call.offered:
            call.transferring = False
            call.agent_channel = ""
            return self._stop_rings(call) + [self._event(call, CallEventKind.TRANSFERRED)]
        return [self._offer(call)]

    def _on_agent_called(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        ring = _Ring(normalize_interface(msg.get("Interface")), msg.get("MemberName"))
        call.rings[msg.get("DestChannel") or ring.interface] = ring
        call.queue = msg.get("Queue") or call.queue
        return [
            self._event(call, CallEventKind.RINGING, interface=ring.interface, member_name=ring.member_name)
        ]

    def _ring_stopped(self, call: _Call, key: str) -> list[CallEvent]:
        ring = call.rings.pop(key, None)
        if ring is None:
            return []
        return [
            self._event(
                call, CallEventKind.RING_STOPPED, interface=ring.interface, member_name=ring.member_name
            )
        ]

    def _on_agent_ring_no_answer(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        key = msg.get("DestChannel") or normalize_interface(msg.get("Interface"))
        return self._ring_stopped(call, key)

    def _on_agent_connect(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        call.rings.pop(msg.get("DestChannel"), None)
        call.queue = msg.get("Queue") or call.queue
        call.interface = normalize_interface(msg.get("Interface"))
        call.member_name = msg.get("MemberName")
        call.agent_channel = msg.get("DestChannel")
        call.wait_seconds = _seconds(msg.get("HoldTime"))
        call.answered_at = self._clock()
        call.talk_seconds = None
        self._learn_caller(call, msg)
        return [self._event(call, CallEventKind.ANSWERED)]

    def _on_agent_complete(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        transfer = msg.get("Reason").lower() == "transfer"
        dest = msg.get("DestChannel")
        if (transfer and call.consult is not None) or (dest and call.agent_channel and dest != call.agent_channel):
            return []  # an attended transfer: AttendedTransfer hands the call to the colleague
        call.talk_seconds = _seconds(msg.get("TalkTime"))
        if transfer:
            call.transferring = True  # the caller goes on to another queue or extension
        if msg.get("Interface"):
            call.interface = normalize_interface(msg.get("Interface"))
            call.member_name = msg.get("MemberName") or call.member_name
        self._learn_caller(call, msg)
        return []

    def _on_queue_abandon(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        if call is None:
            return []
        call.queue = msg.get("Queue") or call.queue
        if call.transferring:
            return self._stop_rings(call)  # redirected out of the queue: QueueCallerJoin follows
        call.wait_seconds = _seconds(msg.get("HoldTime"))
        call.abandoned = True
        self._learn_caller(call, msg)
        return self._stop_rings(call) + [self._event(call, CallEventKind.ABANDONED)]

    def _on_dial_begin(self, msg: AmiMessage) -> list[CallEvent]:
        """A Dial outside a queue (direct call, personal manager first, outbound agent leg, or a
        caller redirected to a colleague's phone): ring the dialled device."""
        call = self._call_of(msg)
        dest = msg.get("DestChannel")
        caller = msg.get("Channel")
        if call is not None and caller.endswith(";2") and f"{caller[:-2]};1" in call.rings:
            return []  # the phone behind a ringing Local leg (`[agents]` Dial(PJSIP/101)): the same ring
        if call is not None and dest and call.agent_channel and caller == call.agent_channel \
                and not call.agent_first:
            call.consult = _Consult(dest, device_of(dest))  # Atxfer: the operator consults a colleague
            return [self._event(call, CallEventKind.RINGING, interface=call.consult.interface, member_name="")]
        if call is None or not dest or (call.queue and not call.transferring):
            return []
        if call.agent_first:  # the operator's answered leg dials the customer: no desk rings
            call.customer_legs.add(dest)
            return []
        events = []
        if not call.offered:
            self._learn_caller(call, msg)
            events.append(self._offer(call))
        call.caller_channel = call.caller_channel or msg.get("Channel")  # a manager may transfer it too
        transfer = call.transferring
        if transfer:
            call.transferring = False
            call.agent_channel = ""
            events += self._stop_rings(call) + [self._event(call, CallEventKind.TRANSFERRED)]
        ring = _Ring(device_of(dest), "", transfer)
        call.rings[dest] = ring
        events.append(self._event(call, CallEventKind.RINGING, interface=ring.interface, member_name=""))
        return events

    def _on_dial_end(self, msg: AmiMessage) -> list[CallEvent]:
        call = self._call_of(msg)
        dest = msg.get("DestChannel")
        if call is not None and dest in call.customer_legs:
            return self._customer_dial_end(call, msg.get("DialStatus").upper())
        if call is not None and call.consult is not None and dest == call.consult.channel:
            if msg.get("DialStatus").upper() == "ANSWER":
                call.consult.answered = True
                return []
            return self._consult_over(call)
        if call is None or dest not in call.rings:
            return []
        status = msg.get("DialStatus").upper()
        if status != "ANSWER":
            if status in _DIAL_STATUS_OUTCOME and not call.queue:  # a busy member is not a busy call
                call.failure = _DIAL_STATUS_OUTCOME[status]
            return self._ring_stopped(call, dest)
        ring = call.rings.pop(dest)
        if call.queue and not ring.transfer:
            return []  # AgentConnect follows with HoldTime and the member
        call.interface, call.member_name = ring.interface, ring.member_name
        call.agent_channel = dest
        if call.customer_first and call.connected_at is None and call.answered_at is not None:
            call.connected_at = self._clock()  # the dialler put the answered debtor through
            return [self._event(call, CallEventKind.ANSWERED)]
        if call.answered_at is not None and not ring.transfer:
            return []
        if call.answered_at is None:
            call.answered_at = self._clock()
            call.wait_seconds = max(0, round(call.answered_at - call.started))
        return [self._event(call, CallEventKind.ANSWERED)]

    def _customer_dial_end(self, call: _Call, status: str) -> list[CallEvent]:
        """Click-to-call: the customer's answer is the call's answer, their refusal its outcome."""
        if status != "ANSWER":
            call.failure = _DIAL_STATUS_OUTCOME.get(status, call.failure)
            return []
        if call.answered_at is not None:
            return []
        call.rings.clear()  # the operator's phone was answered long ago: no RING_STOPPED
        call.answered_at = self._clock()
        call.wait_seconds = max(0, round(call.answered_at - call.started))
        return [self._event(call, CallEventKind.ANSWERED)]

    def _on_hangup(self, msg: AmiMessage) -> list[CallEvent]:
        uniqueid = msg.get("Uniqueid")
        call = self._call_of(msg)
        if call is None:
            return []
        self._forget_channel(uniqueid)
        call.channels.discard(uniqueid)
        channel = msg.get("Channel")
        if channel == call.agent_channel:
            call.agent_channel = ""
        events = self._ring_stopped(call, channel)  # a ringing leg gone without DialEnd
        if call.consult is not None and channel == call.consult.channel:
            events += self._consult_over(call)
        return events + self._end(call) if not call.channels else events

    def _consult_over(self, call: _Call) -> list[CallEvent]:
        """The colleague did not answer or hung up on the operator: the operator keeps the caller."""
        consult, call.consult = call.consult, None
        assert consult is not None
        return [self._event(call, CallEventKind.RING_STOPPED, interface=consult.interface, member_name="")]

    def _on_attended_transfer(self, msg: AmiMessage) -> list[CallEvent]:
        """The operator hung up while consulting: the colleague now talks to the caller. Their desk
        pops the card again (TRANSFERRED ends the first operator's part) and answers it."""
        key = self._channel_call.get(msg.get("OrigTransfererUniqueid"))
        call = self._calls.get(key) if key is not None else None
        if call is None or msg.get("Result").lower() != "success":
            return []
        target = msg.get("TransferTargetChannel") or (call.consult.channel if call.consult else "")
        interface = call.consult.interface if call.consult is not None else device_of(target)
        call.consult, call.transferring = None, False
        events = self._stop_rings(call) + [self._event(call, CallEventKind.TRANSFERRED)]
        call.agent_channel, call.interface, call.member_name = target, interface, ""
        call.talk_seconds = None  # talk runs from the first answer to the end, whoever talks last
        return events + [self._event(call, CallEventKind.RINGING, interface=interface, member_name=""),
                         self._event(call, CallEventKind.ANSWERED)]

    def _on_originate_response(self, msg: AmiMessage) -> list[CallEvent]:
        channel_id = self._outbound.pop(msg.action_id, None)
        if channel_id is None or channel_id in self._spies:
            return []
        uniqueid = _clean_id(msg.get("Uniqueid")) or channel_id
        key = self._channel_call.get(uniqueid) or (uniqueid if uniqueid in self._calls else None)
        call = self._calls.get(key) if key else None
        events: list[CallEvent] = []
        click_to_call = self._click_to_call.pop(channel_id, None)  # still here: no channel was ever made
        if call is None:
            call = _Call(linkedid=uniqueid or msg.action_id, started=self._clock(), direction="outbound")
            call.did = msg.get("Exten")
            self._learn_caller(call, msg)
            if click_to_call is not None:
                call.agent_first = True
                call.interface, call.did = click_to_call
                call.caller_num, call.caller_name = call.did, ""
            self._calls[call.linkedid] = call
            call.all_gone = True
        call.awaiting_originate = False
        if msg.response.lower() == "success":
            # Reason 4 is the first leg answering: the customer, unless the operator's phone rang first
            if msg.get("Reason") == "4" and call.answered_at is None and not call.agent_first:
                call.answered_at = self._clock()
                call.wait_seconds = max(0, round(call.answered_at - call.started))
                events.append(self._event(call, CallEventKind.ANSWERED))
        else:
            call.failure = _ORIGINATE_REASON_OUTCOME.get(msg.get("Reason"), Outcome.MISSED)
        if call.all_gone:
            events += self._end(call)
        return events
