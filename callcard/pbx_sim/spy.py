"""ChanSpy in the simulated PBX: `Originate Channel=<supervisor's phone>, Application=ChanSpy,
Data=<channel prefix>,<options>` (q quiet, w whisper, B barge, E exit with the spied channel).

The supervisor's phone is a Local pair like an operator's (`Local/110@agents-XXXXXXXX;1/;2`) and
rings and answers by its `AgentBehaviour`; once it answers, ;1 runs ChanSpy on the first live,
answered channel whose name starts with the prefix (a bridged one first, as app_chanspy's
`b`-less scan still prefers), and `ChanSpyStart` names both. The spy ends when the supervisor
hangs up (after their talk time, through the control API or AMI Hangup) or when the spied
channel goes; with nothing to spy on it ends at once (a real ChanSpy would keep scanning).
Pure like `model.Pbx`: every method takes `now` and returns the events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callcard.pbx_sim import messages as m
from callcard.pbx_sim.messages import Message

if TYPE_CHECKING:
    from callcard.pbx_sim.model import AgentBehaviour, Channel, Pbx

# rejected while ringing / rang out: (Hangup cause, DialStatus, OriginateResponse Reason)
_REJECTED, _RANG_OUT = (17, "BUSY", 5), (19, "NOANSWER", 3)


@dataclass
class Spy:
    action_id: str | None
    dial_string: str  # the Originate's Channel, as sent
    data: str  # ChanSpy's arguments, as sent
    interface: str  # the supervisor's configured agent interface
    one: Channel  # runs ChanSpy once answered
    two: Channel  # the supervisor's phone
    answer_at: float | None
    limit_at: float
    talk: float
    answered: float | None = None
    spyee: Channel | None = None

    @property
    def prefix(self) -> str:
        return self.data.partition(",")[0]

    @property
    def options(self) -> str:
        return self.data.partition(",")[2]


@dataclass(frozen=True)
class SpyState:
    """A spy session for the snapshot: who listens, to which channel, how (ChanSpy options)."""

    supervisor: str
    spyee: str
    options: str
    state: str  # ringing / spying


def _base(interface: str) -> str:
    return interface.removesuffix("/n")


class SpyCalls:
    """ChanSpy sessions of one `Pbx`; the Pbx asks it for timers, channels and busy devices."""

    def __init__(self, pbx: Pbx) -> None:
        self._pbx = pbx
        self.spies: dict[str, Spy] = {}

    def _agent(self, interface: str) -> tuple[str, AgentBehaviour] | None:
        return next(((k, b) for k, b in self._pbx.agents.items() if _base(k) == _base(interface)), None)

    def channels(self) -> list[Channel]:
        return [ch for spy in self.spies.values() for ch in (spy.one, spy.two)]

    def busy(self) -> set[str]:
        return {_base(spy.interface) for spy in self.spies.values()}

    def states(self) -> list[SpyState]:
        return [SpyState(spy.interface, spy.spyee.name if spy.spyee else "", spy.options,
                         "spying" if spy.answered is not None else "ringing") for spy in self.spies.values()]

    def due(self) -> list[tuple[float, Callable[[float], list[Message]]]]:
        due: list[tuple[float, Callable[[float], list[Message]]]] = []
        live: set[str] | None = None
        for spy in self.spies.values():
            if spy.answered is None:
                if spy.answer_at is not None:
                    due.append((spy.answer_at, lambda t, s=spy: self._answered(s, t)))
                due.append((spy.limit_at, lambda t, s=spy: self._failed(s, t, _RANG_OUT)))
                continue
            due.append((spy.answered + spy.talk, lambda t, s=spy: self._end(s, t)))
            if spy.spyee is not None:
                live = live if live is not None else {ch.name for ch in self._pbx.channels()}
                if spy.spyee.name not in live:  # the spied channel hung up: ChanSpy's E option
                    due.append((spy.answered, lambda t, s=spy: self._end(s, t)))
        return due

    # --- Originate --------------------------------------------------------------------

    def originate(self, now: float, action_id: str | None, channel: str, data: str, caller: tuple[str, str],
                  timeout: float, ids: tuple[str, str]) -> list[Message] | None:
        """Ring the supervisor's phone; None when `channel` is no phone the PBX has."""
        agent = self._agent(channel)
        if agent is None or not data.partition(",")[0]:
            return None
        interface, behaviour = agent
        base = _base(channel)
        target = base.split("/", 1)[1] if "/" in base else base
        exten, _, context = target.partition("@")
        one, two = self._pbx._pair(base, context or "default", exten, now, None, ids)
        num, name = caller
        for ch in (one, two):
            ch.cid_num, ch.cid_name = num or "<unknown>", name or num or "<unknown>"
            ch.con_num, ch.con_name = ch.cid_num, ch.cid_name
        one.application, one.app_data = "AppDial2", "(Outgoing Line)"
        answer_at = None if behaviour.answer_after is None else now + behaviour.answer_after
        spy = Spy(action_id, channel, data, interface, one, two, answer_at, now + timeout, behaviour.talk)
        self.spies[one.linkedid] = spy
        ev = [m.cel(one, "CHAN_START", now), m.newchannel(one), m.cel(two, "CHAN_START", now), m.newchannel(two),
              m.newexten(one, "AppDial2", "(Outgoing Line)"), m.local_bridge(one, two, not channel.endswith("/n")),
              m.dial_begin(None, one, target)]
        if answer_at is not None and answer_at <= now:
            return ev + self._answered(spy, now)
        two.priority, two.application, two.app_data = 1, "Ringing", ""
        one.state = 5
        return ev + [m.newexten(two, "Ringing", ""), m.newstate(one)]

    def _target(self, spy: Spy) -> Channel | None:
        prefix = spy.prefix.lower()
        own = {spy.one.name, spy.two.name}
        candidates = [ch for ch in self._pbx.channels()
                      if ch.name.lower().startswith(prefix) and ch.name not in own and ch.state == 6]
        return next((ch for ch in candidates if ch.bridge), candidates[0] if candidates else None)

    def _answered(self, spy: Spy, now: float) -> list[Message]:
        one, two = spy.one, spy.two
        two.priority, two.application, two.app_data = 2, "Answer", ""
        two.state = one.state = 6
        two.answered = one.answered = spy.answered = now
        ev = [m.newexten(two, "Answer", ""), m.newstate(two), m.cel(two, "ANSWER", now), m.newstate(one),
              m.dial_end(None, one, "ANSWER"),
              m.originate_response(spy.action_id, True, one.name, "ChanSpy", spy.data, 4, one.uniqueid,
                                   one.cid_num, one.cid_name, one)]
        two.priority, two.application, two.app_data = 3, "Wait", f"{spy.talk:g}"
        one.application, one.app_data = "ChanSpy", spy.data
        ev += [m.newexten(two, "Wait", two.app_data), m.newexten(one, "ChanSpy", spy.data)]
        spy.spyee = self._target(spy)
        if spy.spyee is None:
            return ev + self._end(spy, now)
        return ev + [m.chan_spy("ChanSpyStart", one, spy.spyee)]

    # --- endings ----------------------------------------------------------------------

    def _hangups(self, spy: Spy, cause: int, now: float) -> list[Message]:
        ev: list[Message] = []
        for ch in (spy.two, spy.one):
            ev += [m.hangup(ch, cause), m.cel(ch, "HANGUP", now), m.cel(ch, "CHAN_END", now)]
        return ev

    def _end(self, spy: Spy, now: float) -> list[Message]:
        """ChanSpy stops (spied channel gone, or the supervisor hung up); the pair hangs up."""
        if self.spies.pop(spy.one.linkedid, None) is None:
            return []
        ev = [m.chan_spy("ChanSpyStop", spy.one, spy.spyee)] if spy.spyee is not None else []
        ev += [m.soft_hangup_request(spy.two, 16)] + self._hangups(spy, 16, now)
        ev += [m.cdr(spy.one, spy.one.cid_num, f'"{spy.one.cid_name}" <{spy.one.cid_num}>', "", "ANSWERED", now),
               m.cel(spy.one, "LINKEDID_END", now)]
        return ev

    def _failed(self, spy: Spy, now: float, how: tuple[int, str, int]) -> list[Message]:
        """The supervisor's phone rang out or was rejected: a failed OriginateResponse, as outbound's."""
        if self.spies.pop(spy.one.linkedid, None) is None:
            return []
        cause, status, reason = how
        ev = [m.dial_end(None, spy.one, status)] + self._hangups(spy, cause, now)
        return ev + [m.cel(spy.one, "LINKEDID_END", now),
                     m.originate_response(spy.action_id, False, spy.dial_string, "ChanSpy", spy.data, reason,
                                          "<unknown>", spy.one.cid_num, spy.one.cid_name, None)]

    # --- control API and AMI Hangup ----------------------------------------------------

    def _of(self, interface: str) -> Spy | None:
        return next((s for s in self.spies.values() if _base(s.interface) == _base(interface)), None)

    def answer(self, now: float, interface: str) -> list[Message] | None:
        spy = self._of(interface)
        return None if spy is None or spy.answered is not None else self._answered(spy, now)

    def hangup_agent(self, now: float, interface: str) -> list[Message] | None:
        spy = self._of(interface)
        return None if spy is None else self._hang_up(spy, now)

    def hangup(self, now: float, channel: str) -> list[Message] | None:
        spy = next((s for s in self.spies.values() if channel in (s.one.name, s.two.name)), None)
        return None if spy is None else self._hang_up(spy, now)

    def _hang_up(self, spy: Spy, now: float) -> list[Message]:
        return self._end(spy, now) if spy.answered is not None else self._failed(spy, now, _REJECTED)
