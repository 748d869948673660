"""Campaign tables: what a campaign dials and how, who takes its calls, and what happened.

`CampaignDebt` is the campaign's list, materialised from its filters, with each debt's place
in the retry schedule; `DialAttempt` is one Originate (keyed by its pre-assigned ChannelId,
which is also the call's Linkedid); `DialSkip` is the latest reason a number was not dialled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.models import Base, Debt, Department, Operator, utcnow

CAMPAIGN_STATUSES = ("draft", "running", "paused", "finished")
# Outcomes of one dial attempt; the retry rules are keyed by the ones that are retried.
ATTEMPT_OUTCOMES = ("placed", "no_answer", "busy", "failed", "answered", "abandoned", "machine")


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="draft")  # CAMPAIGN_STATUSES
    rule_set: Mapped[str] = mapped_column(String(32), default="ru_230fz")  # routing.compliance.RULE_SETS
    mode: Mapped[str] = mapped_column(String(16), default="progressive")  # routing.pacing.MODES
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    max_lines: Mapped[int] = mapped_column(default=10)
    ring_seconds: Mapped[int] = mapped_column(default=30)
    # {"min_days": 30, "max_days": null, "min_total": "1000", "max_total": null,
    #  "regions": ["Москва"], "statuses": ["active"]}
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "20:00", "time_zone": "Europe/Moscow"};
    # the centre's own hours: the law's hours in the debtor's time are checked on top, always.
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # {"no_answer": {"delay_minutes": 120, "max_attempts": 5}, "busy": {...}, ...}
    retry: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    script: Mapped[str] = mapped_column(Text, default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    department: Mapped[Department | None] = relationship()
    operators: Mapped[list[Operator]] = relationship(secondary="campaign_operators")


class CampaignOperator(Base):
    """An operator assigned to a campaign; the dialler hands calls only to `ready` ones (the desk's
    toggle, cleared when their desk disconnects)."""

    __tablename__ = "campaign_operators"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"), primary_key=True)
    ready: Mapped[bool] = mapped_column(default=False)


class CampaignDebt(Base):
    """A debt on a campaign's list: `pending` until dialled out (`done`) or dropped (`excluded`)."""

    __tablename__ = "campaign_debts"
    __table_args__ = (Index("ix_campaign_debts_due", "campaign_id", "state", "next_at"),)

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    debt_id: Mapped[int] = mapped_column(ForeignKey("debts.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending / dialling / done / excluded
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # None: now
    last_outcome: Mapped[str] = mapped_column(String(16), default="")

    debt: Mapped[Debt] = relationship()


class DialAttempt(Base):
    """One call the dialler placed; `channel_id` is the Originate's ChannelId and the call's Linkedid."""

    __tablename__ = "dial_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    debt_id: Mapped[int] = mapped_column(ForeignKey("debts.id", ondelete="CASCADE"), index=True)
    phone_e164: Mapped[str] = mapped_column(String(20))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the debtor picked up
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # an operator took it
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    outcome: Mapped[str] = mapped_column(String(16), default="placed")  # ATTEMPT_OUTCOMES
    disposition: Mapped[str] = mapped_column(String(32), default="")  # routing.campaigns.dispositions

    debt: Mapped[Debt] = relationship()
    operator: Mapped[Operator | None] = relationship()


class DialSkip(Base):
    """Why a debt's number was last not dialled (compliance verdict or phone status), for the report."""

    __tablename__ = "dial_skips"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    debt_id: Mapped[int] = mapped_column(ForeignKey("debts.id", ondelete="CASCADE"), primary_key=True)
    phone_e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    code: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    next_allowed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(default=1)

    debt: Mapped[Debt] = relationship()
