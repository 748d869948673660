"""Outbound calls in the simulated PBX: the two Originate shapes of the recorded dialplan.

* Click-to-call: `Originate Channel=Local/<ext>@agents[/n]` (any configured agent interface),
  `Context=outbound`, `Exten=<number>`: the operator's phone rings first; once it answers
  (OriginateResponse Reason 4) the answered leg runs `[outbound] <number>` and dials the customer.
* Dialler: `Originate Channel=Local/<number>@outbound`, `Context=connect-agent`, `Exten=<ext>`:
  the customer first; once they answer the leg runs `Dial(Local/<ext>@agents/n,20,tT)`.
* Predictive dialler: `Context=dialler`: the answered customer's leg waits in `[dialler]`
  (`Wait(2)`) for an AMI Redirect (by channel name or uniqueid, as Asterisk allows) to
  `[connect-agent] <ext>` or `[dialler-abandon] s`; unredirected after 2 s it goes on to
  `[dialler-abandon]`: Playback(callcard-abandoned), Hangup.

In both dialler shapes an operator who is busy, unknown to `[agents]` or silent for 20 s fails the
Dial and `[connect-agent]` goes on to `[dialler-abandon]` too. A Redirect also moves a customer out
of the apology or away from a ringing or talking operator, as it would in Asterisk.

The customer is always a Local pair `Local/<number>@outbound-XXXXXXXX;1/;2` whose ;2 plays the
recorded `[outbound]` dialplan: `OUT_RESULT` (or the number's last digit) 1 answers and hangs up
`OUT_TALK` s later (default 4), whatever its ;1 is doing, 2 Busy(), 3 rings until the Originate
timeout (at most 60 s), 4 Congestion(); any other digit answers. A dialler call without OUT_RESULT
follows the config's `CustomerModel` when there is one. Pure like `model.Pbx`: every method takes
`now` and returns the events, nothing awaits.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callcard.pbx_sim import messages as m
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.timers import OUTBOUND, Timer

if TYPE_CHECKING:
    from callcard.pbx_sim.model import AgentBehaviour, Channel, Pbx


class PbxError(Exception):
    """An action the PBX refuses; the message is the AMI error text."""

ANSWER, BUSY, NOANSWER, CONGESTION = "ANSWER", "BUSY", "NOANSWER", "CONGESTION"
CUSTOMER_RESULTS = {"2": BUSY, "3": NOANSWER, "4": CONGESTION}
# DialStatus -> (Hangup cause, Cdr disposition, OriginateResponse Reason)
FAILURES = {BUSY: (17, "BUSY", 5), NOANSWER: (19, "NO ANSWER", 3), CONGESTION: (34, "FAILED", 8)}
CUSTOMER_RING_MAX = 60.0  # `[outbound]` 3: Ringing(), Wait(60)
CONNECT_AGENT_TIMEOUT = 20.0  # `[connect-agent]`: Dial(Local/<ext>@agents/n,20,tT)
DIALLER_HOLD = 2.0  # `[dialler]`: Wait(2), then `[dialler-abandon]`
ABANDON_MESSAGE = 3.0  # length of the callcard-abandoned recording


@dataclass
class Party:
    """One end of an outbound call: a Local pair whose ;2 is the operator's phone or the customer."""

    one: Channel
    two: Channel
    result: str  # what the party will do: ANSWER, BUSY, NOANSWER, CONGESTION
    decide_at: float | None  # when it answers or refuses on its own; None: only the control API
    limit_at: float  # rings no longer than this (Originate or Dial timeout)
    talk: float
    interface: str = ""  # the agent interface for an operator, "" for the customer
    answered: float | None = None
    talk_from_bridge: bool = False  # `talk` counts from the bridge with the operator, not the answer


