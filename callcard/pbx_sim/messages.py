"""AMI message templates with the header names and order of the Asterisk 22 recordings.

Every builder returns a `Message` (ordered header pairs, repeated keys allowed) so the
simulator's bytes line up with `../shared/ami-traces/*.ami` field for field.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callcard.pbx_sim.model import Channel, Member

Message = list[tuple[str, str]]

CHANNEL_VARS = ("CRM_CALL_ID", "QUEUE", "IVR")
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 18: "No user responding",
             19: "User alerting, no answer", 34: "Circuit/channel congestion"}
VERSION = "Asterisk 22.10.1 built by root @ vm on a x86_64 running Linux on 2026-11-23 00:34:13 UTC"


def encode(msg: Message) -> bytes:
    """Wire form: `Key: value` CRLF lines and a blank line; UTF-8 so Cyrillic names pass intact."""
    return "".join(f"{k}: {v}\r\n" for k, v in msg).encode() + b"\r\n"


def privilege_class(msg: Message) -> str | None:
    """The event class (`call`, `agent`...) that a Login `Events:` mask filters on; None for list items."""
    for key, value in msg:
        if key == "Privilege":
            return value.split(",", 1)[0]
    return None


def response(status: str, action_id: str | None, message: str | None = None, *extra: tuple[str, str]) -> Message:
    """An action reply: ActionID before Message, as Asterisk writes it; no ActionID when none was sent."""
    msg: Message = [("Response", status)]
    if action_id is not None:
        msg.append(("ActionID", action_id))
    msg.extend(extra)
    if message is not None:
        msg.append(("Message", message))
    return msg


def list_start(action_id: str | None, message: str) -> Message:
    return response("Success", action_id, message, ("EventList", "start"))


def list_complete(event: str, action_id: str | None, count: int) -> Message:
    head: Message = [("Event", event)]
    if action_id is not None:
        head.append(("ActionID", action_id))
    return head + [("EventList", "Complete"), ("ListItems", str(count))]


def _event(name: str, privilege: str, *parts: Iterable[tuple[str, str]]) -> Message:
    msg: Message = [("Event", name), ("Privilege", f"{privilege},all")]
    for part in parts:
        msg.extend(part)
    return msg


def channel_block(ch: Channel, prefix: str = "") -> Message:
    """The standard channel snapshot; `Dest`/`LocalOne`/`LocalTwo` prefix it for the other channel."""
    p = prefix
    block: Message = [
        (f"{p}Channel", ch.name),
        (f"{p}ChannelState", str(ch.state)),
        (f"{p}ChannelStateDesc", STATE_DESC[ch.state]),
        (f"{p}CallerIDNum", ch.cid_num),
        (f"{p}CallerIDName", ch.cid_name),
        (f"{p}ConnectedLineNum", ch.con_num),
        (f"{p}ConnectedLineName", ch.con_name),
        (f"{p}Language", "en"),
        (f"{p}AccountCode", ""),
        (f"{p}Context", ch.context),
        (f"{p}Exten", ch.exten),
        (f"{p}Priority", str(ch.priority)),
        (f"{p}Uniqueid", ch.uniqueid),
        (f"{p}Linkedid", ch.linkedid),
    ]
    block += [(f"{p}ChanVariable", f"{v}={ch.variables.get(v, '')}") for v in CHANNEL_VARS]
    return block


def _dest(ch: Channel | None) -> Message:
    return channel_block(ch, "Dest") if ch is not None else []


# --- channel life cycle -------------------------------------------------------------

def newchannel(ch: Channel) -> Message:
    return _event("Newchannel", "call", channel_block(ch))


def newstate(ch: Channel) -> Message:
    return _event("Newstate", "call", channel_block(ch))


def new_callerid(ch: Channel) -> Message:
    return _event("NewCallerid", "call", channel_block(ch),
                  [("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")])


def new_connected_line(ch: Channel) -> Message:
    return _event("NewConnectedLine", "call", channel_block(ch))


def newexten(ch: Channel, application: str, data: str) -> Message:
    return _event("Newexten", "dialplan", channel_block(ch),
                  [("Extension", ch.exten), ("Application", application), ("AppData", data)])


def var_set(ch: Channel, variable: str, value: str) -> Message:
    return _event("VarSet", "dialplan", channel_block(ch), [("Variable", variable), ("Value", value)])


def local_bridge(one: Channel, two: Channel, optimization: bool) -> Message:
    return _event("LocalBridge", "call", channel_block(one, "LocalOne"), channel_block(two, "LocalTwo"),
                  [("Context", two.context), ("Exten", two.exten),
                   ("LocalOptimization", "Yes" if optimization else "No")])


def hangup_request(ch: Channel, cause: int) -> Message:
    return _event("HangupRequest", "call", channel_block(ch), [("Cause", str(cause))])


def soft_hangup_request(ch: Channel, cause: int) -> Message:
    return _event("SoftHangupRequest", "call", channel_block(ch), [("Cause", str(cause))])


def hangup(ch: Channel, cause: int) -> Message:
    return _event("Hangup", "call", channel_block(ch),
                  [("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))])


def device_state_change(device: str, state: str) -> Message:
    return _event("DeviceStateChange", "call", [("Device", device), ("State", state)])


def moh_start(ch: Channel) -> Message:
    return _event("MusicOnHoldStart", "call", channel_block(ch), [("Class", "default")])


def moh_stop(ch: Channel) -> Message:
    return _event("MusicOnHoldStop", "call", channel_block(ch))


# --- dialing --------------------------------------------------------------------------

def dial_begin(caller: Channel | None, dest: Channel, dial_string: str) -> Message:
    """The Originate's own dial has no caller channel: only the Dest block."""
    return _event("DialBegin", "call", channel_block(caller) if caller else [], _dest(dest),
                  [("DialString", dial_string)])


