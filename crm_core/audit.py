"""The audit log: who did what to whom, when, and how it went, for every supervisor action.

A refused or failed action is written too (with its error), because "someone tried to
listen to my call and the PBX said no" is exactly what an audit must be able to show.
Rows are written in their own transaction, so a failing action cannot roll its audit back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from crm_core.models import Base, utcnow

OK, REFUSED, FAILED = "ok", "refused", "failed"  # done / not allowed or not possible / the PBX said no


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"), index=True)
    actor_login: Mapped[str] = mapped_column(String(64))  # kept as it was: logins can be renamed
    action: Mapped[str] = mapped_column(String(32))  # pause / unpause / queue_add / spy / export ...
    target: Mapped[str] = mapped_column(String(128), default="")  # an operator login, a report name
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    outcome: Mapped[str] = mapped_column(String(16))  # ok / refused / failed
    error: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class Actor:
    """Who acts; detached from any session so it can be logged after the request's session closed."""

    id: int | None
    login: str


def record(
    sessions: sessionmaker[Session],
    actor: Actor,
    action: str,
    target: str,
    details: dict[str, Any],
    outcome: str,
    error: str = "",
    at: datetime | None = None,
) -> int:
    """Write one audit row in its own transaction; returns its id."""
    with sessions.begin() as session:
        entry = AuditEntry(
            at=at or utcnow(), actor_id=actor.id, actor_login=actor.login[:64], action=action[:32],
            target=target[:128], details=details, outcome=outcome, error=error,
        )
        session.add(entry)
        session.flush()
        return entry.id


def recent(session: Session, limit: int = 50, actor_id: int | None = None) -> list[AuditEntry]:
    """The newest entries first; only one actor's when `actor_id` is given."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if actor_id is not None:
        query = query.where(AuditEntry.actor_id == actor_id)
    return list(session.scalars(query))
