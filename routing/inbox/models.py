"""Request history: every status change, assignment and comment, in order (the Request is in crm_core)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.models import Base, Operator, utcnow


class RequestEvent(Base):
    __tablename__ = "request_events"
    # `again` events name the missed call they stand for (value = its Linkedid): the missed-call
    # report finds a call's callback through them.
    __table_args__ = (Index("ix_request_events_kind_value", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))  # created / status / assigned / comment / escalated / again
    value: Mapped[str] = mapped_column(String(64), default="")  # the new status, the assignee id, ...
    text: Mapped[str] = mapped_column(Text, default="")

    author: Mapped[Operator | None] = relationship()
