"""What callcard knows of each agent's queue membership and pause state.

Asterisk is the truth: the wall service writes what the queue events and the QueueStatus
list after each AMI login say (`reconcile`), so the agents page shows Asterisk's picture
without asking the PBX, and supervisors' actions through callcard update the rows at once.
Until either happens for an agent, their queues are their departments' queues (the static
members of queues.conf are expected to mirror departments).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, selectinload

from crm_core.models import Base, Operator, utcnow

LOGGED_OUT = "logged out"  # the pause reason of a static member a supervisor logged out


class AgentState(Base):
    """One row per agent a supervisor has acted on; `logged_in` is False after a forced logout."""

    __tablename__ = "agent_states"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    logged_in: Mapped[bool] = mapped_column(default=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AgentQueue(Base):
    """An agent's membership of one queue, with its penalty and pause."""

    __tablename__ = "agent_queues"

    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    penalty: Mapped[int] = mapped_column(Integer, default=0)
    paused: Mapped[bool] = mapped_column(default=False)
    pause_reason: Mapped[str] = mapped_column(String(64), default="")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AgentPause(Base):
    """One pause of an agent (paused in any queue), from Asterisk's queue events; open while
    `ended_at` is None. Today's pause time is rebuilt from these after a restart. `operator_id` is
    whose device it was then, so an agent's pauses stay theirs when phones are swapped (None: rows
    from before it was kept whose device no operator had, and devices no operator has)."""

    __tablename__ = "agent_pauses"

    id: Mapped[int] = mapped_column(primary_key=True)
    interface: Mapped[str] = mapped_column(String(128), index=True)  # the device, normalised
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str] = mapped_column(String(64), default="")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"), nullable=True,
                                                    index=True)


@dataclass(frozen=True)
class Membership:
    queue: str
    penalty: int = 0
    paused: bool = False
    reason: str = ""


@dataclass(frozen=True)
class AgentView:
    id: int
    login: str
    name: str
    role: str
    interface: str
    logged_in: bool
    queues: tuple[Membership, ...]
    departments: tuple[str, ...]

    @property
    def paused(self) -> bool:
        """Paused when paused in every queue they are in (a pause in one queue is shown per queue)."""
        return bool(self.queues) and all(q.paused for q in self.queues)


def queue_interface(interface: str) -> str:
    """The queue member's Interface for an agent's device: `Local/101@agents` -> `Local/101@agents/n`.

    Local-channel members carry `/n` in queues.conf (README), while callcard keeps the device
    without it; `QueuePause`/`QueueRemove` must name the member exactly as Asterisk has it."""
    if interface.startswith("Local/") and interface.count("/") == 1:
        return f"{interface}/n"
    return interface


def _department_queues(operator: Operator) -> list[str]:
    return sorted({d.queue for d in operator.departments if d.queue})


def agents_overview(session: Session, only: int | None = None) -> list[AgentView]:
    """Every active person with a phone (or the one `only` names), with their queues as callcard
    knows them."""
    operators_q = select(Operator).where(Operator.active.is_(True), Operator.interface.is_not(None))
    states_q, rows_q = select(AgentState), select(AgentQueue).order_by(AgentQueue.queue)
    if only is not None:
        operators_q = operators_q.where(Operator.id == only)
        states_q, rows_q = states_q.where(AgentState.operator_id == only), rows_q.where(AgentQueue.operator_id == only)
    operators = session.scalars(
        operators_q.options(selectinload(Operator.departments)).order_by(Operator.login)).all()
    states = {s.operator_id: s for s in session.scalars(states_q)}
    rows: dict[int, list[AgentQueue]] = {}
    for row in session.scalars(rows_q):
        rows.setdefault(row.operator_id, []).append(row)
    views = []
    for op in operators:
        state = states.get(op.id)
        if state is None:
            queues = tuple(Membership(q) for q in _department_queues(op))
        else:
            queues = tuple(Membership(r.queue, r.penalty, r.paused, r.pause_reason) for r in rows.get(op.id, []))
        views.append(AgentView(op.id, op.login, op.name, op.role, op.interface or "",
                               state is None or state.logged_in, queues,
                               tuple(d.code for d in op.departments)))
    return views