def dial_state(caller: Channel, dest: Channel, status: str) -> Message:
    return _event("DialState", "call", channel_block(caller), _dest(dest), [("DialStatus", status)])


def dial_end(caller: Channel | None, dest: Channel, status: str) -> Message:
    return _event("DialEnd", "call", channel_block(caller) if caller else [], _dest(dest),
                  [("DialStatus", status)])


def originate_response(action_id: str | None, ok: bool, channel: str, application: str, data: str,
                       reason: int, uniqueid: str, cid_num: str, cid_name: str,
                       chan: Channel | None) -> Message:
    msg: Message = [("Event", "OriginateResponse"), ("Privilege", "call,all")]
    if action_id is not None:
        msg.append(("ActionID", action_id))
    msg += [("Response", "Success" if ok else "Failure"), ("Channel", channel),
            ("Application", application), ("Data", data), ("Reason", str(reason)),
            ("Uniqueid", uniqueid), ("CallerIDNum", cid_num or "<unknown>"),
            ("CallerIDName", cid_name or "<unknown>")]
    if chan is not None:
        msg += [(f"ChanVariable({chan.name})", f"{v}={chan.variables.get(v, '')}") for v in CHANNEL_VARS]
    return msg


def originate_response_exten(action_id: str | None, ok: bool, channel: str, context: str, exten: str,
                             reason: int, uniqueid: str, cid_num: str, cid_name: str,
                             chan: Channel | None) -> Message:
    """An Originate to Context/Exten: Asterisk's manager.c writes Context and Exten where the
    application form has Application and Data; the rest is laid out the same."""
    msg = originate_response(action_id, ok, channel, "", "", reason, uniqueid, cid_num, cid_name, chan)
    at = msg.index(("Application", ""))
    msg[at:at + 2] = [("Context", context), ("Exten", exten)]
    return msg


# --- queue ----------------------------------------------------------------------------

def queue_caller_join(ch: Channel, queue: str, position: int, count: int) -> Message:
    return _event("QueueCallerJoin", "agent", channel_block(ch),
                  [("Queue", queue), ("Position", str(position)), ("Count", str(count))])


