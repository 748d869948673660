"""LiveState: the supervisor wall's picture of queues and agents, built only from QueueEvents.

Pure: `apply(event)` and `figures(now)` never await and never touch the database, so a
recorded trace replays through it in a line. Today's counters survive a restart because
the wall service seeds them from today's Call rows (`seed`); live things (callers waiting,
rings, calls, members) are replaced wholesale by the snapshot that follows every AMI login.

Definitions (also in the README), per queue, over today (local midnight to now):
- answered: AgentConnect; abandoned: QueueCallerAbandon; hold = their HoldTime.
- service level = answered with hold <= T / (answered + abandoned with hold > T), in %;
  abandons within T are left out (the caller gave up before we owed an answer). None if 0/0.
- abandon rate = abandoned / (answered + abandoned), in %.
- ASA = mean hold of answered calls; AHT = mean TalkTime of completed calls (wrap-up not included).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Any

from ami_bridge.events import QueueEvent
from ami_bridge.tracker import normalize_interface
from crm_core.phones import caller_id_name

DEFAULT_SERVICE_SECONDS = 20
INTERVAL_SECONDS = 15 * 60
OFFLINE_STATUSES = {4, 5}  # AST_DEVICE_INVALID, AST_DEVICE_UNAVAILABLE
BUSY_STATUSES = {2, 3, 7, 8}  # in use, busy, ringing while in use, on hold
RINGING_STATUS = 6
FIGURES_CHUNK = 25  # agents per step of `figure_steps`: ~0.2 ms of the loop with 1,000 agents
AGENT_STATES = ("available", "ringing", "on_call", "wrap_up", "paused", "offline")


@dataclass(frozen=True)
class Thresholds:
    """Per-queue targets and colour limits: data, edited by supervisors (routing.thresholds)."""

    service_seconds: int | None = None  # T; None: the queue's own ServiceLevel, else 20
    service_level_target: float = 80.0  # % below it is red, within 10 points amber
    longest_wait_warn: int = 30  # seconds
    longest_wait_alert: int = 60
    abandon_rate_warn: float = 5.0  # %
    abandon_rate_alert: float = 10.0
    wrapup_seconds: int = 0  # after a call the agent counts as wrap-up this long


@dataclass(frozen=True)
class OperatorRef:
    id: int
    login: str
    name: str


@dataclass(frozen=True)
class SeedCall:
    """Today's Call row, as the seed needs it (epoch seconds)."""

    linkedid: str
    queue: str
    interface: str
    started: float
    answered: float | None
    ended: float | None
    wait: int | None
    talk: int | None
    outcome: str | None


@dataclass(frozen=True)
class PauseChange:
    """An agent's pause began (`ended` None) or ended: the wall service persists these so
    today's pause time survives a restart (`seed_pauses`)."""

    interface: str
    started: float
    ended: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class MemberTruth:
    """One queue membership as Asterisk reports it."""

    queue: str
    penalty: int
    paused: bool
    reason: str


@dataclass(frozen=True)
class DeskStatus:
    """What an agent's own desk shows of their queues: `ready`, `paused` (the first paused queue's
    reason, and the queues the pause holds in) or `out` (in no queue)."""

    state: str
    reason: str = ""
    paused_in: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()

    def message(self, at: float | None, limit: int | None = None) -> dict[str, Any]:
        """The desk's `status` message; `at` is when this status began (epoch seconds; None: unknown),
        `limit` how many seconds this pause may last (None: no limit, or not known here)."""
        return {"type": "status", "state": self.state, "reason": self.reason, "paused_in": list(self.paused_in),
                "queues": list(self.queues), "at": at, "limit": limit}


def desk_status(members: Iterable[tuple[str, bool, str]]) -> DeskStatus:
    """The status from an agent's memberships as (queue, paused, reason): from the live queue events
    here, from the stored memberships when a desk page is rendered."""
    members = sorted(members)
    if not members:
        return DeskStatus("out")
    queues = tuple(queue for queue, _, _ in members)
    paused = [(queue, reason) for queue, is_paused, reason in members if is_paused]
    if not paused:
        return DeskStatus("ready", queues=queues)
    return DeskStatus("paused", paused[0][1], tuple(queue for queue, _ in paused), queues)


