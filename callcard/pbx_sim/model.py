"""Pure PBX state: queues, members, simulated operators and callers, driven by a simulated clock.

`Pbx` never awaits and never reads a clock: every method takes `now` (simulated epoch seconds)
and returns the AMI events it causes, in the order Asterisk 22 emits them. The server owns time
and sockets; tests can drive this class directly.
"""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass, field

from callcard.pbx_sim import messages as m
from callcard.pbx_sim.agi import AgiLeg, AgiStep
from callcard.pbx_sim.atxfer import Consultations
from callcard.pbx_sim.messages import Message
from callcard.pbx_sim.outbound import OutboundCalls, PbxError
from callcard.pbx_sim.spy import SpyCalls, SpyState
from callcard.pbx_sim.timers import INBOUND, SPIES, Timer, TimerHeap

NOT_INUSE, INUSE = 1, 2
TRANSFER_RING_SECONDS = 30.0  # [transfer] colleague: Dial(${TRANSFER_TO},30), then back to the queue


# --- configuration --------------------------------------------------------------------

@dataclass(frozen=True)
class AgentBehaviour:
    """How the simulated operator behind an interface acts: None = rings until answered via the API."""

    answer_after: float | None = 0.0
    talk: float = 4.0


@dataclass(frozen=True)
class MemberConfig:
    interface: str
    name: str
    state_interface: str = ""
    penalty: int = 0


@dataclass(frozen=True)
class QueueConfig:
    name: str
    members: tuple[MemberConfig, ...] = ()
    strategy: str = "rrmemory"
    timeout: float = 15.0
    retry: float = 2.0
    service_level: int = 20


@dataclass(frozen=True)
class CustomerModel:
    """How the debtors a dialler calls behave, for benchmarks: each answers with `answer_prob`
    after a uniform ring in [ring_min, ring_max] s (else, or when that ring outlasts the Originate
    timeout, rings out), waits as long as it takes for an operator, and once put through talks a
    gamma-distributed time (mean `talk_mean`, sd `talk_sd`; sd 0: exactly the mean) and hangs up.
    Seeded: the same calls in the same order behave the same."""

    answer_prob: float
    talk_mean: float
    talk_sd: float
    ring_min: float = 2.0
    ring_max: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.answer_prob <= 1.0:
            raise ValueError(f"answer_prob is a probability in [0, 1], not {self.answer_prob}")
        if self.talk_mean <= 0 or self.talk_sd < 0:
            raise ValueError(f"talk_mean must be > 0 and talk_sd >= 0, not {self.talk_mean}/{self.talk_sd}")
        if not 0.0 <= self.ring_min <= self.ring_max:
            raise ValueError(f"need 0 <= ring_min <= ring_max, not {self.ring_min}..{self.ring_max}")


@dataclass(frozen=True)
class PbxConfig:
    """The PBX to simulate; durations are simulated seconds, `time_scale` speeds the clock up.
    `customers`: dialler calls without an OUT_RESULT variable follow this model."""

    queues: tuple[QueueConfig, ...]
    agents: dict[str, AgentBehaviour] = field(default_factory=dict)
    time_scale: float = 1.0
    auth_failure_delay: float = 1.0
    seed: int = 0
    customers: CustomerModel | None = None


def _operator(ext: int) -> MemberConfig:
    return MemberConfig(f"Local/{ext}@agents/n", f"Operator {ext}")


def default_config(time_scale: float = 1.0, customers: CustomerModel | None = None) -> PbxConfig:
    """The PBX of the recordings: sales/support/collections, operators 101..106 talk 3..8 s;
    `customers` models the debtors of dialler calls (see PbxConfig)."""
    agents = {f"Local/{ext}@agents/n": AgentBehaviour(0.0, float(ext - 98)) for ext in range(101, 107)}
    agents["Local/201@noanswer/n"] = AgentBehaviour(None, 0.0)
    return PbxConfig(
        queues=(
            QueueConfig("sales", tuple(_operator(e) for e in (101, 102, 103))),
            QueueConfig("support", (MemberConfig("Local/201@noanswer/n", "Support Ghost 201"),),
                        strategy="ringall"),
            QueueConfig("collections", tuple(_operator(e) for e in (104, 105))),
        ),
        agents=agents,
        time_scale=time_scale,
        customers=customers,
    )


# --- runtime state --------------------------------------------------------------------

@dataclass
class Channel:
    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    created: float
    priority: int = 1
    state: int = 0
    cid_num: str = "<unknown>"
    cid_name: str = "<unknown>"
    con_num: str = "<unknown>"
    con_name: str = "<unknown>"
    variables: dict[str, str] = field(default_factory=dict)
    application: str = ""
    app_data: str = ""
    answered: float | None = None
    bridge: str = ""


@dataclass
class Member:
    interface: str
    name: str
    state_interface: str
    penalty: int
    login_time: int
    dynamic: bool = False
    paused: bool = False
    reason: str = ""
    calls_taken: int = 0
    last_call: int = 0
    last_pause: int = 0
    in_call: bool = False


@dataclass
class Ring:
    """One member leg (a Local pair) rung for a caller; after answer it is the talking leg.
    `queue` is empty for a dialplan Dial() outside any queue (personal manager, colleague)."""

    member: Member
    queue: str
    one: Channel
    two: Channel
    started: float
    answer_at: float | None
    timeout_at: float
    talk: float
    answered: float | None = None
    hangup_at: float | None = None


@dataclass(frozen=True)
class Recording:
    """A call's MixMonitor file: begun as the call came in, holding `seconds` of talk."""

    linkedid: str
    started: float
    seconds: float


@dataclass
class Call:
    """An inbound call: `outer` (;1) is the caller's phone, `inner` (;2) sits in the queue."""

    outer: Channel
    inner: Channel
    give_up_at: float
    queue: str = ""
    joined: float = 0.0
    original_position: int = 0
    next_try: float = 0.0
    rings: list[Ring] = field(default_factory=list)
    talking: Ring | None = None
    hold: int = 0
    last_dest: str = ""
    priority: int = 0  # QUEUE_PRIO: placed ahead of waiting callers with a lower one
    agi: AgiLeg | None = None  # set while the inner channel runs AGI() (IVR=1)
    rank: int = 0  # creation order: on a clock tie the older call's timer fires first
    recorded: float = 0.0  # seconds bridged to an operator: what MixMonitor(…,b) wrote

    @property
    def linkedid(self) -> str:
        return self.outer.linkedid