def _state(session: Session, operator: Operator, at: datetime) -> AgentState:
    """The agent's state row, created from their departments' queues on first use."""
    state = session.get(AgentState, operator.id)
    if state is None:
        state = AgentState(operator_id=operator.id, logged_in=True, changed_at=at)
        session.add(state)
        for queue in _department_queues(operator):
            session.add(AgentQueue(operator_id=operator.id, queue=queue, changed_at=at))
        session.flush()
    return state


def record_pause(session: Session, operator: Operator, queue: str | None, paused: bool, reason: str,
                 at: datetime) -> None:
    """Asterisk paused (or unpaused) the agent in `queue`, or in all their queues when None."""
    _state(session, operator, at)
    query = select(AgentQueue).where(AgentQueue.operator_id == operator.id)
    if queue is not None:
        query = query.where(AgentQueue.queue == queue)
    found = list(session.scalars(query))
    if queue is not None and not found:  # a member Asterisk has that callcard did not know of
        found = [AgentQueue(operator_id=operator.id, queue=queue)]
        session.add(found[0])
    for row in found:
        row.paused, row.pause_reason, row.changed_at = paused, reason if paused else "", at


def record_added(session: Session, operator: Operator, queue: str, penalty: int, paused: bool,
                 at: datetime) -> None:
    state = _state(session, operator, at)
    state.logged_in, state.changed_at = True, at
    row = session.get(AgentQueue, (operator.id, queue))
    if row is None:
        row = AgentQueue(operator_id=operator.id, queue=queue)
        session.add(row)
    row.penalty, row.paused, row.pause_reason, row.changed_at = penalty, paused, "", at


def record_removed(session: Session, operator: Operator, queue: str, at: datetime) -> None:
    _state(session, operator, at)
    session.execute(delete(AgentQueue).where(AgentQueue.operator_id == operator.id, AgentQueue.queue == queue))


def current_queues(session: Session, operator: Operator, at: datetime) -> list[str]:
    """The queues callcard believes the agent is in (what a logout removes them from)."""
    _state(session, operator, at)
    return list(session.scalars(
        select(AgentQueue.queue).where(AgentQueue.operator_id == operator.id).order_by(AgentQueue.queue)
    ))


def record_logged_out(session: Session, operator: Operator, at: datetime) -> None:
    """Marked logged out; the queues they were removed from are dropped one by one by the caller."""
    state = _state(session, operator, at)
    state.logged_in, state.changed_at = False, at


def reconcile(session: Session, operator_id: int, truth: Iterable[Membership], at: datetime) -> None:
    """Make the agent's rows what Asterisk reports; logged in unless in no queue or paused
    everywhere as logged out."""
    truth = list(truth)
    state = session.get(AgentState, operator_id)
    if state is None:
        state = AgentState(operator_id=operator_id, changed_at=at)
        session.add(state)
    logged_in = bool(truth) and not all(m.paused and m.reason == LOGGED_OUT for m in truth)
    if state.logged_in != logged_in:
        state.logged_in, state.changed_at = logged_in, at
    rows = {r.queue: r for r in session.scalars(select(AgentQueue).where(AgentQueue.operator_id == operator_id))}
    for member in truth:
        row = rows.pop(member.queue, None)
        if row is None:
            row = AgentQueue(operator_id=operator_id, queue=member.queue)
            session.add(row)
        elif (row.penalty, row.paused, row.pause_reason) == (member.penalty, member.paused, member.reason):
            continue
        row.penalty, row.paused, row.pause_reason, row.changed_at = member.penalty, member.paused, member.reason, at
    for row in rows.values():
        session.delete(row)


def pause_began(session: Session, interface: str, at: datetime, reason: str, operator_id: int | None) -> None:
    session.add(AgentPause(interface=interface, started_at=at, reason=reason[:64], operator_id=operator_id))


def pause_ended(session: Session, interface: str, at: datetime) -> None:
    """Close the agent's open pause (there is at most one)."""
    for row in session.scalars(select(AgentPause).where(AgentPause.interface == interface,
                                                        AgentPause.ended_at.is_(None))):
        row.ended_at = at


def pauses_since(session: Session, since: datetime) -> list[AgentPause]:
    """Pauses that were open at or began after `since`: what today's pause time is made of."""
    return list(session.scalars(select(AgentPause).where(
        (AgentPause.ended_at.is_(None)) | (AgentPause.ended_at > since)).order_by(AgentPause.started_at)))
