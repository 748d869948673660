"""AMI actions that act on the PBX state: request in, replies and events out, no I/O.

Session actions (Login, Logoff) live in the server because they touch the connection.
Reply texts are the ones recorded from Asterisk 22 (`../shared/ami-traces/`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from callcard.pbx_sim import messages as m
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.model import Pbx, PbxError
from callcard.pbx_sim.wire import Request

TRUE = {"1", "true", "yes", "on", "y", "t"}


@dataclass
class Outcome:
    """Replies go to the requester only, before the events (Hangup/Redirect replies come first)."""

    replies: list[Message]
    events: list[Message] = field(default_factory=list)
    reply_after_events: bool = False


def parse_caller_id(value: str) -> tuple[str, str]:
    """`"Ivan Petrov" <+7351...>` -> (number, name); a bare number has no name."""
    match = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', value)
    if match:
        return match.group(2).strip(), match.group(1).strip()
    return value.strip(), ""


def parse_variables(values: list[str]) -> list[tuple[str, str]]:
    """`Variable:` headers, each `NAME=value`, several per header separated by commas."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        for item in value.split(","):
            name, eq, val = item.partition("=")
            if eq and name.strip():
                pairs.append((name.strip(), val))
    return pairs


def _ok(aid: str | None, message: str) -> Outcome:
    return Outcome([m.response("Success", aid, message)])


def _error(aid: str | None, message: str) -> Outcome:
    return Outcome([m.response("Error", aid, message)])


