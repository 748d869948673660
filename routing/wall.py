"""The wall service: QueueEvents from the bus into LiveState, the wall snapshot back onto the bus.

One instance runs next to the bridge. It publishes the snapshot on WALL_TOPIC at most once
per `min_interval` while something changes (and every `heartbeat` regardless, so the kept
copy never expires under a quiet wall), and keeps the latest under WALL_KEY so any web
worker can hand it to a wall that has just connected. Database work (today's seed,
operators, caller cards, thresholds) runs in a thread, never on the event loop.

Each agent's own status (ready, paused and why, out of every queue) goes to their desk's topic
when it changes, and is kept under `desk_status_key` for a desk that connects later. Every desk
also hears the queues' board (`LiveState.board`) on BOARD_TOPIC when it changes, checked every
`board_interval` (not at each snapshot: each change is a message to every desk), kept under BOARD_KEY.

It also writes back what Asterisk said: agents' queue memberships and pauses once the first
resync made them true (crm_core.agents.reconcile), and pause intervals, so today's pause time
survives a restart. A supervisor's threshold change arrives on THRESHOLDS_TOPIC, a change of the
pause reasons on PAUSES_TOPIC; both are reloaded for the next snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ami_bridge.events import QueueEvent
from ami_bridge.tracker import normalize_interface
from callcard.bus import (
    BOARD_KEY,
    BOARD_TOPIC,
    QUEUES_TOPIC,
    WALL_KEY,
    WALL_TOPIC,
    Bus,
    Subscription,
    desk_topic,
)
from crm_core import agents, pause_reasons
from crm_core.cards import clients_for_number
from crm_core.models import Call, Client, Operator, as_utc
from crm_core.phones import shown_number, try_normalize
from routing import thresholds as stored_thresholds
from routing.live import (
    FIGURES_CHUNK,
    Caller,
    LiveState,
    MemberTruth,
    OperatorRef,
    PauseChange,
    SeedCall,
    Thresholds,
)

log = logging.getLogger(__name__)

SNAPSHOT_FIELD = "snapshot"
STATUS_FIELD = "status"
BOARD_FIELD = "board"
STATUS_TTL = 24 * 3600.0  # longer than a shift; after it a desk falls back to the stored memberships
OPERATORS_REFRESH_SECONDS = 60.0


async def kept_wall(bus: Bus) -> dict[str, Any] | None:
    """The latest wall snapshot any worker kept, or None when no wall service runs."""
    return (await bus.kept(WALL_KEY)).get(SNAPSHOT_FIELD)


async def kept_board(bus: Bus) -> dict[str, Any] | None:
    """The queues' board as last told to the desks, or None when no wall service runs."""
    return (await bus.kept(BOARD_KEY)).get(BOARD_FIELD)


def desk_status_key(operator_id: int) -> str:
    return f"status.{desk_topic(operator_id)}"


async def kept_desk_status(bus: Bus, operator_id: int) -> dict[str, Any] | None:
    """The agent's status as last told to their desk, or None when none is kept."""
    return (await bus.kept(desk_status_key(operator_id))).get(STATUS_FIELD)


