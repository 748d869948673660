"""Attended transfer in the simulated PBX: AMI `Atxfer` on the operator's leg of a call.

`Atxfer Channel=Local/101@agents-XXXXXXXX;1 Exten=102 Context=agents` sets TRANSFER_CONTEXT on
that leg, puts the caller on hold (MusicOnHoldStart; alone in the call's bridge) and moves the
operator's leg into a consultation bridge while it dials `Local/102@agents`: a Local pair with
the call's Linkedid, DialBegin/DialState/DialEnd naming the operator's leg as the dialler. Then,
as Asterisk 22's bridge_basic does:
- the operator hangs up with the colleague on the line: app_queue's AgentComplete Reason
  transfer, the colleague's leg moves into the caller's bridge, `AttendedTransfer Result:
  Success, DestType: Bridge`, the operator's legs hang up; the colleague now talks to the caller;
- the colleague does not answer in ATXFER_NO_ANSWER_SECONDS, rejects, hangs up, or is busy (BUSY at
  once): the colleague's legs hang up and the operator's leg goes back to the caller;
- the operator hangs up while the colleague's phone still rings: the consultation is dropped
  first (Asterisk would complete a "blond" transfer; the simulator does not model that).
Pure like `model.Pbx`: every method takes `now` and returns the events.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callcard.pbx_sim import messages as m
from callcard.pbx_sim import model
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.timers import CONSULTS, Timer

if TYPE_CHECKING:
    from callcard.pbx_sim.model import Call, Channel, Pbx, Ring

ATXFER_NO_ANSWER_SECONDS = 15.0  # features.conf atxfernoanswertimeout: then the operator gets the caller back


@dataclass
class Consult:
    call: Call
    agent: Ring  # the operator's answered leg pair: `agent.one` dials and consults
    target: Ring  # the colleague's leg pair, outside any queue
    bridge: str  # the consultation bridge; the caller stays in `call.inner.bridge`
    rank: int = 0  # creation order: on a clock tie the older consultation's timer fires first


class Consultations:
    """Attended transfers under way in one `Pbx`, by the call's Linkedid."""

    def __init__(self, pbx: Pbx) -> None:
        self._pbx = pbx
        self.by_call: dict[str, Consult] = {}

    def of(self, call: Call) -> Consult | None:
        return self.by_call.get(call.linkedid)

    def timers(self, c: Consult) -> list[Timer]:
        """A live consultation's timers, in the order they win a clock tie (the Pbx keeps them on its heap)."""
        if self.by_call.get(c.call.linkedid) is not c or c.target.answered is not None:
            return []
        due: list[Timer] = []
        if c.target.answer_at is not None:
            due.append((c.target.answer_at, lambda t: self._answer(c, t)))
        due.append((c.target.timeout_at, lambda t: self.end(c, t, "NOANSWER", 19)))
        return due

    def channels(self) -> list[Channel]:
        return [ch for c in self.by_call.values() for ch in (c.target.one, c.target.two)]

    def busy(self) -> set[str]:
        return {c.target.member.state_interface for c in self.by_call.values()}

    # --- Atxfer -----------------------------------------------------------------------

    def start(self, now: float, channel: str, exten: str, context: str) -> list[Message]:
        pbx = self._pbx
        found = pbx.find_channel(channel)
        if found is None:
            raise model.PbxError("Channel specified does not exist")
        call, agent, ch = found
        if agent is None or agent is not call.talking or ch is not agent.one or call.linkedid in self.by_call:
            raise model.PbxError("Channel specified is not an operator's leg bridged with a caller")
        context = context or ch.context
        member = pbx._direct_member(f"Local/{exten}@{context}", now)
        busy = member.state_interface in pbx._busy()
        before = pbx._busy()
        ev: list[Message] = []
        if context:
            ch.variables["TRANSFER_CONTEXT"] = context
            ev.append(m.var_set(ch, "TRANSFER_CONTEXT", context))
        bridge = str(uuid.UUID(int=pbx._rng.getrandbits(128), version=4))
        ev += [m.moh_start(call.inner), m.bridge_leave(call.inner.bridge, 1, ch), m.bridge_create(bridge),
               m.bridge_enter(bridge, 1, ch)]
        ch.bridge = bridge
        base, target_exten, target_context = model.local_parts(member.interface)
        one, two = pbx._pair(base, target_context, target_exten, now, call.linkedid)
        one.application, one.app_data = "AppDial", "(Outgoing Line)"
        for leg in (one, two):
            leg.cid_num, leg.cid_name = call.inner.cid_num, call.inner.cid_name
            leg.con_num, leg.con_name = call.inner.cid_num, call.inner.cid_name
        ev += [m.cel(one, "CHAN_START", now), m.cel(two, "CHAN_START", now), m.newchannel(one), m.newchannel(two),
               m.newexten(one, "AppDial", "(Outgoing Line)"), m.new_callerid(one), m.new_connected_line(one),
               m.new_callerid(two), m.new_connected_line(two), m.local_bridge(one, two, False),
               m.dial_begin(ch, one, f"{target_exten}@{target_context}")]
        behaviour = pbx._behaviour(member.interface)
        answer_at = None if behaviour.answer_after is None else now + behaviour.answer_after
        target = model.Ring(member, "", one, two, now, answer_at, now + ATXFER_NO_ANSWER_SECONDS, behaviour.talk)
        consult = self.by_call[call.linkedid] = Consult(call, agent, target, bridge, pbx._timers.new_rank())
        pbx._timers.watch((CONSULTS, consult.rank), lambda: self.timers(consult))
        if busy:
            return ev + self.end(consult, now, "BUSY", 17)
        ev += pbx._status_changes(before)
        if answer_at is not None and answer_at <= now:
            return ev + self._answer(consult, now)
        two.application, two.app_data = "Ringing", ""
        one.state = 5
        return ev + [m.newexten(two, "Ringing", ""), m.newstate(one), m.dial_state(ch, one, "RINGING")]

    def _answer(self, c: Consult, now: float) -> list[Message]:
        """The colleague picks up: they and the operator talk in the consultation bridge."""
        t = c.target
        ev = self._pbx._answer_legs(t, now)
        t.answered = now
        t.two.priority, t.two.application, t.two.app_data = 3, "Wait", f"{t.talk:g}"
        t.one.bridge = c.bridge
        return ev + [m.dial_end(c.agent.one, t.one, "ANSWER"), m.bridge_enter(c.bridge, 2, t.one),
                     m.cel(t.one, "BRIDGE_ENTER", now), m.newexten(t.two, "Wait", t.two.app_data)]

    def end(self, c: Consult, now: float, status: str, cause: int) -> list[Message]:
        """The consultation fails or the colleague hangs up: the operator gets the caller back."""
        pbx, t, agent, call = self._pbx, c.target, c.agent, c.call
        before = pbx._busy()
        del self.by_call[call.linkedid]
        ev = [m.dial_end(agent.one, t.one, status)] if t.answered is None else [m.bridge_leave(c.bridge, 1, t.one)]
        ev += [m.hangup_request(t.two, cause), m.hangup(t.one, cause), m.cel(t.one, "HANGUP", now),
               m.cel(t.one, "CHAN_END", now), m.soft_hangup_request(t.two, 16), m.hangup(t.two, cause),
               m.cel(t.two, "HANGUP", now), m.cel(t.two, "CHAN_END", now),
               m.cdr(t.two, call.inner.cid_num, f'"{call.inner.cid_name}" <{call.inner.cid_num}>', "",
                     "ANSWERED" if t.answered is not None else "FAILED", now),
               m.bridge_leave(c.bridge, 0, agent.one), m.bridge_destroy(c.bridge)]
        agent.one.bridge = call.inner.bridge
        ev += [m.bridge_enter(call.inner.bridge, 2, agent.one), m.cel(agent.one, "BRIDGE_ENTER", now),
               m.moh_stop(call.inner)]
        return ev + pbx._status_changes(before)

    def complete(self, c: Consult, now: float) -> list[Message]:
        """The operator hangs up while consulting: the colleague takes their place next to the caller."""
        pbx, t, agent, call = self._pbx, c.target, c.agent, c.call
        before = pbx._busy()
        del self.by_call[call.linkedid]
        caller_bridge = call.inner.bridge
        ev = pbx._complete(call, now, "transfer", with_dest=True)
        ev += [m.bridge_leave(c.bridge, 1, t.one), m.bridge_enter(caller_bridge, 2, t.one),
               m.cel(t.one, "BRIDGE_ENTER", now), m.moh_stop(call.inner),
               m.attended_transfer(agent.one, (caller_bridge, 2), (c.bridge, 1), call.inner, t.one, caller_bridge)]
        t.one.bridge = caller_bridge
        ev += pbx._release_agent(call, agent, now, first=False)
        t.hangup_at = now + t.talk
        pbx._add_ring(call, t)
        call.talking, call.last_dest = t, t.one.name
        t.member.in_call = True
        return ev + pbx._status_changes(before)

    # --- control API and AMI Hangup ----------------------------------------------------

    def _of_phone(self, interface: str) -> Consult | None:
        base = model.local_parts(interface)[0]
        return next((c for c in self.by_call.values()
                     if model.local_parts(c.target.member.interface)[0] == base), None)

    def answer(self, now: float, interface: str) -> list[Message] | None:
        c = self._of_phone(interface)
        return None if c is None or c.target.answered is not None else self._answer(c, now)

    def hangup_agent(self, now: float, interface: str) -> list[Message] | None:
        """The colleague rejects the consultation call or hangs up on the operator."""
        c = self._of_phone(interface)
        return None if c is None else self.end(c, now, "BUSY", 17)

    def hangup(self, now: float, channel: str) -> list[Message] | None:
        c = next((c for c in self.by_call.values() if channel in (c.target.one.name, c.target.two.name)), None)
        return None if c is None else self.end(c, now, "BUSY", 17)