@dataclass
class Queue:
    name: str
    strategy: str
    timeout: float
    retry: float
    service_level: int
    members: list[Member]
    callers: list[Call] = field(default_factory=list)
    holdtime: int = 0
    talktime: int = 0
    completed: int = 0
    abandoned: int = 0
    completed_in_sl: int = 0
    abandoned_in_sl: int = 0
    rr_next: int = 0

    def member(self, interface: str) -> Member | None:
        return next((x for x in self.members if x.interface == interface), None)


# --- snapshot (the truth, for comparisons) --------------------------------------------

@dataclass(frozen=True)
class MemberState:
    queue: str
    interface: str
    name: str
    status: int
    paused: bool
    reason: str
    penalty: int
    in_call: bool
    calls_taken: int


@dataclass(frozen=True)
class CallState:
    linkedid: str
    channel: str
    caller_num: str
    caller_name: str
    queue: str
    state: str
    agent: str | None


@dataclass(frozen=True)
class Snapshot:
    waiting: dict[str, list[str]]
    calls: list[CallState]
    members: list[MemberState]
    channels: list[str]
    spies: list[SpyState] = field(default_factory=list)


def local_parts(interface: str) -> tuple[str, str, str]:
    """`Local/101@agents/n` -> (`Local/101@agents`, exten `101`, context `agents`)."""
    base = interface.removesuffix("/n")
    target = base.split("/", 1)[1] if "/" in base else base
    exten, _, context = target.partition("@")
    return base, exten, context or "default"