@dataclass
class _Member:
    name: str
    status: int | None = None
    paused: bool = False
    reason: str = ""
    penalty: int | None = None


@dataclass(frozen=True)
class Caller:
    """How a caller number shows: as people write it ("" when withheld) and the client behind it."""

    display: str
    client: dict[str, Any] | None = None


@dataclass
class _Waiting:
    queue: str
    caller_num: str
    caller_name: str
    joined: float
    position: int | None


@dataclass
class _Call:
    linkedid: str
    queue: str
    caller_num: str
    caller_name: str
    since: float


@dataclass
class _Agent:
    interface: str
    name: str = ""
    call: _Call | None = None
    rings: dict[str, _Call] = field(default_factory=dict)
    wrapup_until: float | None = None
    state: str = "offline"
    since: float = 0.0
    reason: str = ""
    handled: int = 0
    talk: int = 0
    paused_for: float = 0.0  # paused seconds today, closed periods
    paused_since: float | None = None
    pause_reason: str = ""  # the open pause's
    desk: DeskStatus | None = None  # as last told to the agent's desk


@dataclass
class _Tally:
    answered: int = 0
    abandoned: int = 0
    answered_in_sl: int = 0
    abandoned_after_t: int = 0
    hold_sum: int = 0
    completed: int = 0
    talk_sum: int = 0

    def figures(self) -> dict[str, Any]:
        offered = self.answered + self.abandoned
        sl_base = self.answered + self.abandoned_after_t
        return {
            "answered": self.answered,
            "abandoned": self.abandoned,
            "service_level": _pct(self.answered_in_sl, sl_base),
            "abandon_rate": _pct(self.abandoned, offered),
            "asa": round(self.hold_sum / self.answered, 1) if self.answered else None,
            "aht": round(self.talk_sum / self.completed, 1) if self.completed else None,
        }


def _summed(tallies: Iterable[_Tally]) -> _Tally:
    total = _Tally()
    for tally in tallies:
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(tally, name))
    return total


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _level(value: float | None, warn: float, alert: float, *, higher_is_worse: bool = True) -> str:
    if value is None:
        return "ok"
    if not higher_is_worse:
        value, warn, alert = -value, -warn, -alert
    return "alert" if value >= alert else "warn" if value >= warn else "ok"


