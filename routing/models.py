"""Routing tables: the rule set the admin edits (order, flags, thresholds, DID and IVR maps,
blocked numbers) and the record of transfers made from the desk."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.models import Base, Department, utcnow


class RoutingRule(Base):
    """One rule of `routing.rules.RULE_CODES`: applied in `position` order when enabled."""

    __tablename__ = "routing_rules"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(default=True)


class RoutingSetting(Base):
    """Thresholds and department codes of the rule set, as text (`routing.service.SETTINGS` types them)."""

    __tablename__ = "routing_settings"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), default="")


class DidRoute(Base):
    """A dialled number (DID) or an IVR digit (`kind`) -> the department that answers it."""

    __tablename__ = "did_routes"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # did / ivr
    number: Mapped[str] = mapped_column(String(64), primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))

    department: Mapped[Department] = relationship()


class BlockedNumber(Base):
    __tablename__ = "blocked_numbers"

    e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    reason: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CallTransfer(Base):
    """A transfer an operator made: who handed the call over, to which queue, and when.

    The operator who transferred may still write the call's note: the Call row stays one.
    """

    __tablename__ = "call_transfers"

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), index=True)
    from_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    to_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    to_operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    queue: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QueueThreshold(Base):
    """A queue's wall targets and colour limits (routing.live.Thresholds), as a supervisor set them."""

    __tablename__ = "queue_thresholds"

    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    service_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: the queue's own
    service_level_target: Mapped[float] = mapped_column(Float)
    longest_wait_warn: Mapped[int] = mapped_column(Integer)
    longest_wait_alert: Mapped[int] = mapped_column(Integer)
    abandon_rate_warn: Mapped[float] = mapped_column(Float)
    abandon_rate_alert: Mapped[float] = mapped_column(Float)
    wrapup_seconds: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