class Pbx:
    """The call/queue state machine; every mutating method returns the events it caused."""

    def __init__(self, config: PbxConfig, start: float) -> None:
        self.config = config
        self.agents = dict(config.agents)
        self.queues: dict[str, Queue] = {
            q.name: Queue(q.name, q.strategy, q.timeout, q.retry, q.service_level,
                          [self._member(mc, int(start)) for mc in q.members])
            for q in config.queues
        }
        self.calls: dict[str, Call] = {}
        self._seq = 0
        self._local = 0
        self._dispatched_at = start
        self._rng = random.Random(config.seed)
        self._timers = TimerHeap()
        self._ringing: dict[str, int] = {}  # state interface -> member legs of inbound calls on it
        self._by_device: dict[str, list[tuple[int, Queue, Member]]] | None = None
        self.outbound = OutboundCalls(self)
        self.spies = SpyCalls(self)
        self.consults = Consultations(self)
        self.recordings: list[Recording] = []  # ended calls with talk in them, for the server to write

    @staticmethod
    def _member(mc: MemberConfig, login: int, dynamic: bool = False) -> Member:
        state = mc.state_interface or local_parts(mc.interface)[0]
        return Member(mc.interface, mc.name, state, mc.penalty, login, dynamic=dynamic)

    # --- clock-driven progress --------------------------------------------------------

    def _call_timers(self, call: Call) -> list[Timer]:
        """A live inbound call's timers, in the order they win a clock tie."""
        if self.calls.get(call.linkedid) is not call:
            return []
        due: list[Timer] = [(call.give_up_at, lambda t: self._caller_gone(call, t, 16))]
        if call.queue and not call.rings and call.talking is None and call.next_try > self._dispatched_at:
            due.append((call.next_try, self._dispatch))
        for ring in call.rings:
            if ring.answered is None:
                if ring.answer_at is not None:
                    due.append((ring.answer_at, lambda t, r=ring: self._answer(call, r, t)))
                due.append((ring.timeout_at, lambda t, r=ring: self._ring_timeout(call, r, t)))
            elif ring.hangup_at is not None:
                due.append((ring.hangup_at, lambda t: self._agent_hangs_up(call, t)))
        return due

    def _watch(self, call: Call) -> None:
        """After anything that may give the call a timer (a new call, leg, answer or retry)."""
        self._timers.watch((INBOUND, call.rank), lambda: self._call_timers(call))

    def _next_timer(self) -> Timer | None:
        """The timer due first: the heap's, or a spy's (spies are few and their end depends on
        other calls' channels, so they are scanned each time), a tie going to the earlier group."""
        first = self._timers.first()
        spy = min(self.spies.due(), key=lambda d: d[0], default=None)
        if spy is not None and (first is None or (spy[0], SPIES) < (first[0], first[1][0])):
            return spy
        return None if first is None else (first[0], first[2])

    def next_deadline(self) -> float | None:
        """Simulated time of the next thing that will happen on its own (None: nothing pending)."""
        timer = self._next_timer()
        return None if timer is None else timer[0]

    def advance(self, now: float) -> list[Message]:
        """Play out everything due up to `now`, each at its own exact simulated time."""
        events: list[Message] = []
        while (timer := self._next_timer()) is not None and timer[0] <= now:
            t, step = timer
            events += step(t)
        return events

    # --- channels ---------------------------------------------------------------------

    def _uid(self, now: float) -> str:
        uid = f"{int(now)}.{self._seq}"
        self._seq += 1
        return uid

    def _pair(self, base: str, context: str, exten: str, now: float, linkedid: str | None,
              ids: tuple[str, str] = ("", "")) -> tuple[Channel, Channel]:
        tag = f"{self._local:08x}"
        self._local += 1
        uid1 = ids[0] or self._uid(now)
        one = Channel(f"{base}-{tag};1", uid1, linkedid or uid1, context, exten, now)
        uid2 = ids[1] or (f"{ids[0]};2" if ids[0] else self._uid(now))  # Asterisk's default for ;2
        two = Channel(f"{base}-{tag};2", uid2, one.linkedid, context, exten, now, state=4)
        return one, two

    def find_channel(self, name: str) -> tuple[Call, Ring | None, Channel] | None:
        """An inbound call's channel by name or uniqueid: Asterisk's ast_channel_get_by_name takes both."""
        for call in self.calls.values():
            for ch in (call.outer, call.inner):
                if name in (ch.name, ch.uniqueid):
                    return call, None, ch
            for ring in call.rings:
                for ch in (ring.one, ring.two):
                    if name in (ch.name, ch.uniqueid):
                        return call, ring, ch
        return None

    def channels(self) -> list[Channel]:
        out: list[Channel] = []
        for call in self.calls.values():
            out += [call.outer, call.inner]
            for ring in call.rings:
                out += [ring.one, ring.two]
        return out + self.outbound.channels() + self.spies.channels() + self.consults.channels()

    # --- member status ----------------------------------------------------------------

    def _busy(self) -> set[str]:
        return set(self._ringing) | self.outbound.busy() | self.spies.busy() | self.consults.busy()

    def _add_ring(self, call: Call, ring: Ring) -> None:
        """Every member leg of an inbound call comes and goes through these two and `_end_call`: they
        keep the count of legs on live calls (`_busy` is asked several times a step) and the clock."""
        call.rings.append(ring)
        if self.calls.get(call.linkedid) is call:
            self._count_legs([ring], 1)
        self._watch(call)

    def _remove_ring(self, call: Call, ring: Ring) -> None:
        call.rings.remove(ring)
        if self.calls.get(call.linkedid) is call:
            self._count_legs([ring], -1)

    def _end_call(self, call: Call) -> None:
        """The call leaves the PBX; a leg still on it (a dialplan corner left one) stops counting as busy."""
        self._count_legs(self.calls.pop(call.linkedid).rings, -1)
        self.record(call.linkedid, call.outer.created, call.recorded)

    def record(self, linkedid: str, started: float, seconds: float) -> None:
        """A call with `seconds` of talk ended: MixMonitor (started with the call) closes its file."""
        if seconds > 0:
            self.recordings.append(Recording(linkedid, started, seconds))

    def _count_legs(self, rings: list[Ring], by: int) -> None:
        for ring in rings:
            device = ring.member.state_interface
            count = self._ringing.get(device, 0) + by
            if count:
                self._ringing[device] = count
            else:
                del self._ringing[device]

    def status(self, member: Member) -> int:
        """A Local state interface is INUSE (2) as soon as a leg exists, ringing included."""
        return INUSE if member.state_interface in self._busy() else NOT_INUSE

    def _status_changes(self, before: set[str]) -> list[Message]:
        after = self._busy()
        changed = before ^ after
        events: list[Message] = []
        for device in sorted(changed):
            events.append(m.device_state_change(device, "INUSE" if device in after else "NOT_INUSE"))
        by_device = self._members_by_device()
        for _, q, mem in sorted(entry for device in changed for entry in by_device.get(device, ())):
            status = INUSE if mem.state_interface in after else NOT_INUSE
            events.append(m.queue_member_event("QueueMemberStatus", q.name, mem, status))
        return events

    def _members_by_device(self) -> dict[str, list[tuple[int, Queue, Member]]]:
        """Queue members by state interface, numbered in queue then member order; rebuilt after
        QueueAdd/QueueRemove, so a status change does not walk every member of every queue."""
        if self._by_device is None:
            self._by_device = {}
            members = ((q, x) for q in self.queues.values() for x in q.members)
            for n, (q, x) in enumerate(members):
                self._by_device.setdefault(x.state_interface, []).append((n, q, x))
        return self._by_device

    # --- inbound call -----------------------------------------------------------------

    def originate_inbound(self, now: float, caller_num: str, caller_name: str, patience: float,
                          variables: list[tuple[str, str]], action_id: str | None = None,
                          application: str = "Wait", data: str = "", async_: bool = True,
                          ids: tuple[str, str] = ("", ""), agi: AgiLeg | None = None
                          ) -> tuple[Call, list[Message]]:
        """`Originate Local/s@inbound` with CALLER/QUEUE variables, as the recorder places calls;
        with IVR=1 and an `agi` leg the call stops in AGI() until `agi_done`."""
        one, two = self._pair("Local/s@inbound", "inbound", "s", now, None, ids)
        replaced = self.calls.get(one.linkedid)  # a reused ChannelId: the new call takes the old one's place
        call = Call(one, two, give_up_at=now + patience,
                    rank=self._timers.rank_in_place_of(replaced))
        if replaced:
            self._count_legs(replaced.rings, -1)
        self.calls[call.linkedid] = call
        self._watch(call)
        ev: list[Message] = [m.cel(one, "CHAN_START", now), m.newchannel(one),
                             m.cel(two, "CHAN_START", now), m.newchannel(two)]
        one.application, one.app_data = "AppDial2", "(Outgoing Line)"
        ev.append(m.newexten(one, "AppDial2", "(Outgoing Line)"))
        for name, value in variables:
            one.variables[name] = value
            ev.append(m.var_set(one, name, value))
        name = caller_name or caller_num
        one.cid_num, one.cid_name = caller_num, name
        ev.append(m.new_callerid(one))
        one.con_num, one.con_name = caller_num, name
        ev.append(m.new_connected_line(one))
        for var, value in variables:
            two.variables[var] = value
            ev.append(m.var_set(two, var, value))
        vars_ = dict(variables)
        two.cid_num = vars_.get("CALLER", caller_num)
        two.cid_name = vars_.get("CALLERNAME") or name
        two.con_num, two.con_name = caller_num, name
        ev += [m.new_callerid(two), m.new_connected_line(two), m.local_bridge(one, two, True),
               m.dial_begin(None, one, "s@inbound")]
        queue = vars_.get("QUEUE") or "sales"
        ivr = vars_.get("IVR", "")
        steps = [("NoOp", f"Inbound call CALLER={two.cid_num} QUEUE={vars_.get('QUEUE', '')} IVR={ivr}"),
                 ("ExecIf", f"1?Set(CALLERID(num)={two.cid_num})"),
                 ("ExecIf", (f"{int(bool(vars_.get('CALLERNAME')))}?Set(CALLERID(name)="
                            f"{vars_.get('CALLERNAME', '')})")),
                 ("Answer", "")]
        for prio, (app, appdata) in enumerate(steps, start=1):
            two.priority, two.application, two.app_data = prio, app, appdata
            ev.append(m.newexten(two, app, appdata))
        two.state, two.answered = 6, now
        ev.append(m.newstate(two))
        one.state, one.answered = 6, now
        ev.append(m.newstate(one))
        ev.append(m.cel(one, "ANSWER", now))
        one.application, one.app_data = application, data
        if async_:
            ev.append(m.originate_response(action_id, True, one.name, application, data, 4, one.uniqueid,
                                           one.cid_num, one.cid_name, one))
        ev.append(m.dial_end(None, one, "ANSWER"))
        ev += [m.device_state_change("Local/s@inbound", "INUSE")]
        two.priority, two.application, two.app_data = 5, "GotoIf", f"{int(ivr == '1')}?ivr"
        ev.append(m.newexten(two, "GotoIf", two.app_data))
        if ivr == "1" and agi is not None:
            call.agi = agi
            two.priority, two.application, two.app_data = 10, "AGI", agi.request
            return call, ev + [m.newexten(two, "AGI", agi.request)]
        two.priority, two.application, two.app_data = 6, "Set", f"QUEUE={queue}"
        ev.append(m.newexten(two, "Set", two.app_data))
        two.variables["QUEUE"] = queue
        ev.append(m.var_set(two, "QUEUE", queue))
        two.priority = 7
        ev += self._enter_queue(call, queue, now)
        return call, ev + self._dispatch(now)

    # --- FastAGI (IVR=1) ---------------------------------------------------------------

    def agi_command(self, now: float, linkedid: str, leg: AgiLeg, command: str) -> AgiStep:
        """Asterisk's reply to one AGI command; on a hung-up channel HANGUP, then 511."""
        call = self.calls.get(linkedid)
        if call is None or call.agi is not leg:
            return AgiStep(leg.dead(), now)
        return leg.execute(call.inner, now, command)

    def agi_finish(self, now: float, linkedid: str, step: AgiStep) -> list[Message]:
        """The command's end: AGIExecEnd, and the hangup the AGI asked for."""
        call = self.calls.get(linkedid)
        if call is None:
            return []
        return step.end_events + (self._caller_gone(call, now, 16) if step.hangup else [])

    def agi_done(self, now: float, linkedid: str, leg: AgiLeg, status: str) -> list[Message]:
        """The AGI script of `leg` closed the socket (SUCCESS) or nobody listened (FAILURE): the
        personal manager's phone first when the IVR set MANAGER_IFACE, else on to Queue(${QUEUE}).
        Nothing when the channel already left that AGI() (hung up, sent elsewhere by a Redirect, or
        replaced by a new call that reused its ChannelId)."""
        call = self.calls.get(linkedid)
        if call is None or call.agi is not leg:
            return []
        call.agi = None
        two = call.inner
        queue = two.variables.get("QUEUE") or "sales"
        manager = two.variables.get("MANAGER_IFACE", "")
        two.variables["AGISTATUS"] = status
        ev = [m.var_set(two, "AGISTATUS", status)]
        for prio, app, data in ((11, "NoOp", f"AGISTATUS={status} QUEUE={queue}"),
                                (12, "GotoIf", f'{int(not manager)}?queue')):
            two.priority, two.application, two.app_data = prio, app, data
            ev.append(m.newexten(two, app, data))
        if not manager:
            return ev + self._dialplan_queue(call, now)
        ring = two.variables.get("MANAGER_RING", "")
        seconds = float(ring) if ring.isdigit() and int(ring) > 0 else 15.0
        two.priority, two.application, two.app_data = 13, "Dial", f"{manager},{seconds:g}"
        ev.append(m.newexten(two, "Dial", two.app_data))
        return ev + self._ring(call, None, self._direct_member(manager, now), now, seconds)

    def _leave_agi(self, call: Call) -> list[Message]:
        """The channel leaves AGI() before the script ends (a Redirect): res_agi's AGISTATUS is
        HANGUP, and from now on the script's commands get HANGUP, then 511 (`agi_command`)."""
        call.agi = None
        call.inner.variables["AGISTATUS"] = "HANGUP"
        return [m.var_set(call.inner, "AGISTATUS", "HANGUP")]

    def _dialplan_queue(self, call: Call, now: float) -> list[Message]:
        """The `queue` label: Set(QUEUE_PRIO=${IVR_PRIORITY}), Queue(${QUEUE},tT)."""
        two = call.inner
        queue = two.variables.get("QUEUE") or "sales"
        priority = two.variables.get("IVR_PRIORITY", "")
        call.priority = int(priority) if priority.isdigit() else 0
        ev = []
        for prio, app, data in ((6, "Set", f"QUEUE={queue}"), (7, "Set", f"QUEUE_PRIO={call.priority}")):
            two.priority, two.application, two.app_data = prio, app, data
            ev.append(m.newexten(two, app, data))
        two.variables["QUEUE"] = queue
        two.variables["QUEUE_PRIO"] = str(call.priority)
        ev += [m.var_set(two, "QUEUE", queue), m.var_set(two, "QUEUE_PRIO", str(call.priority))]
        two.priority = 8
        return ev + self._enter_queue(call, queue, now) + self._dispatch(now)

    def _direct_member(self, interface: str, now: float) -> Member:
        """The phone a plain Dial() rings: the queue member with that interface, else a bare one."""
        base = local_parts(interface)[0]
        for q in self.queues.values():
            for member in q.members:
                if local_parts(member.interface)[0] == base:
                    return member
        return self._member(MemberConfig(interface, interface), int(now))

    def _behaviour(self, interface: str) -> AgentBehaviour:
        base = local_parts(interface)[0]
        found = self.agents.get(interface) or self.agents.get(f"{base}/n") or self.agents.get(base)
        return found or AgentBehaviour(None, 0.0)

    def _enter_queue(self, call: Call, queue: str, now: float) -> list[Message]:
        call.inner.application, call.inner.app_data = "Queue", f"{queue},tT"
        ev = [m.newexten(call.inner, "Queue", call.inner.app_data)]
        q = self.queues.get(queue)
        if q is None:
            ev += self._hangup_caller(call, now, 16)
            self._end_call(call)
            return ev
        position = next((i for i, c in enumerate(q.callers) if c.priority < call.priority), len(q.callers))
        q.callers.insert(position, call)
        call.queue, call.joined, call.next_try = queue, now, now
        call.original_position = position + 1
        ev += [m.device_state_change(f"Queue:{queue}", "RINGING"),
               m.queue_caller_join(call.inner, queue, position + 1, len(q.callers)),
               m.moh_start(call.inner)]
        return ev

    # --- ringing members --------------------------------------------------------------

    def _pick(self, q: Queue) -> list[Member]:
        """The free members with the lowest penalty among the free: all of them for ringall; for
        rrmemory the first from where the last pick stopped, by a scan that stops there."""
        busy = self._busy()
        members = q.members
        if q.strategy == "ringall":
            free = [x for x in members if not x.paused and x.state_interface not in busy]
            low = min((x.penalty for x in free), default=0)
            return [x for x in free if x.penalty == low]
        start = q.rr_next % len(members) if members else 0
        for level in sorted({x.penalty for x in members}):
            for idx in itertools.chain(range(start, len(members)), range(start)):
                x = members[idx]
                if x.penalty == level and not x.paused and x.state_interface not in busy:
                    q.rr_next = idx + 1
                    return [x]
        return []

    def _dispatch(self, now: float) -> list[Message]:
        """Ring free members for waiting callers (autofill: several callers at once). A ringall
        member who answers at once ends the ringing for that caller, as a later answer does: the
        legs rung before are cancelled (`_connect`), the members after are not rung."""
        self._dispatched_at = max(self._dispatched_at, now)
        ev: list[Message] = []
        for q in self.queues.values():
            for call in list(q.callers):
                if call.rings or call.next_try > now:
                    continue
                members = self._pick(q)
                if not members:
                    break  # nobody free: the callers behind get nobody either
                for member in members:
                    ev += self._ring(call, q, member, now)
                    if call.talking is not None:
                        break
        return ev

    def _ring(self, call: Call, q: Queue | None, member: Member, now: float,
              timeout: float = 0.0) -> list[Message]:
        """Ring `member` for the caller: by app_queue (`q`, AgentCalled first) or by a plain Dial()
        for `timeout` seconds (no AgentCalled: only DialBegin/DialState/DialEnd, as Asterisk)."""
        before = self._busy()
        base, exten, context = local_parts(member.interface)
        one, two = self._pair(base, context, exten, now, call.linkedid)
        ev: list[Message] = [m.cel(one, "CHAN_START", now), m.cel(two, "CHAN_START", now),
                             m.newchannel(one), m.newchannel(two)]
        one.application, one.app_data = "AppQueue" if q else "AppDial", "(Outgoing Line)"
        ev.append(m.newexten(one, one.application, one.app_data))
        one.cid_num, one.cid_name = call.inner.cid_num, call.inner.cid_name
        ev.append(m.new_callerid(one))
        one.exten = "s"
        one.con_num, one.con_name = call.inner.cid_num, call.inner.cid_name
        ev.append(m.new_connected_line(one))
        two.cid_num, two.cid_name = one.cid_num, one.cid_name
        two.con_num, two.con_name = one.cid_num, one.cid_name
        ev += [m.new_callerid(two), m.new_connected_line(two), m.local_bridge(one, two, False)]
        if q is not None:
            ev.append(m.agent_called(call.inner, one, q.name, member))
        ev.append(m.dial_begin(call.inner, one, member.interface))
        behaviour = self._behaviour(member.interface)
        answer_at = None if behaviour.answer_after is None else now + behaviour.answer_after
        timeout_at = now + (q.timeout if q else timeout)
        ring = Ring(member, q.name if q else "", one, two, now, answer_at, timeout_at, behaviour.talk)
        self._add_ring(call, ring)
        call.last_dest = one.name
        if behaviour.answer_after == 0:
            ev += self._answer_legs(ring, now) + self._status_changes(before)
            return ev + self._connect(call, ring, now)
        two.application, two.app_data = "Ringing", ""
        ev.append(m.newexten(two, "Ringing", ""))
        one.state = 5
        ev.append(m.newstate(one))
        ev += self._status_changes(before)
        return ev + [m.dial_state(call.inner, one, "RINGING")]

    def _answer_legs(self, ring: Ring, now: float) -> list[Message]:
        ring.two.priority, ring.two.application, ring.two.app_data = 2, "Answer", ""
        ring.two.state = ring.one.state = 6
        ring.two.answered = ring.one.answered = now
        return [m.newexten(ring.two, "Answer", ""), m.newstate(ring.two), m.cel(ring.two, "ANSWER", now),
                m.newstate(ring.one)]

    def _answer(self, call: Call, ring: Ring, now: float) -> list[Message]:
        return self._answer_legs(ring, now) + self._connect(call, ring, now)

    def _connect(self, call: Call, ring: Ring, now: float) -> list[Message]:
        ring.answered = now
        ring.hangup_at = now + ring.talk
        self._watch(call)
        ring.two.priority, ring.two.application, ring.two.app_data = 3, "Wait", f"{ring.talk:g}"
        before = self._busy()
        ev = [m.dial_end(call.inner, ring.one, "ANSWER")]
        for other in [r for r in call.rings if r is not ring]:
            ev += [m.dial_end(call.inner, other.one, "CANCEL")] + self._drop_legs(call, other, now, 0)
        ev += self._status_changes(before)
        call.talking = ring
        ring.member.in_call = True
        if ring.queue:
            q = self.queues[ring.queue]
            ev.append(m.moh_stop(call.inner))
            position = q.callers.index(call) + 1
            q.callers.remove(call)
            ev.append(m.queue_caller_leave(call.inner, q.name, position, len(q.callers)))
            call.hold = int(now) - int(call.joined)
            q.holdtime = (q.holdtime * 3 + call.hold) >> 2
            ev.append(m.agent_connect(call.inner, ring.one, q.name, ring.member, call.hold,
                                      int(now) - int(ring.started)))
        bridge = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        ring.one.bridge = call.inner.bridge = bridge
        ev += [m.bridge_create(bridge), m.bridge_enter(bridge, 1, ring.one),
               m.cel(ring.one, "BRIDGE_ENTER", now), m.bridge_enter(bridge, 2, call.inner),
               m.cel(call.inner, "BRIDGE_ENTER", now), m.newexten(ring.two, "Wait", ring.two.app_data)]
        return ev

    def _ring_timeout(self, call: Call, ring: Ring, now: float) -> list[Message]:
        if not ring.queue:
            return self._dial_failed(call, ring, now, "NOANSWER", 0)
        before = self._busy()
        ms = round((now - ring.started) * 1000)
        ev = [m.agent_ring_no_answer(call.inner, ring.one, ring.queue, ring.member, ms),
              m.dial_end(call.inner, ring.one, "NOANSWER"), m.dial_end(call.inner, ring.one, "CANCEL")]
        ev += self._drop_legs(call, ring, now, 0) + self._status_changes(before)
        if not call.rings:
            call.next_try = now + self.queues[call.queue].retry
            self._watch(call)
        return ev

    def _dial_failed(self, call: Call, ring: Ring, now: float, status: str, cause: int) -> list[Message]:
        """A plain Dial() nobody took (no answer, rejected): the dialplan goes on to Queue(${QUEUE})."""
        before = self._busy()
        ev = [m.dial_end(call.inner, ring.one, status)] + self._drop_legs(call, ring, now, cause)
        return ev + self._status_changes(before) + self._dialplan_queue(call, now)

    def _drop_legs(self, call: Call, ring: Ring, now: float, cause: int) -> list[Message]:
        """Hang up an unanswered member leg pair (cancelled or rang out)."""
        self._remove_ring(call, ring)
        ev = [m.hangup_request(ring.two, cause), m.hangup(ring.one, cause),
              m.cel(ring.one, "HANGUP", now), m.cel(ring.one, "CHAN_END", now),
              m.soft_hangup_request(ring.two, 16), m.hangup(ring.two, cause),
              m.cel(ring.two, "HANGUP", now), m.cel(ring.two, "CHAN_END", now),
              m.cdr(ring.two, call.inner.cid_num, _caller_id(call), "", "FAILED", now)]
        return ev

    # --- call endings -----------------------------------------------------------------

    def _leave_waiting(self, call: Call, now: float) -> list[Message]:
        """A waiting caller leaves without being served: counted as abandoned, as app_queue does."""
        q = self.queues[call.queue]
        ev = [m.moh_stop(call.inner)]
        for ring in list(call.rings):
            ev += [m.dial_end(call.inner, ring.one, "CANCEL"), m.dial_end(call.inner, ring.one, "CANCEL")]
            ev += self._drop_legs(call, ring, now, 0)
        position = q.callers.index(call) + 1
        q.callers.remove(call)
        hold = int(now) - int(call.joined)
        q.abandoned += 1
        q.abandoned_in_sl += hold <= q.service_level
        ev += [m.queue_caller_abandon(call.inner, q.name, position, call.original_position, hold),
               m.device_state_change(f"Queue:{q.name}", "NOT_INUSE"),
               m.queue_caller_leave(call.inner, q.name, position, len(q.callers))]
        call.queue = ""
        return ev

    def _cancel_dial(self, call: Call, now: float) -> list[Message]:
        """The caller leaves a plain Dial() that still rings (hangup or Redirect)."""
        ev: list[Message] = []
        for ring in list(call.rings):
            ev += [m.dial_end(call.inner, ring.one, "CANCEL")] + self._drop_legs(call, ring, now, 0)
        return ev

    def _complete(self, call: Call, now: float, reason: str, with_dest: bool) -> list[Message]:
        ring = call.talking
        assert ring is not None
        ring.member.in_call = False
        call.talking = None
        call.queue = ""
        if not ring.queue:
            return []  # a plain Dial(): no app_queue, no AgentComplete
        q = self.queues[ring.queue]
        talk = int(now) - int(ring.answered or now)
        q.completed += 1
        q.completed_in_sl += call.hold <= q.service_level
        q.talktime = talk if q.completed == 1 else (q.talktime * 3 + talk) >> 2
        ring.member.calls_taken += 1
        ring.member.last_call = int(now)
        return [m.agent_complete(call.inner, ring.one if with_dest else None, q.name, ring.member,
                                 call.hold, talk, reason)]

    def _release_agent(self, call: Call, ring: Ring, now: float, first: bool) -> list[Message]:
        """Tear down a bridged member leg pair; `first` when the operator is the one hanging up."""
        bridge = ring.one.bridge
        ev = [m.soft_hangup_request(ring.two, 16), m.hangup_request(ring.one, 16), m.hangup(ring.two, 16),
              m.cel(ring.two, "HANGUP", now), m.cel(ring.two, "CHAN_END", now),
              m.bridge_leave(bridge, 1 if first else 0, ring.one), m.hangup(ring.one, 16),
              m.cel(ring.one, "HANGUP", now), m.cel(ring.one, "CHAN_END", now)]
        if not first:
            ev.append(m.bridge_destroy(bridge))
        ring.one.bridge = ""
        call.recorded += now - (ring.answered or now)
        self._remove_ring(call, ring)
        ring.two.application, ring.two.app_data = "Hangup", ""
        ev.append(m.cdr(ring.two, call.inner.cid_num, _caller_id(call), "", "ANSWERED", now))
        return ev

    def _agent_hangs_up(self, call: Call, now: float) -> list[Message]:
        consult = self.consults.of(call)
        if consult is not None and consult.target.answered is not None:
            return self.consults.complete(consult, now) + self._dispatch(now)
        ev = self.consults.end(consult, now, "CANCEL", 0) if consult is not None else []
        ring = call.talking
        assert ring is not None
        before = self._busy()
        ev += self._release_agent(call, ring, now, first=True)
        ev += self._complete(call, now, "agent", with_dest=False)
        ev += self._hangup_caller(call, now, 16, answered_by=ring.one.name)
        self._end_call(call)
        return ev + self._status_changes(before) + self._dispatch(now)

    def _hangup_caller(self, call: Call, now: float, cause: int, answered_by: str = "") -> list[Message]:
        inner, outer = call.inner, call.outer
        ev = [m.cdr(inner, inner.cid_num, _caller_id(call), answered_by or call.last_dest,
                    "ANSWERED" if answered_by else "NO ANSWER", now),
              m.cdr(outer, inner.cid_num, _caller_id(call), "", "ANSWERED", now)]
        if inner.bridge:
            ev.append(m.bridge_leave(inner.bridge, 0, inner))
        ev += [m.soft_hangup_request(inner, 16), m.hangup_request(outer, 16), m.hangup(inner, cause),
               m.cel(inner, "HANGUP", now), m.cel(inner, "CHAN_END", now)]
        if inner.bridge:
            ev.append(m.bridge_destroy(inner.bridge))
            inner.bridge = ""
        ev += [m.hangup(outer, cause), m.cel(outer, "HANGUP", now), m.cel(outer, "CHAN_END", now),
               m.cel(outer, "LINKEDID_END", now), m.device_state_change("Local/s@inbound", "NOT_INUSE")]
        return ev

    def _caller_gone(self, call: Call, now: float, cause: int) -> list[Message]:
        """The caller hangs up: abandon while waiting, AgentComplete(caller) while talking."""
        consult = self.consults.of(call)
        pre = self.consults.end(consult, now, "CANCEL", 0) if consult is not None else []
        before = self._busy()
        ring = call.talking
        if ring is None:
            ev = self._leave_waiting(call, now) if call.queue else self._cancel_dial(call, now)
            ev += self._hangup_caller(call, now, cause)
        else:
            ev = [m.bridge_leave(call.inner.bridge, 1, call.inner)]
            call.inner.bridge = ""
            ev += self._complete(call, now, "caller", with_dest=True)
            ev += self._hangup_caller(call, now, cause, answered_by=ring.one.name)
            ev += self._release_agent(call, ring, now, first=False)
        self._end_call(call)
        return pre + ev + self._status_changes(before) + self._dispatch(now)

    # --- actions and the control API --------------------------------------------------

    def hangup(self, now: float, channel: str, cause: int) -> list[Message]:
        """AMI Hangup: raises PbxError('No such channel') for unknown names."""
        outbound = self.outbound.hangup(now, channel)
        if outbound is None:
            outbound = self.spies.hangup(now, channel)
        if outbound is None:
            outbound = self.consults.hangup(now, channel)
        if outbound is not None:
            return outbound
        found = self.find_channel(channel)
        if found is None:
            raise PbxError("No such channel")
        call, ring, _ = found
        if ring is None:
            return self._caller_gone(call, now, cause)
        if ring.answered is not None:
            return self._agent_hangs_up(call, now)
        if not ring.queue:
            return self._dial_failed(call, ring, now, "BUSY", cause)
        before = self._busy()
        ev = [m.dial_end(call.inner, ring.one, "BUSY")] + self._drop_legs(call, ring, now, cause)
        ev += self._status_changes(before)
        if not call.rings:
            call.next_try = now + self.queues[call.queue].retry
            self._watch(call)
        return ev

    def redirect(self, now: float, channel: str, context: str, exten: str) -> list[Message]:
        """Blind transfer of a caller (;2): leave the queue, agent or Dial(), then `[queues] <queue>`
        joins that queue and `[transfer] colleague` Dials ${TRANSFER_TO} (a colleague's phone).
        A dialler call's answered debtor goes to `[connect-agent]` or `[dialler-abandon]` instead.
        A caller still in its IVR leaves AGI() (AGISTATUS=HANGUP, the script gets HANGUP), so the
        end of the AGI session routes it no further (`agi_done`).
        `channel` is a name or a uniqueid (a pre-assigned ChannelId), as in Asterisk."""
        outbound = self.outbound.redirect(now, channel, context, exten)
        if outbound is not None:
            return outbound
        found = self.find_channel(channel)
        if found is None:
            raise PbxError(f"Channel does not exist: {channel}")
        call, ring, ch = found
        colleague = call.inner.variables.get("TRANSFER_TO", "") if context == "transfer" else ""
        to_queue = context == "queues" and exten in self.queues
        if ring is not None or ch is not call.inner or not (to_queue or (colleague and exten == "colleague")) \
                or self.consults.of(call) is not None:
            raise PbxError("Redirect failed")
        before = self._busy()
        if call.agi is not None:
            ev = self._leave_agi(call)
        elif call.talking is not None:
            talking = call.talking
            ev = [m.bridge_leave(call.inner.bridge, 1, call.inner)]
            call.inner.bridge = ""
            ev += self._complete(call, now, "transfer", with_dest=True)
            ev += self._release_agent(call, talking, now, first=False)
        elif call.queue:
            ev = self._leave_waiting(call, now)
        else:
            ev = self._cancel_dial(call, now)
        ev += self._status_changes(before)
        call.inner.context, call.inner.exten, call.inner.priority = context, exten, 1
        if colleague:
            call.inner.application, call.inner.app_data = "Dial", f"{colleague},{TRANSFER_RING_SECONDS:g}"
            ev.append(m.newexten(call.inner, "Dial", call.inner.app_data))
            return ev + self._ring(call, None, self._direct_member(colleague, now), now, TRANSFER_RING_SECONDS)
        return ev + self._enter_queue(call, exten, now) + self._dispatch(now)

    def atxfer(self, now: float, channel: str, exten: str, context: str) -> list[Message]:
        """AMI Atxfer on an operator's leg: consult `exten@context` first (see `atxfer.py`)."""
        return self.consults.start(now, channel, exten, context)

    def answer(self, now: float, interface: str) -> list[Message]:
        """The human operator behind `interface` picks up the ringing leg."""
        for call in self.calls.values():
            for ring in call.rings:
                if _same_phone(ring.member.interface, interface) and ring.answered is None:
                    return self._answer(call, ring, now)
        outbound = self.outbound.answer(now, interface)
        if outbound is None:
            outbound = self.spies.answer(now, interface)
        if outbound is None:
            outbound = self.consults.answer(now, interface)
        if outbound is not None:
            return outbound
        raise PbxError(f"{interface} is not ringing")

    def hangup_agent(self, now: float, interface: str) -> list[Message]:
        """The operator hangs up: ends the talk (Reason agent) or rejects a ringing leg."""
        for call in self.calls.values():
            for ring in call.rings:
                if _same_phone(ring.member.interface, interface):
                    return self.hangup(now, ring.two.name, 16) + self._dispatch(now)
        outbound = self.outbound.hangup_agent(now, interface)
        if outbound is None:
            outbound = self.spies.hangup_agent(now, interface)
        if outbound is None:
            outbound = self.consults.hangup_agent(now, interface)
        if outbound is not None:
            return outbound
        raise PbxError(f"{interface} has no call")

    def _members(self, interface: str, queue: str | None) -> list[tuple[Queue, Member]]:
        if queue is not None and queue not in self.queues:
            return []
        queues = [self.queues[queue]] if queue is not None else list(self.queues.values())
        return [(q, x) for q in queues if (x := q.member(interface)) is not None]

    def pause(self, now: float, interface: str, paused: bool, queue: str | None, reason: str) -> list[Message]:
        """QueuePause; without a queue the interface is paused in every queue it is in."""
        found = self._members(interface, queue)
        if not found:
            raise PbxError("Interface not found")
        ev: list[Message] = []
        for q, member in found:
            member.paused, member.reason = paused, reason if paused else ""
            if paused:
                member.last_pause = int(now)
            ev.append(m.queue_member_event("QueueMemberPause", q.name, member, self.status(member)))
        return ev + self._dispatch(now)

    def add_member(self, now: float, queue: str, interface: str, name: str, state_interface: str,
                   penalty: int, paused: bool) -> list[Message]:
        q = self.queues.get(queue)
        if q is None:
            raise PbxError("Unable to add interface to queue: No such queue")
        if q.member(interface) is not None:
            raise PbxError("Unable to add interface: Already there")
        member = self._member(MemberConfig(interface, name or interface, state_interface, penalty),
                              int(now), dynamic=True)
        member.paused = paused
        q.members.append(member)
        self._by_device = None
        return [m.queue_member_event("QueueMemberAdded", q.name, member, self.status(member))] + \
            self._dispatch(now)

    def remove_member(self, queue: str, interface: str) -> list[Message]:
        q = self.queues.get(queue)
        if q is None:
            raise PbxError("Unable to remove interface from queue: No such queue")
        member = q.member(interface)
        if member is None:
            raise PbxError("Unable to remove interface: Not there")
        if not member.dynamic:
            raise PbxError("Unable to remove interface: Not dynamic")
        q.members.remove(member)
        self._by_device = None
        return [m.queue_member_event("QueueMemberRemoved", q.name, member, self.status(member))]

    def set_penalty(self, interface: str, penalty: int, queue: str | None) -> list[Message]:
        found = self._members(interface, queue)
        if not found or penalty < 0:
            raise PbxError("Invalid interface, queuename or penalty")
        ev: list[Message] = []
        for q, member in found:
            member.penalty = penalty
            ev.append(m.queue_member_event("QueueMemberPenalty", q.name, member, self.status(member)))
        return ev

    # --- list actions -----------------------------------------------------------------

    def queue_status(self, now: float, action_id: str | None, queue: str, member: str) -> list[Message]:
        items: list[Message] = []
        for q in self.queues.values():
            if queue and q.name != queue:
                continue
            sl = 100 * q.completed_in_sl / q.completed if q.completed else 0.0
            total = q.completed + q.abandoned
            sl2 = 100 * (q.completed_in_sl + q.abandoned_in_sl) / total if total else 0.0
            items.append(m.queue_params(action_id, q.name, q.strategy, len(q.callers), q.holdtime,
                                        q.talktime, q.completed, q.abandoned, q.service_level, sl, sl2))
            for x in q.members:
                if not member or member in (x.interface, x.name):
                    items.append(m.queue_member_item(action_id, q.name, x, self.status(x)))
            for pos, call in enumerate(q.callers, start=1):
                items.append(m.queue_entry(action_id, q.name, pos, call.inner, int(now) - int(call.joined)))
        return items

    def queue_summary(self, now: float, action_id: str | None, queue: str) -> list[Message]:
        items: list[Message] = []
        for q in self.queues.values():
            if queue and q.name != queue:
                continue
            available = sum(1 for x in q.members if not x.paused and self.status(x) == NOT_INUSE)
            longest = max((int(now) - int(c.joined) for c in q.callers), default=0)
            items.append(m.queue_summary(action_id, q.name, len(q.members), available, len(q.callers),
                                         q.holdtime, q.talktime, longest))
        return items

    def snapshot(self) -> Snapshot:
        calls = []
        for call in self.calls.values():
            state = "talking" if call.talking else "ringing" if call.rings else "queued" if call.queue else "up"
            agent = (call.talking or (call.rings[0] if call.rings else None))
            calls.append(CallState(call.linkedid, call.inner.name, call.inner.cid_num, call.inner.cid_name,
                                   call.queue or (call.talking.queue if call.talking else ""), state,
                                   agent.member.interface if agent else None))
        for out, state in self.outbound.states():
            agent_party = out.agent
            calls.append(CallState(out.linkedid, out.first.one.name, out.customer_number, "", "", state,
                                   agent_party.interface if agent_party else None))
        members = [MemberState(q.name, x.interface, x.name, self.status(x), x.paused, x.reason, x.penalty,
                               x.in_call, x.calls_taken)
                   for q in self.queues.values() for x in q.members]
        return Snapshot(
            waiting={q.name: [c.linkedid for c in q.callers] for q in self.queues.values()},
            calls=calls, members=members, channels=[ch.name for ch in self.channels()],
            spies=self.spies.states(),
        )


def _same_phone(a: str, b: str) -> bool:
    """`Local/102@agents/n` (a queue member) and `Local/102@agents` (a Dial()) ring the same phone."""
    return local_parts(a)[0] == local_parts(b)[0]


def _caller_id(call: Call) -> str:
    return f'"{call.inner.cid_name}" <{call.inner.cid_num}>'