class LiveState:
    """Apply QueueEvents in bus order; read `figures(now)` for the wall."""

    def __init__(self, thresholds: dict[str, Thresholds] | None = None, *, tz: tzinfo | None = None,
                 default: Thresholds = Thresholds()) -> None:
        self.thresholds = dict(thresholds or {})
        self.pause_limits: dict[str, int] = {}  # seconds a pause may last, per reason (set_pause_limits)
        self.default = default
        self._tz = tz
        self.operators: dict[str, OperatorRef] = {}  # normalised interface -> operator
        self.callers: dict[str, Caller] = {}  # caller number -> how it shows, whose it is
        self._queue_sl: dict[str, int] = {}  # the queue's own ServiceLevel from QueueParams
        self._members: dict[str, dict[str, _Member]] = {}  # queue -> interface -> member
        self._waiting: dict[str, _Waiting] = {}  # Linkedid -> caller in a queue
        self._agents: dict[str, _Agent] = {}
        self._ringing: dict[str, set[str]] = {}  # Linkedid -> interfaces whose `rings` may hold it
        self._stale_calls: dict[str, _Call] = {}  # calls live before the last resync, by interface
        self.synced = False  # a resync happened: members are Asterisk's, not just what events told
        self.pause_changes: list[PauseChange] = []  # drained by the wall service
        self.desk_changes: list[tuple[str, dict[str, Any]]] = []  # (interface, status message), drained likewise
        self._moved: set[str] = set()  # agents whose memberships changed since their last refresh
        self._day_start = 0.0
        self._day_end = 0.0
        self._reset_day(0.0)

    # --- configuration -------------------------------------------------------------------

    def set_operators(self, operators: dict[str, OperatorRef]) -> None:
        self.operators = dict(operators)
        for interface, op in operators.items():
            self._agent(interface, op.name)

    def set_thresholds(self, thresholds: dict[str, Thresholds]) -> None:
        """New limits take effect on the next `figures`; T applies to calls counted from now."""
        self.thresholds = dict(thresholds)

    def set_pause_limits(self, limits: dict[str, int]) -> None:
        """New limits show in the next figures, and go at once to the desk of each agent paused for a
        reason whose limit changed."""
        before, self.pause_limits = self.pause_limits, dict(limits)
        for agent in self._agents.values():
            desk = agent.desk
            if desk is not None and desk.state == "paused" and before.get(desk.reason) != limits.get(desk.reason):
                self.desk_changes.append((agent.interface, desk.message(agent.paused_since, limits.get(desk.reason))))

    def service_seconds(self, queue: str) -> int:
        own = self.thresholds.get(queue, self.default).service_seconds
        return own if own is not None else self._queue_sl.get(queue) or DEFAULT_SERVICE_SECONDS

    def _limits(self, queue: str) -> Thresholds:
        return self.thresholds.get(queue, self.default)

    # --- today -----------------------------------------------------------------------------

    def day_start(self, at: float) -> float:
        """Local midnight before `at` (or in `tz`), as epoch seconds."""
        local = datetime.fromtimestamp(at, self._tz) if self._tz else datetime.fromtimestamp(at).astimezone()
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def _reset_day(self, at: float) -> None:
        self._day_start = self.day_start(at)
        self._day_end = self.day_start(self._day_start + 26 * 3600)  # next midnight, on 23 h and 25 h days too
        self._tallies: dict[str, _Tally] = {}
        self._intervals: dict[tuple[str, int], _Tally] = {}  # (queue, 15-minute slot)
        self._counted: set[tuple[str, str, str]] = set()  # (what, queue, linkedid): count once
        for agent in self._agents.values():
            agent.handled = agent.talk = 0
            agent.paused_for = 0.0
            if agent.paused_since is not None:
                agent.paused_since = self._day_start

    def _roll(self, at: float) -> None:
        if at >= self._day_end:
            self._reset_day(at)

    def _count(self, what: str, queue: str, linkedid: str) -> bool:
        key = (what, queue, linkedid)
        if key in self._counted:
            return False
        self._counted.add(key)
        return True

    def _tally(self, queue: str) -> _Tally:
        return self._tallies.setdefault(queue, _Tally())

    def _interval(self, queue: str, at: float) -> _Tally:
        slot = int((at - self._day_start) // INTERVAL_SECONDS)
        return self._intervals.setdefault((queue, slot), _Tally())

    def _answered(self, queue: str, linkedid: str, hold: int | None, at: float) -> None:
        if not self._count("answered", queue, linkedid):
            return
        in_sl = hold is not None and hold <= self.service_seconds(queue)
        for tally in (self._tally(queue), self._interval(queue, at)):
            tally.answered += 1
            tally.answered_in_sl += in_sl
            tally.hold_sum += hold or 0

    def _abandoned(self, queue: str, linkedid: str, hold: int | None, at: float) -> None:
        if not self._count("abandoned", queue, linkedid):
            return
        late = hold is not None and hold > self.service_seconds(queue)
        for tally in (self._tally(queue), self._interval(queue, at)):
            tally.abandoned += 1
            tally.abandoned_after_t += late

    def _completed(self, queue: str, linkedid: str, talk: int | None, interface: str) -> None:
        if not self._count("completed", queue, linkedid):
            return
        tally = self._tally(queue)
        tally.completed += 1
        tally.talk_sum += talk or 0
        if interface:
            agent = self._agent(interface)
            agent.handled += 1
            agent.talk += talk or 0

    def seed(self, calls: Iterable[SeedCall], now: float) -> None:
        """Today's counters from the call log, so a restart keeps them."""
        self._roll(now)
        for call in calls:
            if not call.queue or call.started < self._day_start:
                continue
            if call.answered is not None:
                self._answered(call.queue, call.linkedid, call.wait, call.answered)
                if call.ended is not None:
                    self._completed(call.queue, call.linkedid, call.talk, normalize_interface(call.interface))
            elif call.outcome == "abandoned":
                self._abandoned(call.queue, call.linkedid, call.wait, call.ended or call.started)

    def seed_pauses(self, pauses: Iterable[PauseChange], now: float) -> None:
        """Today's pause time from the persisted intervals; an open one stays open until the
        resync says whether the agent is still paused."""
        self._roll(now)
        for pause in pauses:
            agent = self._agent(pause.interface)
            start = max(pause.started, self._day_start)
            if pause.ended is None:
                agent.paused_since, agent.pause_reason = start, pause.reason
            elif pause.ended > start:
                agent.paused_for += pause.ended - start

    # --- events ----------------------------------------------------------------------------

    def _agent(self, interface: str, name: str = "") -> _Agent:
        agent = self._agents.get(interface)
        if agent is None:
            agent = self._agents[interface] = _Agent(interface)
        if name and not agent.name:
            agent.name = name
        return agent

    def apply(self, event: QueueEvent) -> None:
        self._roll(event.at)
        handler = getattr(self, f"_on_{event.kind.value}")
        handler(event)
        if event.interface and not event.snapshot and event.interface in self._agents:
            self._refresh(self._agents[event.interface], event.at)

    def _on_resync(self, event: QueueEvent) -> None:
        self.synced = True
        self._stale_calls = {a.interface: a.call for a in self._agents.values() if a.call is not None}
        self._members.clear()
        self._moved.update(self._agents)
        self._waiting.clear()
        self._ringing.clear()
        for agent in self._agents.values():
            agent.call = None
            agent.rings.clear()

    def _on_queue(self, event: QueueEvent) -> None:
        self._members.setdefault(event.queue, {})
        if event.service_level:
            self._queue_sl[event.queue] = event.service_level

    def _on_member(self, event: QueueEvent) -> None:
        self._moved.add(event.interface)
        member = self._members.setdefault(event.queue, {}).setdefault(event.interface, _Member(event.member_name))
        member.name = event.member_name or member.name
        if event.status is not None:
            member.status = event.status
        if event.paused is not None:
            member.paused, member.reason = event.paused, event.reason if event.paused else ""
        if event.penalty is not None:
            member.penalty = event.penalty
        self._agent(event.interface, event.member_name)

    _on_member_added = _on_member_status = _on_member_paused = _on_member_penalty = _on_member

    def _on_member_removed(self, event: QueueEvent) -> None:
        self._moved.add(event.interface)
        self._members.get(event.queue, {}).pop(event.interface, None)

    def _on_caller_joined(self, event: QueueEvent) -> None:
        self._members.setdefault(event.queue, {})
        self._waiting[event.linkedid] = _Waiting(event.queue, event.caller_num,
                                                 caller_id_name(event.caller_name, event.caller_num),
                                                 event.at - (event.holdtime or 0), event.position)

    def _caller_gone(self, linkedid: str, at: float) -> None:
        self._waiting.pop(linkedid, None)
        ringing = self._ringing.pop(linkedid, ())
        # Only the agents that rang for this call (not all of them: this runs 2-3 times per call);
        # several are refreshed in the agents' order, as a walk over every agent would.
        if len(ringing) <= 1:
            agents = [self._agents[i] for i in ringing if i in self._agents]
        else:
            agents = [a for a in self._agents.values() if a.interface in ringing]
        for agent in agents:
            if agent.rings.pop(linkedid, None) is not None:
                self._refresh(agent, at)

    def _on_caller_left(self, event: QueueEvent) -> None:
        self._caller_gone(event.linkedid, event.at)

    def _on_caller_abandoned(self, event: QueueEvent) -> None:
        self._abandoned(event.queue, event.linkedid, event.holdtime, event.at)
        self._caller_gone(event.linkedid, event.at)

    def _call(self, event: QueueEvent) -> _Call:
        return _Call(event.linkedid, event.queue, event.caller_num, caller_id_name(event.caller_name, event.caller_num),
                     event.at)

    def _on_agent_ringing(self, event: QueueEvent) -> None:
        self._agent(event.interface, event.member_name).rings[event.linkedid] = self._call(event)
        self._ringing.setdefault(event.linkedid, set()).add(event.interface)

    def _on_agent_ring_no_answer(self, event: QueueEvent) -> None:
        self._agent(event.interface).rings.pop(event.linkedid, None)
        ringing = self._ringing.get(event.linkedid)
        if ringing is not None:
            ringing.discard(event.interface)
            if not ringing:
                del self._ringing[event.linkedid]

    def _on_agent_connected(self, event: QueueEvent) -> None:
        self._caller_gone(event.linkedid, event.at)  # ringall: the other members' rings are cancelled
        agent = self._agent(event.interface, event.member_name)
        call = self._call(event)
        stale = self._stale_calls.get(event.interface)
        if event.snapshot and stale is not None and stale.linkedid == event.linkedid:
            call = replace(call, since=stale.since, queue=call.queue or stale.queue)
        agent.call, agent.wrapup_until = call, None
        if not event.snapshot:
            self._answered(event.queue, event.linkedid, event.holdtime, event.at)

    def _on_agent_completed(self, event: QueueEvent) -> None:
        agent = self._agent(event.interface, event.member_name)
        if agent.call is not None and agent.call.linkedid == event.linkedid:
            agent.call = None
        wrapup = self._limits(event.queue).wrapup_seconds
        agent.wrapup_until = event.at + wrapup if wrapup else None
        self._completed(event.queue, event.linkedid, event.talktime, event.interface)

    # --- derived ---------------------------------------------------------------------------

    def _agent_members(self, interface: str) -> list[tuple[str, _Member]]:
        return [(q, ms[interface]) for q, ms in self._members.items() if interface in ms]

    def _state(self, agent: _Agent, now: float) -> tuple[str, str]:
        """(state, pause reason) across the agent's queues; see AGENT_STATES for the order of precedence."""
        members = [m for _, m in self._agent_members(agent.interface)]
        if not members or all(m.status in OFFLINE_STATUSES for m in members):
            return "offline", ""
        statuses = {m.status for m in members}
        if agent.call is not None:
            return "on_call", ""
        if agent.rings or RINGING_STATUS in statuses:
            return "ringing", ""
        if statuses & BUSY_STATUSES:
            return "on_call", ""
        if agent.wrapup_until is not None and now < agent.wrapup_until:
            return "wrap_up", ""
        paused = [m for m in members if m.paused]
        if paused:
            return "paused", paused[0].reason
        return "available", ""

    def _refresh(self, agent: _Agent, now: float) -> None:
        state, reason = self._state(agent, now)
        if (state, reason) != (agent.state, agent.reason):
            wrapped_up = agent.state == "wrap_up" and agent.wrapup_until is not None and now >= agent.wrapup_until
            agent.since = agent.wrapup_until if wrapped_up and agent.wrapup_until is not None else now
            agent.state, agent.reason = state, reason
        if agent.interface not in self._moved:  # pauses and the desk's status follow memberships only
            return
        members = self._agent_members(agent.interface)
        if not self.synced and not members:  # unknown until the first resync: keep a seeded pause open
            return
        self._moved.discard(agent.interface)
        desk = desk_status((q, m.paused, m.reason if m.paused else "") for q, m in members)
        paused = desk.state == "paused"
        # A pause ends when the agent is paused nowhere, or goes on for another reason: the report of
        # pauses by reason needs each reason's own interval. Its reason is the members', whatever the
        # state shown (a pause taken during a call shows as the call until it ends).
        if agent.paused_since is not None and (not paused or desk.reason != agent.pause_reason):
            agent.paused_for += max(0.0, now - agent.paused_since)
            self.pause_changes.append(PauseChange(agent.interface, agent.paused_since, now))
            agent.paused_since = None
        if paused and agent.paused_since is None:
            agent.paused_since, agent.pause_reason = now, desk.reason
            self.pause_changes.append(PauseChange(agent.interface, now, None, desk.reason))
        if desk != agent.desk:  # a paused desk counts from the pause's start, after a restart too
            agent.desk = desk
            limit = self.pause_limits.get(desk.reason) if desk.state == "paused" else None
            self.desk_changes.append((agent.interface, desk.message(agent.paused_since or now, limit)))

    def membership(self, interface: str) -> tuple[MemberTruth, ...]:
        """One agent's queue memberships as Asterisk reports them (empty: in no queue)."""
        return tuple(MemberTruth(q, m.penalty or 0, m.paused, m.reason if m.paused else "")
                     for q, m in sorted(self._agent_members(interface)))

    def agent_interfaces(self) -> list[str]:
        """Every known agent, by interface."""
        return list(self._agents)

    def unknown_numbers(self) -> set[str]:
        """Caller numbers on the wall not looked up yet."""
        return {n for n in self._live_numbers() if n not in self.callers}

    def learn_callers(self, found: dict[str, Caller]) -> None:
        """Looked-up callers by number; numbers no longer on the wall are dropped."""
        live = self._live_numbers()
        self.callers = {n: c for n, c in {**self.callers, **found}.items() if n in live}

    def _live_numbers(self) -> set[str]:
        live = {w.caller_num for w in self._waiting.values()}
        live |= {a.call.caller_num for a in self._agents.values() if a.call is not None}
        return live

    def _caller(self, number: str) -> dict[str, Any]:
        """The wire fields of a caller; until looked up, the number as it came."""
        caller = self.callers.get(number) or Caller(number)
        return {"display": caller.display, "client": caller.client}

    def board(self) -> dict[str, dict[str, Any]]:
        """What a desk shows of each queue: the callers waiting, when the longest-waiting one joined
        (the browser counts on from there) and the queue's longest-wait limits. It changes only when a
        caller joins or leaves a queue (or a limit is changed), not as calls go on being talked."""
        board = {queue: {"waiting": 0, "oldest": None, "warn": self._limits(queue).longest_wait_warn,
                         "alert": self._limits(queue).longest_wait_alert} for queue in sorted(self._members)}
        for caller in self._waiting.values():
            row = board[caller.queue]
            row["waiting"] += 1
            row["oldest"] = caller.joined if row["oldest"] is None else min(row["oldest"], caller.joined)
        return board

    def figures(self, now: float) -> dict[str, Any]:
        """The wall as JSON-able data; times are epoch seconds, durations whole seconds."""
        steps = self.figure_steps(now)
        for step in steps:
            if step is not None:
                return step
        raise AssertionError("figure_steps ends with the figures")

    def figure_steps(self, now: float, chunk: int = FIGURES_CHUNK) -> Iterator[dict[str, Any] | None]:
        """`figures` in steps: None after each queue and each `chunk` agents, the figures last.

        With 1,000 agents the whole snapshot is ~15 ms of work; built in one go on the event loop
        it held up every desk pop behind it. A caller on the loop yields to it at each None; what
        changes meanwhile lands in the next snapshot, at most `min_interval` later.
        """
        self._roll(now)
        agents = sorted(self._agents.values(), key=lambda a: (a.name, a.interface))
        for start in range(0, len(agents), chunk):
            for agent in agents[start:start + chunk]:
                self._refresh(agent, now)
            yield None
        queues = []
        for queue in sorted(self._members):
            if queue not in self._members:  # a queue may go while the loop runs other work
                continue
            members = sorted(self._members[queue].items())
            rows = []
            for start in range(0, len(members), chunk):
                rows += [self._member_row(interface, member) for interface, member in members[start:start + chunk]
                         if interface in self._agents]
                yield None
            queues.append(self._queue_figures(queue, now, rows))
            yield None
        agent_rows: list[dict[str, Any]] = []
        for start in range(0, len(agents), chunk):
            agent_rows += [self._agent_figures(agent, now) for agent in agents[start:start + chunk]]
            yield None
        totals = _summed(self._tallies.values())
        yield {
            "at": now,
            "day_start": self._day_start,
            "pause_limits": self.pause_limits,
            "queues": queues,
            "agents": agent_rows,
            "totals": {**totals.figures(), "waiting": len(self._waiting),
                       "longest_wait": max((q["longest_wait"] for q in queues), default=0)},
            "intervals": self._interval_figures(None),
        }

    def _interval_figures(self, queue: str | None) -> list[dict[str, Any]]:
        """Per 15 minutes today for one queue, or summed over all queues (None)."""
        slots: dict[int, list[_Tally]] = {}
        for (name, slot), tally in self._intervals.items():
            if queue is None or name == queue:
                slots.setdefault(slot, []).append(tally)
        return [{"start": self._day_start + i * INTERVAL_SECONDS, **_summed(ts).figures()}
                for i, ts in sorted(slots.items())]

    def _member_row(self, interface: str, member: _Member) -> dict[str, Any]:
        agent = self._agents[interface]
        state = agent.state
        if state in ("available", "paused"):
            state = "paused" if member.paused else "available"
        return {"interface": interface, "name": self._name(agent), "state": state,
                "paused": member.paused, "reason": member.reason, "penalty": member.penalty}

    def _queue_figures(self, queue: str, now: float, members: list[dict[str, Any]]) -> dict[str, Any]:
        """One queue's figures around its `members` rows (see `_member_row`)."""
        limits = self._limits(queue)
        waiting = sorted(((lid, w) for lid, w in self._waiting.items() if w.queue == queue),
                         key=lambda item: item[1].joined)
        counts = dict.fromkeys(AGENT_STATES, 0)
        reasons: dict[str, int] = {}
        for row in members:
            counts[row["state"]] += 1
            if row["state"] == "paused":
                reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
        longest = max((round(now - w.joined) for _, w in waiting), default=0)
        figures = self._tallies.get(queue, _Tally()).figures()
        return {
            "name": queue,
            "service_seconds": self.service_seconds(queue),
            "waiting": [{"linkedid": lid, "caller_num": w.caller_num, "caller_name": w.caller_name,
                         **self._caller(w.caller_num), "joined": w.joined,
                         "wait": round(now - w.joined)} for lid, w in waiting],
            "longest_wait": longest,
            **figures,
            "agents": {"logged_in": len(members) - counts["offline"], **counts},
            "paused_reasons": reasons,
            "members": members,
            "intervals": self._interval_figures(queue),
            "thresholds": asdict(limits) | {"service_seconds": self.service_seconds(queue)},
            "alerts": {
                "longest_wait": _level(longest, limits.longest_wait_warn, limits.longest_wait_alert),
                "abandon_rate": _level(figures["abandon_rate"], limits.abandon_rate_warn,
                                       limits.abandon_rate_alert),
                "service_level": _level(figures["service_level"], limits.service_level_target,
                                        limits.service_level_target - 10, higher_is_worse=False),
            },
        }

    def _name(self, agent: _Agent) -> str:
        op = self.operators.get(agent.interface)
        return op.name if op else agent.name or agent.interface

    def _agent_figures(self, agent: _Agent, now: float) -> dict[str, Any]:
        op = self.operators.get(agent.interface)
        call = agent.call
        talking = round(now - call.since) if call else 0
        paused = agent.paused_for + (now - agent.paused_since if agent.paused_since is not None else 0)
        return {
            "interface": agent.interface,
            "name": self._name(agent),
            "operator_id": op.id if op else None,
            "login": op.login if op else None,
            "state": agent.state,
            "reason": agent.reason,
            "since": agent.since,
            "for": round(now - agent.since) if agent.since else 0,
            "queues": [q for q, _ in self._agent_members(agent.interface)],
            "call": None if call is None else {
                "linkedid": call.linkedid, "queue": call.queue, "caller_num": call.caller_num,
                "caller_name": call.caller_name, **self._caller(call.caller_num),
                "since": call.since, "talk": talking,
            },
            "rings": [{"linkedid": r.linkedid, "queue": r.queue, "caller_num": r.caller_num,
                       "caller_name": r.caller_name, **self._caller(r.caller_num)} for r in agent.rings.values()],
            "handled_today": agent.handled,
            "talk_today": agent.talk + talking,
            "pause_today": round(paused),
        }

