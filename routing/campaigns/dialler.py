"""The dialler's live state, fed by CallEvents: pure, no I/O, so every decision is tested without sockets.

It answers the questions the service asks: how many calls may a campaign place now
(`to_dial`, through `routing.pacing`), which operator takes a debtor who has just answered
(`on_event` -> `Connect`, longest idle first) or that nobody can (`Abandon`), what became of
each call (`Ended`), and which debts operators are previewing (`hold_preview`), so neither
another operator nor the automatic dialler takes them meanwhile. Every interface seen ringing or
talking on any call, inbound too, is busy until its call ends, so the dialler never hands a
debtor to someone already on the phone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ami_bridge.events import CallEvent, CallEventKind, Outcome
from routing.pacing import DialStats, how_many_to_dial, soon_free

RECENT = 200  # answer-rate and handle-time window, in calls
MIN_RESOLVED = 20  # calls resolved before the measured answer rate is trusted
CONNECT_RING = 20.0  # `[connect-agent]` rings the operator this long
PREVIEW_HOLD = 60.0  # a previewed debt stays the operator's this long


@dataclass(frozen=True)
class Agent:
    """An operator ready for a campaign."""

    operator_id: int
    interface: str  # normalised, as CallEvents name it: `Local/101@agents`

    @property
    def extension(self) -> str:
        """`Local/101@agents` / `PJSIP/101` -> `101`: what `[connect-agent]` dials."""
        return self.interface.split("/", 1)[-1].split("@", 1)[0]


@dataclass
class LiveCall:
    channel_id: str
    campaign_id: int
    debt_id: int
    phone: str
    placed: float
    preview_operator: int | None = None  # preview mode: the operator who asked for this call
    answered: float | None = None
    operator: Agent | None = None
    connected: float | None = None


@dataclass(frozen=True)
class Connect:
    call: LiveCall
    agent: Agent


@dataclass(frozen=True)
class Abandon:
    call: LiveCall


@dataclass(frozen=True)
class Connected:
    call: LiveCall


@dataclass(frozen=True)
class Ended:
    call: LiveCall
    outcome: str  # routing.campaigns.models.ATTEMPT_OUTCOMES


Decision = Connect | Abandon | Connected | Ended

_OUTCOMES = {Outcome.ANSWERED: "answered", Outcome.ABANDONED: "abandoned", Outcome.BUSY: "busy",
             Outcome.FAILED: "failed", Outcome.MISSED: "no_answer"}


@dataclass
class _Campaign:
    resolved: deque[bool] = field(default_factory=lambda: deque(maxlen=RECENT))  # answered?
    live_answers: int = 0  # rolling 30 days, seeded from the database
    abandons: int = 0


class DiallerState:
    def __init__(self, wrapup_seconds: float = 15.0) -> None:
        self.wrapup_seconds = wrapup_seconds
        self.calls: dict[str, LiveCall] = {}
        self._busy: dict[str, set[str]] = {}  # interface -> linkedids ringing or talking on it
        self._on_call: dict[str, set[str]] = {}  # the reverse: linkedid -> its interfaces in _busy
        self._reserved: dict[int, str] = {}  # operator id -> channel_id being put through to them
        self._talk_since: dict[int, float] = {}  # operator id -> when their campaign talk began
        self._wrapup_until: dict[int, float] = {}
        self._idle_since: dict[int, float] = {}
        self._handle_times: list[float] = []  # sorted, recent
        self._campaigns: dict[int, _Campaign] = {}
        self._previews: dict[tuple[int, int], tuple[int, float]] = {}  # (campaign, debt) -> (operator, until)

    # --- what the service tells it -------------------------------------------------------

    def seed_abandon_rate(self, campaign_id: int, live_answers: int, abandons: int) -> None:
        """The campaign's last 30 days from the database, before it dials."""
        stats = self._campaign(campaign_id)
        stats.live_answers, stats.abandons = live_answers, abandons

    def seed_answers(self, campaign_id: int, answered: Iterable[bool]) -> None:
        """The campaign's recent calls from the database (oldest first), so a restarted dialler
        paces by the measured answer rate at once instead of re-learning it progressively."""
        self._campaign(campaign_id).resolved.extend(answered)

    def placed(self, call: LiveCall) -> None:
        self.calls[call.channel_id] = call

    def adopt(self, call: LiveCall) -> None:
        """A call a previous run placed that is still on: follow it to its end; an operator
        already talking on it is busy."""
        self.calls[call.channel_id] = call
        if call.operator is not None:
            self._reserved[call.operator.operator_id] = call.channel_id
            if call.connected is not None:
                self._occupy(call.operator.interface, call.channel_id)
                self._talk_since[call.operator.operator_id] = call.connected

    def hold_preview(self, campaign_id: int, debt_id: int, operator_id: int, now: float) -> None:
        """The operator is reading this debt's card: theirs for PREVIEW_HOLD seconds, and only
        one at a time per campaign (asking for the next lets go of the last)."""
        self._previews = {key: held for key, held in self._previews.items()
                          if held[1] > now and not (key[0] == campaign_id and held[0] == operator_id)}
        self._previews[(campaign_id, debt_id)] = (operator_id, now + PREVIEW_HOLD)

    def release_preview(self, campaign_id: int, debt_id: int) -> None:
        self._previews.pop((campaign_id, debt_id), None)

    def previewer(self, campaign_id: int, debt_id: int, now: float) -> int | None:
        """The operator holding this debt for preview, if the hold is still on."""
        held = self._previews.get((campaign_id, debt_id))
        return held[0] if held is not None and held[1] > now else None

    def previewing(self, operator_id: int, campaign_id: int, now: float) -> int | None:
        """The debt the operator holds in this campaign, if any."""
        return next((debt_id for (c, debt_id), (op, until) in self._previews.items()
                     if c == campaign_id and op == operator_id and until > now), None)

    def held_debts(self, campaign_id: int, now: float, but: int | None = None) -> set[int]:
        """Debts of the campaign held for preview by operators other than `but`."""
        return {debt_id for (c, debt_id), (op, until) in self._previews.items()
                if c == campaign_id and op != but and until > now}

    def wrapped_up(self, operator_id: int) -> None:
        """The operator recorded the call's disposition: free again."""
        self._wrapup_until.pop(operator_id, None)

    # --- questions -----------------------------------------------------------------------

    def free(self, agents: list[Agent], now: float) -> list[Agent]:
        """Ready agents on no call, not being put through to, not wrapping up; longest idle first."""
        free = [a for a in agents if not self._busy.get(a.interface) and a.operator_id not in self._reserved
                and self._wrapup_until.get(a.operator_id, 0.0) <= now]
        return sorted(free, key=lambda a: self._idle_since.get(a.operator_id, 0.0))

    def on_call(self, agent: Agent) -> bool:
        """Ringing or talking on any call, or being put through to a debtor."""
        return bool(self._busy.get(agent.interface)) or agent.operator_id in self._reserved

    def to_dial(self, campaign_id: int, mode: str, agents: list[Agent], max_lines: int, now: float) -> int:
        """New calls the campaign may place now; 0 at once when none of its agents is free or about to be."""
        stats = self._campaign(campaign_id)
        own = [c for c in self.calls.values() if c.campaign_id == campaign_id]
        ringing = sum(1 for c in own if c.answered is None)
        talking = [a for a in agents if a.operator_id in self._talk_since]
        recent = sorted(self._handle_times)
        answers = sum(stats.resolved)
        return how_many_to_dial(DialStats(
            mode=mode,
            free_agents=len(self.free(agents, now)),
            soon_free_agents=soon_free((now - self._talk_since[a.operator_id] for a in talking), recent,
                                       ring_time=CONNECT_RING),
            pending_calls=ringing,
            lines_in_use=len(own),
            max_lines=max_lines,
            answer_rate=answers / len(stats.resolved) if len(stats.resolved) >= MIN_RESOLVED else 0.0,
            abandon_rate=stats.abandons / stats.live_answers if stats.live_answers else 0.0,
        ))

    # --- events --------------------------------------------------------------------------

    def on_event(self, event: CallEvent, agents: list[Agent], now: float) -> list[Decision]:
        """Follow every call's interfaces; decide for our own calls. `agents`: the ready agents of
        the campaign the event's call belongs to (ignored for other calls)."""
        kind = event.kind
        if kind in (CallEventKind.RINGING, CallEventKind.ANSWERED) and event.interface:
            self._occupy(event.interface, event.linkedid)
        elif kind is CallEventKind.RING_STOPPED and event.interface:
            self._release(event.interface, event.linkedid)
        call = self.calls.get(event.linkedid)
        if kind is CallEventKind.ENDED:
            for interface in list(self._on_call.get(event.linkedid, ())):
                self._release(interface, event.linkedid)
        if call is None:
            return []
        if kind is CallEventKind.ANSWERED and not event.interface and call.answered is None:
            return [self._debtor_answered(call, agents, now)]
        if kind is CallEventKind.ANSWERED and event.interface and call.operator is not None \
                and event.interface == call.operator.interface and call.connected is None:
            call.connected = now
            self._talk_since[call.operator.operator_id] = now
            return [Connected(call)]
        if kind is CallEventKind.ENDED:
            return [self._ended(call, event, now)]
        return []

    def _debtor_answered(self, call: LiveCall, agents: list[Agent], now: float) -> Decision:
        call.answered = now
        stats = self._campaign(call.campaign_id)
        stats.resolved.append(True)
        stats.live_answers += 1
        free = self.free(agents, now)
        if call.preview_operator is not None:
            free = [a for a in agents if a.operator_id == call.preview_operator
                    and not self._busy.get(a.interface)]
        if not free:
            stats.abandons += 1
            return Abandon(call)
        call.operator = free[0]
        self._reserved[free[0].operator_id] = call.channel_id
        return Connect(call, free[0])

    def _ended(self, call: LiveCall, event: CallEvent, now: float) -> Ended:
        del self.calls[call.channel_id]
        stats = self._campaign(call.campaign_id)
        if call.answered is None:
            stats.resolved.append(False)
        outcome = _OUTCOMES.get(event.outcome, "failed") if event.outcome is not None else "failed"
        if outcome == "abandoned" and call.operator is not None and call.connected is None:
            stats.abandons += 1  # put through, but the operator never picked up
        if call.operator is not None:
            operator_id = call.operator.operator_id
            self._reserved.pop(operator_id, None)
            started = self._talk_since.pop(operator_id, None)
            if started is not None:
                self._handle_times.append(now - started)
                del self._handle_times[:-RECENT]
                self._wrapup_until[operator_id] = now + self.wrapup_seconds
            self._idle_since[operator_id] = now
        return Ended(call, outcome)

    def _occupy(self, interface: str, linkedid: str) -> None:
        self._busy.setdefault(interface, set()).add(linkedid)
        self._on_call.setdefault(linkedid, set()).add(interface)

    def _release(self, interface: str, linkedid: str) -> None:
        """Kept by both maps: an ended call frees its interfaces without a scan of every busy one
        (the scan was 2 % of the product's CPU at 100 calls/s)."""
        for key, value, index in ((interface, linkedid, self._busy), (linkedid, interface, self._on_call)):
            held = index.get(key)
            if held is not None:
                held.discard(value)
                if not held:
                    del index[key]

    def _campaign(self, campaign_id: int) -> _Campaign:
        return self._campaigns.setdefault(campaign_id, _Campaign())

    def abandon_rate(self, campaign_id: int) -> float:
        stats = self._campaign(campaign_id)
        return stats.abandons / stats.live_answers if stats.live_answers else 0.0