def queue_caller_leave(ch: Channel, queue: str, position: int, count: int) -> Message:
    return _event("QueueCallerLeave", "agent", channel_block(ch),
                  [("Queue", queue), ("Position", str(position)), ("Count", str(count))])


def queue_caller_abandon(ch: Channel, queue: str, position: int, original: int, hold: int) -> Message:
    return _event("QueueCallerAbandon", "agent", channel_block(ch),
                  [("Queue", queue), ("Position", str(position)), ("OriginalPosition", str(original)),
                   ("HoldTime", str(hold))])


def _agent_tail(queue: str, member: Member) -> Message:
    return [("Queue", queue), ("Interface", member.interface), ("MemberName", member.name)]


def agent_called(caller: Channel, dest: Channel, queue: str, member: Member) -> Message:
    return _event("AgentCalled", "agent", channel_block(caller), _dest(dest), _agent_tail(queue, member))


def agent_connect(caller: Channel, dest: Channel, queue: str, member: Member, hold: int,
                  ring: int) -> Message:
    return _event("AgentConnect", "agent", channel_block(caller), _dest(dest), _agent_tail(queue, member),
                  [("HoldTime", str(hold)), ("RingTime", str(ring))])


def agent_complete(caller: Channel, dest: Channel | None, queue: str, member: Member, hold: int,
                   talk: int, reason: str) -> Message:
    """Without `dest` when the member leg is already gone, as in inbound_answered.ami."""
    return _event("AgentComplete", "agent", channel_block(caller), _dest(dest), _agent_tail(queue, member),
                  [("HoldTime", str(hold)), ("TalkTime", str(talk)), ("Reason", reason)])


def agent_ring_no_answer(caller: Channel, dest: Channel, queue: str, member: Member,
                         ring_ms: int) -> Message:
    return _event("AgentRingNoAnswer", "agent", channel_block(caller), _dest(dest),
                  _agent_tail(queue, member), [("RingTime", str(ring_ms))])


def _member_fields(member: Member, status: int) -> Message:
    return [("StateInterface", member.state_interface),
            ("Membership", "dynamic" if member.dynamic else "static"),
            ("Penalty", str(member.penalty)), ("CallsTaken", str(member.calls_taken)),
            ("LastCall", str(member.last_call)), ("LastPause", str(member.last_pause)),
            ("LoginTime", str(member.login_time)), ("InCall", "1" if member.in_call else "0"),
            ("Status", str(status)), ("Paused", "1" if member.paused else "0"),
            ("PausedReason", member.reason)]


def queue_member_event(kind: str, queue: str, member: Member, status: int) -> Message:
    """QueueMemberStatus / Pause / Added / Removed / Penalty share one layout."""
    return _event(kind, "agent", [("Queue", queue), ("MemberName", member.name),
                                  ("Interface", member.interface)],
                  _member_fields(member, status), [("Ringinuse", "0"), ("Wrapuptime", "0")])


# --- bridges --------------------------------------------------------------------------

def _bridge(bridge_id: str, count: int) -> Message:
    return [("BridgeUniqueid", bridge_id), ("BridgeType", "basic"), ("BridgeTechnology", "simple_bridge"),
            ("BridgeCreator", "<unknown>"), ("BridgeName", "<unknown>"),
            ("BridgeNumChannels", str(count)), ("BridgeVideoSourceMode", "none")]


def bridge_create(bridge_id: str) -> Message:
    return _event("BridgeCreate", "call", _bridge(bridge_id, 0))


def bridge_enter(bridge_id: str, count: int, ch: Channel) -> Message:
    return _event("BridgeEnter", "call", _bridge(bridge_id, count), channel_block(ch))


def bridge_leave(bridge_id: str, count: int, ch: Channel) -> Message:
    return _event("BridgeLeave", "call", _bridge(bridge_id, count), channel_block(ch))


def bridge_destroy(bridge_id: str) -> Message:
    return _event("BridgeDestroy", "call", _bridge(bridge_id, 0))


