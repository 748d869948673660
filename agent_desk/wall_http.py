"""`/wall` and `/api/wall`: the supervisor wall page and its latest snapshot (supervisors, admins and
department heads, who see their departments' queues only).

The page is a shell; the figures come over `/ws/wall` (wall_ws.py). `/api/wall` serves the
snapshot the wall service keeps on the bus store, so any web worker answers from it at once.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse

from agent_desk.auth import (
    SUPERVISING,
    CurrentOperator,
    page_operator,
    require_role,
    session_language,
    supervised_queues,
)
from agent_desk.i18n import translate
from agent_desk.pages import _render  # the desk's page shell: same header, language and CSRF blob
from crm_core import pause_reasons
from crm_core.visibility import queue_names
from routing.wall import kept_wall, scoped_snapshot

WALL_ROLES = SUPERVISING

router = APIRouter()


def wall_viewer(operator: Annotated[CurrentOperator, Depends(page_operator)], request: Request) -> CurrentOperator:
    """Dependency for the page: logged in (else the login form) with a supervising role (else 403)."""
    if operator.role not in WALL_ROLES:
        raise HTTPException(403, translate(session_language(request), "api.forbidden"))
    return operator


@router.get("/wall", response_class=HTMLResponse, include_in_schema=False)
def wall_page(request: Request, operator: Annotated[CurrentOperator, Depends(wall_viewer)]) -> HTMLResponse:
    with request.app.state.desk.sessions() as session:
        names = queue_names(session)
        pauses = pause_reasons.names(pause_reasons.load(session), session_language(request))
    return _render(request, "wall.html", operator, active="wall", data={"queue_names": names, "pause_names": pauses})


@router.get("/api/wall")
async def wall_snapshot(
    request: Request, operator: Annotated[CurrentOperator, Depends(require_role(*WALL_ROLES))]
) -> dict[str, Any]:
    """The latest wall snapshot (see README, "Supervisor wall"); 503 when no wall service runs."""
    snapshot = await kept_wall(request.app.state.desk.bus)
    if snapshot is None:
        raise HTTPException(503, translate(session_language(request), "wall.no_data"))
    queues = await asyncio.to_thread(supervised_queues, request.app.state.desk.sessions, operator)
    return snapshot if queues is None else scoped_snapshot(snapshot, queues)