@dataclass
class Outbound:
    action_id: str | None
    dial_string: str  # the Originate's Channel, as sent
    context: str
    exten: str
    caller: tuple[str, str]
    variables: list[tuple[str, str]]
    timeout: float
    first: Party
    second: Party | None = None
    bridge: str = ""
    bridged_at: float = 0.0
    hold_until: float | None = None  # the answered customer waits in `[dialler]` until then
    abandon_until: float | None = None  # the customer hears the abandon message until then
    rank: int = 0  # creation order: on a clock tie the older call's timer fires first

    @property
    def linkedid(self) -> str:
        return self.first.one.linkedid

    @property
    def customer_first(self) -> bool:
        """A dialler shape (`[dialler]`, `[connect-agent]`): the customer first, an operator later."""
        return self.context != "outbound"

    def parties(self) -> list[Party]:
        return [self.first] + ([self.second] if self.second is not None else [])

    @property
    def agent(self) -> Party | None:
        return next((p for p in self.parties() if p.interface), None)

    @property
    def customer_number(self) -> str:
        return self.exten if self.context == "outbound" else _exten_of(self.dial_string)


def _exten_of(dial_string: str) -> str:
    """`Local/101@agents/n` -> `101`."""
    target = dial_string.split("/", 1)[1] if "/" in dial_string else dial_string
    return target.partition("@")[0]


def _base(interface: str) -> str:
    return interface.removesuffix("/n")


def _matches_x_bang(exten: str) -> bool:
    """`_X!`: a digit, then anything (campaign ids and extensions of any length)."""
    return exten[:1].isdigit()


