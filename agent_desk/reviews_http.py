"""Quality reviews over HTTP: a supervising role scores a call it may play (crm_core.reviews)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from agent_desk.auth import SUPERVISING, CurrentOperator, api_role, session_language
from agent_desk.i18n import explain, translate
from agent_desk.recordings_http import playable_call
from crm_core import reviews
from crm_core.models import utcnow

router = APIRouter(prefix="/api", tags=["desk"])


class ReviewIn(BaseModel):
    score: int = Field(ge=1, le=5)
    comment: str = Field("", max_length=reviews.COMMENT_MAX)


class ReviewOut(BaseModel):
    score: int
    comment: str
    reviewer: str
    reviewed_at: str


def reviewer(request: Request) -> CurrentOperator:
    """Logged in (401) in a supervising role (403), with the CSRF header."""
    return api_role(request, SUPERVISING, csrf=True)


@router.put("/calls/{linkedid}/review", response_model=ReviewOut)
def review(
    request: Request, operator: Annotated[CurrentOperator, Depends(reviewer)], linkedid: str, body: ReviewIn
) -> ReviewOut:
    """Score an answered call within the reviewer's reach (a 404 beyond it, as for its recording)."""
    with request.app.state.desk.sessions() as session:
        call = playable_call(session, operator, linkedid)
        if call is None:
            raise HTTPException(404, translate(session_language(request), "api.not_found"))
        try:
            given = reviews.review_call(session, call, operator.id, body.score, body.comment, utcnow())
        except reviews.InvalidReview as exc:
            raise HTTPException(422, explain(session_language(request), exc)) from None
        session.commit()
    return ReviewOut(score=given.score, comment=given.comment, reviewer=given.reviewer,
                     reviewed_at=given.reviewed_at.isoformat())
