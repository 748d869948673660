"""Quality reviews: a supervisor listens to an answered call's recording and scores it.

A score from 1 to 5 and a comment, what to praise or fix: the operator reads it on their call,
and the reports average it per agent, queue and day. One review per call; reviewing it again
replaces the score, the comment and the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, SmallInteger, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from callcard.refusal import Refusal
from crm_core.db import insert_or_ignore
from crm_core.models import Base, Call, Operator, as_utc

SCORES = range(1, 6)
COMMENT_MAX = 2000


class CallReview(Base):
    """The review of one call (its primary key): deleted with the call, kept when the reviewer leaves."""

    __tablename__ = "call_reviews"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id", ondelete="SET NULL"), nullable=True)
    score: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str] = mapped_column(Text, default="")
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InvalidReview(Refusal):
    """A review the reviewer has to correct."""


@dataclass(frozen=True)
class Review:
    """A call's review as people read it."""

    score: int
    comment: str
    reviewer: str  # the reviewer's name; "" once their account is gone
    reviewed_at: datetime


def review_call(session: Session, call: Call, reviewer_id: int, score: int, comment: str, now: datetime) -> Review:
    """Score an answered call (InvalidReview otherwise); a second review replaces the first."""
    if call.outcome != "answered":
        raise InvalidReview(f"call {call.linkedid} was not answered", "api.review_unanswered")
    if score not in SCORES:
        raise InvalidReview(f"score {score} is not 1 to 5", "api.review_score")
    comment = comment.strip()
    if len(comment) > COMMENT_MAX:
        raise InvalidReview(f"comment longer than {COMMENT_MAX}", "api.review_comment", max=COMMENT_MAX)
    values = {"reviewer_id": reviewer_id, "score": score, "comment": comment, "reviewed_at": now}
    insert_or_ignore(session, CallReview, ["call_id"], call_id=call.id, **values)  # two reviewers at once: no clash
    review = session.get(CallReview, call.id, with_for_update=True, populate_existing=True)
    assert review is not None
    for name, value in values.items():
        setattr(review, name, value)
    session.flush()
    return reviews_of(session, [call.id])[call.id]


def reviews_of(session: Session, call_ids: list[int]) -> dict[int, Review]:
    """The reviews of those calls, by call id (one query)."""
    if not call_ids:
        return {}
    rows = session.execute(
        select(CallReview.call_id, CallReview.score, CallReview.comment, Operator.name, CallReview.reviewed_at)
        .outerjoin(Operator, Operator.id == CallReview.reviewer_id)
        .where(CallReview.call_id.in_(call_ids))
    )
    return {r[0]: Review(r[1], r[2], r[3] or "", as_utc(r[4])) for r in rows}
