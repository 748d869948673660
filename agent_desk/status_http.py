"""The agent's own status from the desk: ready, or paused for one of `PAUSE_REASONS`.

The change goes through the door and audit of a supervisor's pause (`SupervisorActions.pause`), on
the agent themselves and in every queue they are in. What the desk shows afterwards comes from
Asterisk's queue events (`routing.wall` tells each desk its status), so a supervisor's pause or
Asterisk's auto-pause shows there the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy.orm import Session

from agent_desk.auth import CurrentOperator, api_writer, session_language
from agent_desk.i18n import translate
from agent_desk.supervisor import ActionProblem, SupervisorActions
from crm_core.agents import PAUSE_REASONS, agents_overview
from crm_core.audit import Actor
from routing.live import DeskStatus, desk_status

router = APIRouter()


class StatusIn(BaseModel):
    state: Literal["ready", "paused"]
    reason: str = ""  # one of PAUSE_REASONS when paused


class StatusOut(BaseModel):
    state: str
    reason: str


def stored_status(session: Session, operator_id: int) -> dict[str, Any] | None:
    """The desk's status from the memberships the wall service wrote back (None: no phone): what a
    page shows until its socket brings the live one. When it began is not stored (`at` None)."""
    views = agents_overview(session, only=operator_id)
    if not views:
        return None
    view = views[0]
    status = desk_status((m.queue, m.paused, m.reason) for m in view.queues) if view.logged_in else DeskStatus("out")
    return status.message(None)


@router.put("/api/me/status", response_model=StatusOut, tags=["desk"])
async def set_status(request: Request, operator: Annotated[CurrentOperator, Depends(api_writer)],
                     body: StatusIn) -> StatusOut:
    """Pause oneself in every queue (AMI QueuePause with the reason's code), or be ready again."""
    lang = session_language(request)
    paused = body.state == "paused"
    if paused and body.reason not in PAUSE_REASONS:
        raise HTTPException(422, translate(lang, "status.err.reason"))
    desk = request.app.state.desk
    try:
        await SupervisorActions(desk.sessions, desk.supervision).pause(
            Actor(operator.id, operator.login), operator.id, paused, None, body.reason if paused else "")
    except ActionProblem as problem:
        raise HTTPException(problem.status, problem.text(lang)) from None
    return StatusOut(state=body.state, reason=body.reason if paused else "")