class OutboundCalls:
    """Outbound calls of one `Pbx`; the Pbx asks it for timers, channels and busy operators."""

    def __init__(self, pbx: Pbx) -> None:
        self._pbx = pbx
        self.calls: dict[str, Outbound] = {}
        self._customer_rng: random.Random | None = None

    # --- lookups ----------------------------------------------------------------------

    def _agent(self, interface: str) -> tuple[str, AgentBehaviour] | None:
        """The configured agent behind `interface`, with or without `/n`."""
        return next(((k, b) for k, b in self._pbx.agents.items() if _base(k) == _base(interface)), None)

    def busy(self) -> set[str]:
        """State interfaces of operators in an outbound call (ringing included), as for queue legs."""
        return {_base(p.interface) for out in self.calls.values() for p in out.parties() if p.interface}

    def channels(self) -> list[Channel]:
        return [ch for out in self.calls.values() for p in out.parties() for ch in (p.one, p.two)]

    def timers(self, out: Outbound) -> list[Timer]:
        """A live call's timers, in the order they win a clock tie (the Pbx keeps them on its heap)."""
        if self.calls.get(out.linkedid) is not out:
            return []
        due: list[Timer] = []
        if out.hold_until is not None:
            due.append((out.hold_until, lambda t: self._hold_over(out, t)))
        if out.abandon_until is not None:
            due.append((out.abandon_until, lambda t: self._abandon_done(out, t)))
        for p in out.parties():
            if p.answered is None:
                if p.decide_at is not None:
                    due.append((p.decide_at, lambda t, q=p: self._decide(out, q, t)))
                due.append((p.limit_at, lambda t, q=p: self._failed(out, q, t, NOANSWER)))
            elif out.bridge:
                start = out.bridged_at if p.talk_from_bridge else p.answered
                due.append((start + p.talk, lambda t, q=p: self._talk_end(out, q, t)))
            elif not p.interface and not p.talk_from_bridge:
                # `[outbound]` Wait(OUT_TALK) runs from the answer: the customer also hangs up on
                # the hold, the apology or an operator still ringing
                due.append((p.answered + p.talk, lambda t, q=p: self._party_hangs_up(out, q, t)))
        return due

    def _watch(self, out: Outbound) -> None:
        """After anything that may give the call a timer (a new party, an answer, the hold, the apology)."""
        self._pbx._timers.watch((OUTBOUND, out.rank), lambda: self.timers(out))

    # --- Originate --------------------------------------------------------------------

    def originate(self, now: float, action_id: str | None, channel: str, context: str, exten: str,
                  caller: tuple[str, str], variables: list[tuple[str, str]], timeout: float,
                  ids: tuple[str, str]) -> list[Message] | None:
        """Start an outbound call; None when the Channel/Context pair is not one the dialplan has."""
        base = _base(channel)
        target = channel.split("/", 1)[1] if "/" in channel else channel
        number, _, chan_context = target.partition("@")
        agent = self._agent(channel)
        click_to_call = context == "outbound" and agent is not None
        dialler = _base(chan_context) == "outbound" and bool(number) and (
            context == "dialler" or (context == "connect-agent" and self._agent(f"Local/{exten}@agents") is not None))
        if not (click_to_call or dialler):
            return None
        before = self._pbx._busy()
        one, two = self._pbx._pair(base, _base(chan_context), number, now, None, ids)
        ev = [m.cel(one, "CHAN_START", now), m.newchannel(one), m.cel(two, "CHAN_START", now), m.newchannel(two)]
        one.application, one.app_data = "AppDial2", "(Outgoing Line)"
        ev.append(m.newexten(one, "AppDial2", "(Outgoing Line)"))
        for name, value in variables:
            one.variables[name] = two.variables[name] = value
            ev += [m.var_set(one, name, value), m.var_set(two, name, value)]
        num, name = caller
        for ch in (one, two):
            ch.cid_num, ch.cid_name = num or "<unknown>", name or num or "<unknown>"
            ch.con_num, ch.con_name = ch.cid_num, ch.cid_name
            ev += [m.new_callerid(ch), m.new_connected_line(ch)]
        ev += [m.local_bridge(one, two, not channel.endswith("/n")), m.dial_begin(None, one, target)]
        if agent is not None and click_to_call:
            party = self._agent_party(one, two, agent[0], agent[1], now, timeout)
        else:
            party = self._customer_party(one, two, number, variables, now, timeout, modelled=True)
        out = Outbound(action_id, channel, context, exten, caller, variables, timeout, party,
                       rank=self._pbx._timers.rank_in_place_of(self.calls.get(one.linkedid)))
        self.calls[out.linkedid] = out
        self._watch(out)
        return ev + self._pbx._status_changes(before) + self._ring(out, party, now)

    def _agent_party(self, one: Channel, two: Channel, interface: str, behaviour: AgentBehaviour,
                     now: float, limit: float) -> Party:
        decide = None if behaviour.answer_after is None else now + behaviour.answer_after
        return Party(one, two, ANSWER, decide, now + limit, behaviour.talk, interface=interface)

    def _customer_party(self, one: Channel, two: Channel, number: str, variables: list[tuple[str, str]],
                        now: float, limit: float, *, modelled: bool) -> Party:
        """`[outbound] <number>`; `_`/`__` inheritance prefixes on the variables are ignored.
        `modelled`: a dialler's customer, who follows the config's CustomerModel unless OUT_RESULT says."""
        values = {k.lstrip("_"): v for k, v in variables}
        if modelled and self._pbx.config.customers is not None and "OUT_RESULT" not in values:
            return self._modelled_customer(one, two, now, limit)
        digit = values.get("OUT_RESULT") or number[-1:]
        try:
            talk = float(values.get("OUT_TALK") or 4)
        except ValueError:
            talk = 4.0
        result = CUSTOMER_RESULTS.get(digit, ANSWER)
        decide = None if result == NOANSWER else now
        return Party(one, two, result, decide, now + min(limit, CUSTOMER_RING_MAX), talk)

    def _modelled_customer(self, one: Channel, two: Channel, now: float, limit: float) -> Party:
        """A debtor of the config's CustomerModel: answers after their ring time unless that is past
        the Originate timeout, or rings out; talks from the bridge with an operator on."""
        model = self._pbx.config.customers
        assert model is not None
        rng = self._customer_rng
        if rng is None:
            rng = self._customer_rng = random.Random(model.seed)
        ring_end = now + min(limit, CUSTOMER_RING_MAX)
        if rng.random() >= model.answer_prob:
            return Party(one, two, NOANSWER, None, ring_end, 0.0)
        talk = model.talk_mean
        if model.talk_sd > 0:
            shape, scale = (model.talk_mean / model.talk_sd) ** 2, model.talk_sd ** 2 / model.talk_mean
            talk = rng.gammavariate(shape, scale)
        answer_at = now + rng.uniform(model.ring_min, model.ring_max)
        if answer_at >= ring_end:
            return Party(one, two, NOANSWER, None, ring_end, 0.0)
        return Party(one, two, ANSWER, answer_at, ring_end, talk, talk_from_bridge=True)

    def _ring(self, out: Outbound, party: Party, now: float) -> list[Message]:
        """What the party's ;2 does first: Answer at once, or Ringing/Busy/Congestion."""
        if party.decide_at is not None and party.decide_at <= now:
            return self._decide(out, party, now)
        two = party.two
        two.priority, two.application, two.app_data = 1, "Ringing", ""
        party.one.state = 5
        ev = [m.newexten(two, "Ringing", ""), m.newstate(party.one)]
        if party is out.second:
            ev.append(m.dial_state(out.first.one, party.one, "RINGING"))
        return ev

    def _decide(self, out: Outbound, party: Party, now: float) -> list[Message]:
        return self._answered(out, party, now) if party.result == ANSWER else self._failed(out, party, now, party.result)

    # --- answer, dial the other end, bridge -------------------------------------------

    def _answered(self, out: Outbound, party: Party, now: float) -> list[Message]:
        one, two = party.one, party.two
        two.priority, two.application, two.app_data = 2, "Answer", ""
        two.state = one.state = 6
        two.answered = one.answered = party.answered = now
        ev = [m.newexten(two, "Answer", ""), m.newstate(two), m.cel(two, "ANSWER", now), m.newstate(one)]
        two.priority, two.application, two.app_data = 3, "Wait", f"{party.talk:g}"
        ev.append(m.newexten(two, "Wait", two.app_data))
        if party is out.first:
            self._watch(out)
            ev += [m.dial_end(None, one, "ANSWER"),
                   m.originate_response_exten(out.action_id, True, one.name, out.context, out.exten, 4,
                                              one.uniqueid, *out.caller, one)]
            if out.context == "dialler":
                return ev + self._hold(out, now)
            return ev + self._dial_second(out, now)
        first = out.first.one
        out.bridged_at = now
        out.bridge = str(uuid.UUID(int=self._pbx._rng.getrandbits(128), version=4))
        first.bridge = one.bridge = out.bridge
        self._watch(out)
        return ev + [m.dial_end(first, one, "ANSWER"), m.bridge_create(out.bridge),
                     m.bridge_enter(out.bridge, 1, one), m.cel(one, "BRIDGE_ENTER", now),
                     m.bridge_enter(out.bridge, 2, first), m.cel(first, "BRIDGE_ENTER", now)]

    def _dial_second(self, out: Outbound, now: float, context: str = "", exten: str = "") -> list[Message]:
        """The answered first leg runs the Originate's Context/Exten (or a Redirect's): Dial the other end.
        An extension `[agents]` lacks fails at once (CHANUNAVAIL); a busy operator's phone gives BUSY."""
        first = out.first.one
        exten = exten or out.exten
        first.context, first.exten, first.priority = context or out.context, exten, 1
        if out.context == "outbound":
            base, target, limit = f"Local/{exten}@outbound", f"{exten}@outbound", out.timeout
        else:
            base, target, limit = f"Local/{exten}@agents", f"{exten}@agents/n", CONNECT_AGENT_TIMEOUT
        first.application, first.app_data = "Dial", f"Local/{target},{limit:g},tT"
        ev = [m.newexten(first, "Dial", first.app_data)]
        found = self._agent(base)
        if out.customer_first and found is None:
            return ev + self._goto_abandon(out, now)
        one, two = self._pbx._pair(base, base.rsplit("@", 1)[1], exten, now, out.linkedid)
        ev += [m.cel(one, "CHAN_START", now), m.newchannel(one), m.cel(two, "CHAN_START", now), m.newchannel(two)]
        for ch in (one, two):
            ch.cid_num, ch.cid_name = first.cid_num, first.cid_name
            ch.con_num, ch.con_name = first.cid_num, first.cid_name
            ev += [m.new_callerid(ch), m.new_connected_line(ch)]
        ev += [m.local_bridge(one, two, False), m.dial_begin(first, one, target)]
        before = self._pbx._busy()
        if found is None:
            party = self._customer_party(one, two, exten, out.variables, now, limit, modelled=False)
        elif out.customer_first and _base(found[0]) in before:  # already ringing or talking elsewhere
            party = Party(one, two, BUSY, now, now + limit, 0.0, interface=found[0])
        else:
            party = self._agent_party(one, two, found[0], found[1], now, limit)
        out.second = party
        self._watch(out)
        return ev + self._pbx._status_changes(before) + self._ring(out, party, now)

    # --- the predictive dialler's hold, Redirect and abandon message ----------------------

    def _hold(self, out: Outbound, now: float) -> list[Message]:
        """`[dialler] <exten>`: the answered customer waits in silence for the dialler's Redirect."""
        first = out.first.one
        first.context, first.exten, first.priority = "dialler", out.exten, 1
        first.application, first.app_data = "Wait", f"{DIALLER_HOLD:g}"
        out.hold_until = now + DIALLER_HOLD
        self._watch(out)
        return [m.newexten(first, "Wait", first.app_data)]

    def _hold_over(self, out: Outbound, now: float) -> list[Message]:
        out.hold_until = None
        return self._goto_abandon(out, now)

    def _goto_abandon(self, out: Outbound, now: float) -> list[Message]:
        """Priority 2 of `[dialler]` (Wait over) and `[connect-agent]` (Dial failed): Goto the apology."""
        first = out.first.one
        first.priority, first.application, first.app_data = 2, "Goto", "dialler-abandon,s,1"
        return [m.newexten(first, "Goto", first.app_data)] + self._to_abandon(out, now)

    def _find(self, channel: str) -> tuple[Outbound, Party, Channel] | None:
        """The outbound call and party with a channel of that name or uniqueid (Asterisk takes both)."""
        for out in self.calls.values():
            for party in out.parties():
                for ch in (party.one, party.two):
                    if channel in (ch.name, ch.uniqueid):
                        return out, party, ch
        return None

    def redirect(self, now: float, channel: str, context: str, exten: str) -> list[Message] | None:
        """AMI Redirect of an outbound call's leg, by channel name or uniqueid; None when no outbound
        call has that channel (the Pbx then tries its inbound calls). What the dialplan can do with it:
        the answered customer's ;1 of a dialler call goes to `[connect-agent] <ext>` or
        `[dialler-abandon] s`, leaving its Wait, its Playback or its Dial (the operator leg hangs up)."""
        found = self._find(channel)
        if found is None:
            return None
        out, _, ch = found
        movable = out.customer_first and ch is out.first.one and out.first.answered is not None
        to_agent = context == "connect-agent" and _matches_x_bang(exten)
        if not movable or not (to_agent or (context == "dialler-abandon" and exten == "s")):
            raise PbxError("Redirect failed")
        ev = self._leave(out, now)
        if to_agent:
            return ev + self._dial_second(out, now, context, exten)
        return ev + self._to_abandon(out, now)

    def _leave(self, out: Outbound, now: float) -> list[Message]:
        """The redirected ;1 stops what it runs; a Dial()'s operator leg is cancelled or hung up."""
        out.hold_until = out.abandon_until = None
        second = out.second
        if second is None:
            return []
        before = self._pbx._busy()
        first = out.first.one
        out.second = None
        if out.bridge:
            bridge, out.bridge = out.bridge, ""
            ev = [m.bridge_leave(bridge, 1, first), m.bridge_leave(bridge, 0, second.one), m.bridge_destroy(bridge)]
            first.bridge = second.one.bridge = ""
            ev += self._hangups(second, 16, now) + [self._cdr(out, second.two, "", "ANSWERED", now)]
        else:
            ev = [m.dial_end(first, second.one, "CANCEL")] + self._hangups(second, 16, now)
            ev.append(self._cdr(out, second.two, "", "NO ANSWER", now))
        return ev + self._pbx._status_changes(before) + self._pbx._dispatch(now)

    def _to_abandon(self, out: Outbound, now: float) -> list[Message]:
        """`[dialler-abandon] s`: the recorded apology, then Hangup()."""
        first = out.first.one
        out.hold_until = None
        first.context, first.exten, first.priority = "dialler-abandon", "s", 1
        first.application, first.app_data = "Playback", "callcard-abandoned"
        out.abandon_until = now + ABANDON_MESSAGE
        self._watch(out)
        return [m.newexten(first, "Playback", "callcard-abandoned")]

    def _abandon_done(self, out: Outbound, now: float) -> list[Message]:
        first = out.first.one
        first.priority, first.application, first.app_data = 2, "Hangup", ""
        return [m.newexten(first, "Hangup", "")] + self._hangs_up_alone(out, now)

    def _hangs_up_alone(self, out: Outbound, now: float) -> list[Message]:
        """The answered customer's pair goes while no other party is dialled (hold or apology)."""
        before = self._pbx._busy()
        out.hold_until = out.abandon_until = None
        first = out.first
        ev = self._hangups(first, 16, now)
        ev += [self._cdr(out, first.two, "", "ANSWERED", now), self._cdr(out, first.one, "", "ANSWERED", now)]
        return ev + self._finish(out, before, now)

    # --- endings ----------------------------------------------------------------------

    def _hangups(self, party: Party, cause: int, now: float) -> list[Message]:
        ev: list[Message] = []
        for ch in (party.two, party.one):
            if ch.bridge:
                ev.append(m.bridge_leave(ch.bridge, 1, ch))
                ch.bridge = ""
            ev += [m.hangup(ch, cause), m.cel(ch, "HANGUP", now), m.cel(ch, "CHAN_END", now)]
        return ev

    def _cdr(self, out: Outbound, ch: Channel, dest: str, disposition: str, now: float) -> Message:
        num, name = out.caller
        return m.cdr(ch, num, f'"{name or num}" <{num}>', dest, disposition, now)

    def _finish(self, out: Outbound, before: set[str], now: float) -> list[Message]:
        del self.calls[out.linkedid]
        end = [m.cel(out.first.one, "LINKEDID_END", now)]
        return end + self._pbx._status_changes(before) + self._pbx._dispatch(now)

    def _failed(self, out: Outbound, party: Party, now: float, status: str) -> list[Message]:
        """The party refused or never answered: DialEnd, Hangups with the cause, Cdr, and for the
        first party a failed OriginateResponse (dial string as Channel, `Uniqueid: <unknown>`)."""
        before = self._pbx._busy()
        cause, disposition, reason = FAILURES[status]
        if not party.interface:
            party.two.application = {BUSY: "Busy", CONGESTION: "Congestion"}.get(status, party.two.application)
        if party is out.first:
            ev = [m.dial_end(None, party.one, status)] + self._hangups(party, cause, now)
            ev += [self._cdr(out, party.two, "", disposition, now), self._cdr(out, party.one, "", disposition, now),
                   m.originate_response_exten(out.action_id, False, out.dial_string, out.context, out.exten,
                                              reason, "<unknown>", *out.caller, None)]
            return ev + self._finish(out, before, now)
        first = out.first
        ev = [m.dial_end(first.one, party.one, status)] + self._hangups(party, cause, now)
        if out.customer_first:  # `[connect-agent]` goes on to `[dialler-abandon]`
            out.second = None
            ev += [self._cdr(out, party.two, "", disposition, now)] + self._pbx._status_changes(before)
            return ev + self._pbx._dispatch(now) + self._goto_abandon(out, now)
        ev += [self._cdr(out, party.two, "", disposition, now)] + self._hangups(first, cause, now)
        ev += [self._cdr(out, first.one, party.one.name, disposition, now),
               self._cdr(out, first.two, "", "ANSWERED", now)]
        return ev + self._finish(out, before, now)

    def _talk_end(self, out: Outbound, party: Party, now: float) -> list[Message]:
        """`party` hangs up first (cause 16); the other end follows and the bridge goes."""
        before = self._pbx._busy()
        other = out.first if party is out.second else out.second
        assert other is not None
        bridge = out.bridge
        ev = self._hangups(party, 16, now)
        other.one.bridge = ""
        ev += [m.bridge_leave(bridge, 0, other.one), m.bridge_destroy(bridge)] + self._hangups(other, 16, now)
        second = out.second
        assert second is not None
        ev += [self._cdr(out, out.first.two, "", "ANSWERED", now), self._cdr(out, second.two, "", "ANSWERED", now),
               self._cdr(out, out.first.one, second.one.name, "ANSWERED", now)]
        self._pbx.record(out.linkedid, out.first.one.created, now - out.bridged_at)
        return ev + self._finish(out, before, now)

    def _cancel(self, out: Outbound, now: float) -> list[Message]:
        """The first party hangs up while the second still rings: Dial is cancelled."""
        before = self._pbx._busy()
        second = out.second
        assert second is not None
        ev = [m.dial_end(out.first.one, second.one, "CANCEL")] + self._hangups(second, 16, now)
        ev += [self._cdr(out, second.two, "", "NO ANSWER", now)] + self._hangups(out.first, 16, now)
        ev += [self._cdr(out, out.first.one, second.one.name, "NO ANSWER", now),
               self._cdr(out, out.first.two, "", "ANSWERED", now)]
        return ev + self._finish(out, before, now)

    def _party_hangs_up(self, out: Outbound, party: Party, now: float) -> list[Message]:
        if party.answered is None:
            return self._failed(out, party, now, BUSY)  # a ringing phone rejected: busy
        if out.bridge:
            return self._talk_end(out, party, now)
        if out.second is None:
            return self._hangs_up_alone(out, now)
        return self._cancel(out, now)

    # --- control API and AMI Hangup ----------------------------------------------------

    def _agent_party_of(self, interface: str) -> tuple[Outbound, Party] | None:
        for out in self.calls.values():
            agent = out.agent
            if agent is not None and _base(agent.interface) == _base(interface):
                return out, agent
        return None

    def answer(self, now: float, interface: str) -> list[Message] | None:
        """The operator picks up their ringing phone; None when it is not ringing for an outbound call."""
        found = self._agent_party_of(interface)
        if found is None or found[1].answered is not None:
            return None
        return self._answered(found[0], found[1], now)

    def hangup_agent(self, now: float, interface: str) -> list[Message] | None:
        """The operator hangs up (or rejects the ringing phone); None without an outbound call."""
        found = self._agent_party_of(interface)
        return None if found is None else self._party_hangs_up(found[0], found[1], now)

    def hangup(self, now: float, channel: str) -> list[Message] | None:
        """AMI Hangup of any leg (name or uniqueid): that party hangs up; None when not outbound."""
        found = self._find(channel)
        if found is None:
            return None
        out, party, _ = found
        return self._party_hangs_up(out, party, now)

    def states(self) -> list[tuple[Outbound, str]]:
        """(call, "ringing" | "talking" | "up") for the snapshot; "up": an answered dialler customer
        on hold or hearing the apology, no operator dialled."""
        return [(out, "talking" if out.bridge else "ringing" if out.second or out.first.answered is None else "up")
                for out in self.calls.values()]