def ping(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    return Outcome([m.response("Success", aid, None, ("Ping", "Pong"), ("Timestamp", f"{now:.6f}"))])


def originate(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    """`Local/s@inbound` is an inbound caller; Context/Exten originates are the outbound calls of
    `outbound.py` (Async only); other destinations cannot be reached."""
    channel = req.get("Channel")
    if not channel:
        return _error(aid, "Channel not specified")
    async_ = req.get("Async").lower() in TRUE
    num, name = parse_caller_id(req.get("CallerID"))
    application, data = req.get("Application"), req.get("Data")
    variables = parse_variables(req.get_all("Variable"))
    if not application and req.get("Exten"):
        return _originate_exten(pbx, now, req, aid, async_, (num, name), variables)
    if application.lower() == "chanspy":
        return _originate_spy(pbx, now, req, aid, async_, (num, name))
    if channel.lower() != "local/s@inbound":
        if not async_:
            return _error(aid, "Originate failed")
        failed = m.originate_response(aid, False, channel, application, data, 0,
                                      req.get("ChannelId") or "<unknown>", num, name, None)
        return Outcome([m.response("Success", aid, "Originate successfully queued")], [failed])
    try:
        patience = float(data) if application.lower() == "wait" else 3600.0
    except ValueError:
        patience = 0.0
    caller = num or dict(variables).get("CALLER", "")
    _, events = pbx.originate_inbound(now, caller, name, patience, variables, aid, application, data,
                                      async_, (req.get("ChannelId"), req.get("OtherChannelId")))
    return Outcome([m.response("Success", aid, "Originate successfully queued")], events,
                   reply_after_events=not async_)


def _originate_exten(pbx: Pbx, now: float, req: Request, aid: str | None, async_: bool,
                     caller: tuple[str, str], variables: list[tuple[str, str]]) -> Outcome:
    """Click-to-call or dialler Originate; one the dialplan cannot place fails with Reason 0."""
    if not async_:
        return _error(aid, "Originate failed")
    channel, context, exten = req.get("Channel"), req.get("Context"), req.get("Exten")
    timeout_ms = req.get("Timeout")
    timeout = int(timeout_ms) / 1000 if timeout_ms.isdigit() and int(timeout_ms) > 0 else 30.0
    events = pbx.outbound.originate(now, aid, channel, context, exten, caller, variables, timeout,
                                    (req.get("ChannelId"), req.get("OtherChannelId")))
    if events is None:
        events = [m.originate_response_exten(aid, False, channel, context, exten, 0, "<unknown>", *caller, None)]
    return Outcome([m.response("Success", aid, "Originate successfully queued")], events)


def _originate_spy(pbx: Pbx, now: float, req: Request, aid: str | None, async_: bool,
                   caller: tuple[str, str]) -> Outcome:
    """Listen/whisper/barge: the supervisor's phone rings, then ChanSpy joins the agent's channel."""
    if not async_:
        return _error(aid, "Originate failed")
    channel, data = req.get("Channel"), req.get("Data")
    timeout_ms = req.get("Timeout")
    timeout = int(timeout_ms) / 1000 if timeout_ms.isdigit() and int(timeout_ms) > 0 else 30.0
    events = pbx.spies.originate(now, aid, channel, data, caller, timeout,
                                 (req.get("ChannelId"), req.get("OtherChannelId")))
    if events is None:
        events = [m.originate_response(aid, False, channel, "ChanSpy", data, 0, "<unknown>", *caller, None)]
    return Outcome([m.response("Success", aid, "Originate successfully queued")], events)


def hangup(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    channel = req.get("Channel")
    if not channel:
        return _error(aid, "No channel specified")
    cause = req.get("Cause")
    events = pbx.hangup(now, channel, int(cause) if cause.isdigit() else 0)
    return Outcome([m.response("Success", aid, "Channel Hungup")], events)


def redirect(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    channel = req.get("Channel")
    if not channel:
        return _error(aid, "Channel not specified")
    events = pbx.redirect(now, channel, req.get("Context"), req.get("Exten"))
    return Outcome([m.response("Success", aid, "Redirect successful")], events)


def atxfer(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    """Attended transfer from the operator's leg in a call: it consults Exten@Context first."""
    channel, exten = req.get("Channel"), req.get("Exten")
    if not channel:
        return _error(aid, "No channel specified")
    if not exten:
        return _error(aid, "No extension specified")
    events = pbx.atxfer(now, channel, exten, req.get("Context"))
    return Outcome([m.response("Success", aid, "Atxfer successfully queued")], events)


def setvar(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    """Setvar on a live channel (a transfer sets TRANSFER_TO before its Redirect)."""
    name, channel = req.get("Variable"), req.get("Channel")
    if not name:
        return _error(aid, "No variable specified")
    found = pbx.find_channel(channel) if channel else None
    if found is None:
        return _error(aid, "Channel not found")
    ch = found[2]
    ch.variables[name] = req.get("Value")
    return Outcome([m.response("Success", aid, "Variable Set")], [m.var_set(ch, name, req.get("Value"))])


def _list(aid: str | None, message: str, items: list[Message], complete: str) -> Outcome:
    return Outcome([m.list_start(aid, message), *items, m.list_complete(complete, aid, len(items))])


def queue_status(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    items = pbx.queue_status(now, aid, req.get("Queue"), req.get("Member"))
    return _list(aid, "Queue status will follow", items, "QueueStatusComplete")


def queue_summary(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    items = pbx.queue_summary(now, aid, req.get("Queue"))
    return _list(aid, "Queue summary will follow", items, "QueueSummaryComplete")


def core_show_channels(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    items = [m.core_show_channel(aid, ch, now) for ch in pbx.channels()]
    return _list(aid, "Channels will follow", items, "CoreShowChannelsComplete")


def queue_pause(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    interface, paused = req.get("Interface"), req.get("Paused")
    if not interface or not paused:
        return _error(aid, "Need 'Interface' and 'Paused' parameters.")
    on = paused.lower() in TRUE
    events = pbx.pause(now, interface, on, req.get("Queue") or None, req.get("Reason"))
    return Outcome([m.response("Success", aid, f"Interface {'paused' if on else 'unpaused'} successfully")],
                   events)


def queue_add(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    if not req.get("Queue"):
        return _error(aid, "'Queue' not specified.")
    if not req.get("Interface"):
        return _error(aid, "'Interface' not specified.")
    penalty = req.get("Penalty")
    events = pbx.add_member(now, req.get("Queue"), req.get("Interface"), req.get("MemberName"),
                            req.get("StateInterface"), int(penalty) if penalty.isdigit() else 0,
                            req.get("Paused").lower() in TRUE)
    return Outcome([m.response("Success", aid, "Added interface to queue")], events)


def queue_remove(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    if not req.get("Queue") or not req.get("Interface"):
        return _error(aid, "Need 'Queue' and 'Interface' parameters.")
    events = pbx.remove_member(req.get("Queue"), req.get("Interface"))
    return Outcome([m.response("Success", aid, "Removed interface from queue")], events)


def queue_penalty(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    interface, penalty = req.get("Interface"), req.get("Penalty")
    if not interface or not penalty:
        return _error(aid, "Need 'Interface' and 'Penalty' parameters.")
    value = int(penalty) if penalty.lstrip("-").isdigit() else -1
    events = pbx.set_penalty(interface, value, req.get("Queue") or None)
    return Outcome([m.response("Success", aid, "Interface penalty set successfully")], events)


def command(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome:
    """CLI over AMI (Asterisk 14+ form): one `Output:` header per line."""
    cli = " ".join(req.get("Command").split())
    if cli == "core show version":
        lines = [m.VERSION]
    else:
        lines = [f"No such command '{cli}' (see 'core show help {cli}' for other possible commands)"]
    reply = m.response("Success", aid, "Command output follows") + [("Output", line) for line in lines]
    return Outcome([reply])


ACTIONS: dict[str, Callable[[Pbx, float, Request, str | None], Outcome]] = {
    "ping": ping, "originate": originate, "hangup": hangup, "redirect": redirect, "setvar": setvar,
    "atxfer": atxfer,
    "queuestatus": queue_status, "queuesummary": queue_summary, "coreshowchannels": core_show_channels,
    "queuepause": queue_pause, "queueadd": queue_add, "queueremove": queue_remove,
    "queuepenalty": queue_penalty, "command": command,
}


def run_action(pbx: Pbx, now: float, req: Request, aid: str | None) -> Outcome | None:
    """None for an action the simulator does not know (the caller answers `Invalid/unknown command`)."""
    handler = ACTIONS.get(req.get("Action").lower())
    if handler is None:
        return None
    try:
        return handler(pbx, now, req, aid)
    except PbxError as exc:
        return _error(aid, str(exc))