def _summed_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts summed over queues; the abandon rate rebuilt from them, the other ratios unknown (None)."""
    answered = sum(r.get("answered") or 0 for r in rows)
    abandoned = sum(r.get("abandoned") or 0 for r in rows)
    offered = answered + abandoned
    return {"answered": answered, "abandoned": abandoned, "service_level": None, "asa": None, "aht": None,
            "abandon_rate": round(100 * abandoned / offered, 1) if offered else None}


def scoped_snapshot(snapshot: dict[str, Any], queues: frozenset[str]) -> dict[str, Any]:
    """A department head's wall (pure): their queues, the agents in them, and totals and the day's
    chart over those queues. Several queues' ratios cannot be rebuilt from their per-queue ratios, so
    over more than one queue the totals and chart carry counts and the abandon rate only."""
    mine = [q for q in snapshot.get("queues", []) if q.get("name") in queues]
    agents = [a for a in snapshot.get("agents", []) if set(a.get("queues") or ()) & queues]
    if len(mine) == 1:
        totals = {k: mine[0].get(k) for k in ("answered", "abandoned", "service_level", "abandon_rate", "asa",
                                                "aht")}
        intervals = mine[0].get("intervals", [])
    else:
        totals = _summed_figures(mine)
        slots: dict[Any, list[dict[str, Any]]] = {}
        for queue in mine:
            for slot in queue.get("intervals", []):
                slots.setdefault(slot.get("start"), []).append(slot)
        intervals = [{"start": start, **_summed_figures(rows)} for start, rows in sorted(slots.items())]
    totals |= {"waiting": sum(len(q.get("waiting", [])) for q in mine),
               "longest_wait": max((q.get("longest_wait", 0) for q in mine), default=0)}
    return {**snapshot, "queues": mine, "agents": agents, "totals": totals, "intervals": intervals}


def _epoch(value: datetime | None) -> float | None:
    return as_utc(value).timestamp() if value is not None else None


class WallService:
    """Owns one LiveState; see the module docstring for what it publishes and keeps."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        bus: Bus,
        *,
        region: str = "RU",
        thresholds: dict[str, Thresholds] | None = None,
        min_interval: float = 0.5,
        board_interval: float = 2.0,
        heartbeat: float = 5.0,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.region = region
        self.state = LiveState(thresholds)
        self.min_interval = min_interval
        self.board_interval = board_interval
        self.heartbeat = heartbeat
        self.ttl = ttl
        self.clock = clock
        self.published = 0
        self._dirty = asyncio.Event()
        self._telling = asyncio.Lock()
        self._operators_at = 0.0
        self._written: dict[str, tuple[MemberTruth, ...]] = {}  # memberships as last reconciled
        self._board: dict[str, dict[str, Any]] | None = None  # as last told to the desks

    # --- database (threads) ------------------------------------------------------------

    def _operators(self) -> dict[str, OperatorRef]:
        with self.sessions() as session:
            rows = session.execute(
                select(Operator.id, Operator.login, Operator.name, Operator.interface)
                .where(Operator.active.is_(True), Operator.interface.is_not(None))
            ).all()
        return {normalize_interface(r.interface): OperatorRef(r.id, r.login, r.name) for r in rows}

    def _today(self, now: float) -> list[SeedCall]:
        since = datetime.fromtimestamp(self.state.day_start(now), UTC)
        with self.sessions() as session:
            rows = session.scalars(select(Call).where(Call.started_at >= since, Call.queue != "")).all()
            return [
                SeedCall(c.linkedid, c.queue, c.agent_interface, _epoch(c.started_at) or now,
                         _epoch(c.answered_at), _epoch(c.ended_at), c.wait_seconds, c.talk_seconds, c.outcome)
                for c in rows
            ]

    def _pauses(self, now: float) -> list[PauseChange]:
        since = datetime.fromtimestamp(self.state.day_start(now), UTC)
        with self.sessions() as session:
            return [PauseChange(normalize_interface(p.interface), _epoch(p.started_at) or now,
                                _epoch(p.ended_at), p.reason) for p in agents.pauses_since(session, since)]

    def _pause_limits(self) -> dict[str, int]:
        with self.sessions() as session:
            return pause_reasons.limits(pause_reasons.in_use(session))

    def _thresholds(self) -> dict[str, Thresholds]:
        with self.sessions() as session:
            return stored_thresholds.load(session)

    def _write_back(self, pauses: list[PauseChange], members: dict[int, tuple[MemberTruth, ...]]) -> None:
        """Pause intervals and Asterisk's memberships into the database, in one transaction."""
        with self.sessions.begin() as session:
            for p in pauses:
                if p.ended is None:
                    op = self.state.operators.get(p.interface)
                    agents.pause_began(session, p.interface, datetime.fromtimestamp(p.started, UTC), p.reason,
                                       op.id if op else None)
                else:
                    agents.pause_ended(session, p.interface, datetime.fromtimestamp(p.ended, UTC))
            at = datetime.fromtimestamp(self.clock(), UTC)
            for operator_id, truth in members.items():
                agents.reconcile(session, operator_id, (agents.Membership(m.queue, m.penalty, m.paused, m.reason)
                                                        for m in truth), at)

    def _callers(self, numbers: set[str]) -> dict[str, Caller]:
        """Each number as people write it, and name and segment of the client behind it (the first
        of several), None if unknown."""
        found: dict[str, Caller] = {}
        with self.sessions() as session:
            for number in numbers:
                e164 = try_normalize(number, self.region)
                matches = clients_for_number(session, e164) if e164 else []
                client = session.get(Client, matches[0].client_id) if matches else None
                found[number] = Caller(shown_number(number, e164), None if client is None else {
                    "id": client.id, "name": client.name, "segment": client.segment, "matches": len(matches),
                })
        return found

    # --- running -----------------------------------------------------------------------

    async def start(self) -> Subscription:
        """Subscribe, then seed today's figures: events arriving meanwhile wait in the subscription."""
        sub = await self.bus.subscribe(QUEUES_TOPIC)
        now = self.clock()
        operators, today, pauses, limits, pause_limits = await asyncio.gather(
            asyncio.to_thread(self._operators), asyncio.to_thread(self._today, now),
            asyncio.to_thread(self._pauses, now), asyncio.to_thread(self._thresholds),
            asyncio.to_thread(self._pause_limits))
        self.state.set_operators(operators)
        self.state.set_thresholds(limits)
        self.state.set_pause_limits(pause_limits)
        self._operators_at = now
        self.state.seed(today, now)
        self.state.seed_pauses(pauses, now)
        return sub

    async def run(self, stop: asyncio.Event) -> None:
        changes = await self.bus.subscribe(stored_thresholds.THRESHOLDS_TOPIC, pause_reasons.PAUSES_TOPIC)
        sub = await self.start()
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._consume(sub)), group.create_task(self._publish_forever()),
                         group.create_task(self._reload_thresholds(changes)),
                         group.create_task(self._board_forever())]
                await stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            await sub.close()
            await changes.close()

    async def _consume(self, sub: Subscription) -> None:
        while True:
            message = await sub.get()
            try:
                self.state.apply(QueueEvent.from_dict(message))
            except Exception:
                log.exception("wall: could not apply queue event %r", message.get("kind"))
            if self.state.desk_changes and not self._telling.locked():  # else the teller sees them too
                await self._tell_desks()
            self._dirty.set()

    async def _reload_thresholds(self, changes: Subscription) -> None:
        """A supervisor changed a queue's thresholds or the pause reasons: both are read again."""
        while True:
            await changes.get()
            try:
                self.state.set_thresholds(await asyncio.to_thread(self._thresholds))
                self.state.set_pause_limits(await asyncio.to_thread(self._pause_limits))
            except Exception:
                log.exception("wall: could not reload the thresholds and pause limits")
            if self.state.desk_changes:
                await self._tell_desks()
            self._dirty.set()

    async def _publish_forever(self) -> None:
        while True:
            try:  # not wait_for: in 3.11 it loses a cancel that comes as the event is set
                async with asyncio.timeout(self.heartbeat):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            self._dirty.clear()
            try:
                await self.publish()
            except Exception:
                log.exception("wall: could not publish the snapshot")
            await asyncio.sleep(self.min_interval)  # changes meanwhile go out together, right after

    async def publish(self) -> dict[str, Any]:
        """Look up new callers' cards, then publish and keep one snapshot."""
        now = self.clock()
        if now - self._operators_at >= OPERATORS_REFRESH_SECONDS:
            self.state.set_operators(await asyncio.to_thread(self._operators))
            self._operators_at = now
        numbers = self.state.unknown_numbers()
        if numbers:
            self.state.learn_callers(await asyncio.to_thread(self._callers, numbers))
        figures: dict[str, Any] = {}
        for step in self.state.figure_steps(self.clock()):
            if step is None:
                await asyncio.sleep(0)  # let pops through: see LiveState.figure_steps
            else:
                figures = step
        snapshot = {"type": "wall", **figures}
        await self._tell_desks()
        await self._write_back_changes()
        await self.bus.publish(WALL_TOPIC, snapshot)
        await self.bus.keep(WALL_KEY, SNAPSHOT_FIELD, snapshot, self.ttl)
        self.published += 1
        return snapshot

    async def _tell_desks(self) -> None:
        """Each changed status kept, then published (a desk subscribes, then reads the kept one:
        it never misses a change), in order; what the bus refused stays for the next try."""
        changes = self.state.desk_changes
        async with self._telling:  # the consumer and the publisher both tell
            while changes:
                interface, message = changes[0]
                op = self.state.operators.get(interface)
                if op is not None:
                    try:
                        await self.bus.keep(desk_status_key(op.id), STATUS_FIELD, message, STATUS_TTL)
                        await self.bus.publish(desk_topic(op.id), message)
                    except Exception:
                        log.exception("wall: could not tell desk %s its status", op.login)
                        return
                del changes[0]

    async def _board_forever(self) -> None:
        while True:
            try:
                await self.tell_board()
            except Exception:
                log.exception("wall: could not tell the desks the board")
            await asyncio.sleep(self.board_interval)

    async def tell_board(self) -> None:
        """Kept every time (for a desk that connects; it outlives the TTL), published only when changed."""
        board = self.state.board()
        message = {"type": "board", "queues": board}
        await self.bus.keep(BOARD_KEY, BOARD_FIELD, message, self.ttl)
        if board != self._board:
            await self.bus.publish(BOARD_TOPIC, message)
            self._board = board

    async def _write_back_changes(self) -> None:
        """Persist new pause intervals and changed memberships; kept for the next try on failure."""
        pauses = list(self.state.pause_changes)
        members: dict[int, tuple[MemberTruth, ...]] = {}
        changed: dict[str, tuple[MemberTruth, ...]] = {}
        if self.state.synced:
            interfaces = self.state.agent_interfaces()
            for start in range(0, len(interfaces), FIGURES_CHUNK):
                if start:
                    await asyncio.sleep(0)  # 1,000 agents in one go held up the pops behind them
                for interface in interfaces[start:start + FIGURES_CHUNK]:
                    op = self.state.operators.get(interface)
                    if op is not None and self._written.get(interface) != (truth := self.state.membership(interface)):
                        members[op.id], changed[interface] = truth, truth
        if not pauses and not members:
            return
        try:
            await asyncio.to_thread(self._write_back, pauses, members)
        except Exception:
            log.exception("wall: could not write pauses and memberships back")
            return
        del self.state.pause_changes[:len(pauses)]
        self._written.update(changed)