def attended_transfer(transferer: Channel, orig: tuple[str, int], second: tuple[str, int], transferee: Channel,
                      target: Channel, dest_bridge: str) -> Message:
    """AttendedTransfer (Result Success, bridges merged) in stasis_bridges.c's order; an Atxfer from
    one channel makes it both OrigTransferer and SecondTransferer. `orig`/`second`: (bridge, count)."""
    return _event("AttendedTransfer", "call", [("Result", "Success")],
                  channel_block(transferer, "OrigTransferer"), [(f"Orig{k}", v) for k, v in _bridge(*orig)],
                  channel_block(transferer, "SecondTransferer"), [(f"Second{k}", v) for k, v in _bridge(*second)],
                  channel_block(transferee, "Transferee"), channel_block(target, "TransferTarget"),
                  [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", dest_bridge)])


def chan_spy(kind: str, spyer: Channel, spyee: Channel) -> Message:
    """ChanSpyStart / ChanSpyStop: the supervisor's channel as `Spyer`, the agent's as `Spyee`."""
    return _event(kind, "call", channel_block(spyer, "Spyer"), channel_block(spyee, "Spyee"))


# --- CDR and CEL ----------------------------------------------------------------------

def _clock(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) if epoch is not None else ""


def cdr(ch: Channel, source: str, caller_id: str, dest_channel: str, disposition: str,
        end: float) -> Message:
    answered = ch.answered
    return _event("Cdr", "cdr", [
        ("AccountCode", ""), ("Source", source), ("Destination", ch.exten),
        ("DestinationContext", ch.context),
        ("CallerID", caller_id), ("Channel", ch.name), ("DestinationChannel", dest_channel),
        ("LastApplication", ch.application), ("LastData", ch.app_data),
        ("StartTime", _clock(ch.created)), ("AnswerTime", _clock(answered)), ("EndTime", _clock(end)),
        ("Duration", str(int(end) - int(ch.created))),
        ("BillableSeconds", str(int(end) - int(answered)) if answered is not None else "0"),
        ("Disposition", disposition), ("AMAFlags", "DOCUMENTATION"), ("UniqueID", ch.uniqueid),
        ("UserField", ""),
    ])


def cel(ch: Channel, name: str, now: float, extra: str = "") -> Message:
    """CEL uses its own casing (`CallerIDnum`, `UniqueID`, `LinkedID`)."""
    known = ch.cid_num != "<unknown>"
    return _event("CEL", "call", [
        ("EventName", name), ("AccountCode", ""),
        ("CallerIDnum", ch.cid_num if known else ""), ("CallerIDname", ch.cid_name if known else ""),
        ("CallerIDani", ""), ("CallerIDrdnis", ""), ("CallerIDdnid", ""),
        ("Exten", ch.exten), ("Context", ch.context), ("Channel", ch.name),
        ("Application", ch.application), ("AppData", ch.app_data),
        ("EventTime", _clock(now)), ("AMAFlags", "DOCUMENTATION"),
        ("UniqueID", ch.uniqueid), ("LinkedID", ch.linkedid), ("Userfield", ""),
        ("Peer", ""), ("PeerAccount", ""), ("Extra", extra),
    ])


# --- list items (no Privilege; ActionID placement as recorded) ------------------------

def _aid(action_id: str | None) -> Message:
    return [("ActionID", action_id)] if action_id is not None else []


def queue_params(action_id: str | None, name: str, strategy: str, calls: int, holdtime: int,
                 talktime: int, completed: int, abandoned: int, service_level: int,
                 perf: float, perf2: float) -> Message:
    return [("Event", "QueueParams"), ("Queue", name), ("Max", "0"), ("Strategy", strategy),
            ("Calls", str(calls)), ("Holdtime", str(holdtime)), ("TalkTime", str(talktime)),
            ("Completed", str(completed)), ("Abandoned", str(abandoned)),
            ("ServiceLevel", str(service_level)), ("ServicelevelPerf", f"{perf:.1f}"),
            ("ServicelevelPerf2", f"{perf2:.1f}"), ("Weight", "0")] + _aid(action_id)


def queue_member_item(action_id: str | None, queue: str, member: Member, status: int) -> Message:
    """List form: `Name`/`Location` where live events say `MemberName`/`Interface`."""
    return ([("Event", "QueueMember"), ("Queue", queue), ("Name", member.name),
             ("Location", member.interface)] + _member_fields(member, status)
            + [("Wrapuptime", "0")] + _aid(action_id))


def queue_entry(action_id: str | None, queue: str, position: int, ch: Channel, wait: int) -> Message:
    return [("Event", "QueueEntry"), ("Queue", queue), ("Position", str(position)),
            ("Channel", ch.name), ("Uniqueid", ch.uniqueid), ("CallerIDNum", ch.cid_num),
            ("CallerIDName", ch.cid_name), ("ConnectedLineNum", ch.con_num),
            ("ConnectedLineName", ch.con_name), ("Wait", str(wait)), ("Priority", "0")] + _aid(action_id)


def queue_summary(action_id: str | None, queue: str, logged_in: int, available: int, callers: int,
                  holdtime: int, talktime: int, longest: int) -> Message:
    return [("Event", "QueueSummary"), ("Queue", queue), ("LoggedIn", str(logged_in)),
            ("Available", str(available)), ("Callers", str(callers)), ("HoldTime", str(holdtime)),
            ("TalkTime", str(talktime)), ("LongestHoldTime", str(longest))] + _aid(action_id)


def core_show_channel(action_id: str | None, ch: Channel, now: float) -> Message:
    secs = max(0, int(now) - int(ch.created))
    duration = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return ([("Event", "CoreShowChannel")] + _aid(action_id) + channel_block(ch)
            + [("Application", ch.application), ("ApplicationData", ch.app_data),
               ("Duration", duration), ("BridgeId", ch.bridge)])


# --- session and security -------------------------------------------------------------

def _tv(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}+0000"


def fully_booted(uptime: int) -> Message:
    return _event("FullyBooted", "system", [("Uptime", str(uptime)), ("LastReload", str(uptime)),
                                            ("Status", "Fully Booted")])


def _security(session_id: str, local: str, remote: str) -> Message:
    return [("SessionID", session_id), ("LocalAddress", local), ("RemoteAddress", remote)]


def successful_auth(now: float, account: str, session_id: str, local: str, remote: str,
                    session_start: float) -> Message:
    return _event("SuccessfulAuth", "security", [
        ("EventTV", _tv(now)), ("Severity", "Informational"), ("Service", "AMI"), ("EventVersion", "1"),
        ("AccountID", account)], _security(session_id, local, remote),
        [("UsingPassword", "0"), ("SessionTV", _tv(session_start))])


def invalid_password(now: float, account: str, session_id: str, local: str, remote: str) -> Message:
    return _event("InvalidPassword", "security", [
        ("EventTV", _tv(now)), ("Severity", "Error"), ("Service", "AMI"), ("EventVersion", "2"),
        ("AccountID", account)], _security(session_id, local, remote),
        [("SessionTV", "1970-01-01T00:00:00.000+0000")])


def request_bad_format(now: float, account: str, session_id: str, local: str, remote: str,
                       action: str, session_start: float) -> Message:
    return _event("RequestBadFormat", "security", [
        ("EventTV", _tv(now)), ("Severity", "Error"), ("Service", "AMI"), ("EventVersion", "1")],
        _security(session_id, local, remote),
        [("RequestType", f"Action: {action}"), ("SessionTV", _tv(session_start)), ("AccountID", account)])


# --- FastAGI ------------------------------------------------------------------------

def agi_exec(ch: Channel, event: str, command_id: str, command: str, code: str = "",
             result: str = "") -> Message:
    """AGIExecStart (no code) or AGIExecEnd, with the recording's header order."""
    tail: Message = [("CommandId", command_id), ("Command", command)]
    if event == "AGIExecEnd":
        tail += [("ResultCode", code), ("Result", result)]
    return _event(event, "agi", channel_block(ch), tail)
