"""The agent's own status from the desk (ready, or paused for one of the centre's pause reasons,
`crm_core.pause_reasons`) and their day.

A status change goes through the door and audit of a supervisor's pause (`SupervisorActions.pause`),
on the agent themselves and in every queue they are in. What the desk shows afterwards comes from
Asterisk's queue events (`routing.wall` tells each desk its status), so a supervisor's pause or
Asterisk's auto-pause shows there the same way. Their day (`GET /api/me/today`) is read from the
call log and the stored pauses, as the reports count them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent_desk.auth import CurrentOperator, api_operator, api_writer, session_language
from agent_desk.http import zone_of
from agent_desk.i18n import translate
from agent_desk.reports import Person, pause_facts, pause_times
from agent_desk.supervisor import ActionProblem, SupervisorActions
from ami_bridge.tracker import normalize_interface
from crm_core import pause_reasons
from crm_core.agents import agents_overview
from crm_core.audit import Actor
from crm_core.models import Call, utcnow
from routing.live import DeskStatus, desk_status

router = APIRouter()


class StatusIn(BaseModel):
    state: Literal["ready", "paused"]
    reason: str = ""  # the code of a pause reason in use, when paused


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
    desk = request.app.state.desk
    if paused and body.reason not in await asyncio.to_thread(_codes_in_use, desk.sessions):
        raise HTTPException(422, translate(lang, "status.err.reason"))
    try:
        await SupervisorActions(desk.sessions, desk.supervision).pause(
            Actor(operator.id, operator.login), operator.id, paused, None, body.reason if paused else "")
    except ActionProblem as problem:
        raise HTTPException(problem.status, problem.text(lang)) from None
    return StatusOut(state=body.state, reason=body.reason if paused else "")


def _codes_in_use(sessions: Any) -> set[str]:
    with sessions() as session:
        return {r.code for r in pause_reasons.in_use(session)}


class TodayOut(BaseModel):
    answered: int  # calls they talked on, inbound and outbound
    talk_seconds: int
    paused_seconds: int  # as the pause report counts (a supervisor's logout is no pause)


def my_day(session: Session, operator_id: int, interface: str | None, start: datetime, now: datetime) -> TodayOut:
    """The agent's answered calls, talk and pause time from `start` (their midnight) to `now`."""
    answered, talk = session.execute(
        select(func.count(Call.id), func.coalesce(func.sum(Call.talk_seconds), 0))
        .where(Call.operator_id == operator_id, Call.started_at >= start, Call.answered_at.is_not(None))).one()
    me = {operator_id: Person("me", normalize_interface(interface) if interface else None)}
    paused = pause_times(pause_facts(session, start, now, me), start, now, ())[-1].paused  # only the sum counts
    return TodayOut(answered=answered, talk_seconds=int(talk), paused_seconds=paused)


@router.get("/api/me/today", response_model=TodayOut, tags=["desk"])
def today(request: Request, operator: Annotated[CurrentOperator, Depends(api_operator)],
          tz: Annotated[str, Query(max_length=64)] = "") -> TodayOut:
    """Since midnight in the browser's zone (`tz`; UTC when it is none)."""
    now = utcnow()
    zone = zone_of(tz)
    start = datetime.combine(now.astimezone(zone).date(), time(), zone).astimezone(UTC)
    with request.app.state.desk.sessions() as session:
        return my_day(session, operator.id, operator.interface, start, now)
