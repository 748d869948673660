"""Call recordings over HTTP: who may play which, and the file itself (seekable, audited).

Supervisors and admins play any call, department heads their departments' calls, operators the
calls they answered themselves. A call the asker may not play is a 404, as if it had none: the
answer tells nothing about other people's calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_desk.auth import SUPERVISING, CurrentOperator, api_operator, session_language
from agent_desk.i18n import translate
from crm_core import recordings
from crm_core.audit import OK, Actor, record
from crm_core.models import Call
from crm_core.visibility import visible_calls

router = APIRouter(prefix="/api", tags=["desk"])


def recordings_root(request: Request) -> Path | None:
    folder = request.app.state.desk.settings.recordings_dir
    return Path(folder) if folder else None


def may_play(operator: CurrentOperator, call: Call) -> bool:
    """Beyond seeing the call (visible_calls): an operator plays only the calls they answered."""
    return operator.role in SUPERVISING or call.operator_id == operator.id


def playable(root: Path | None, operator: CurrentOperator, calls: Iterable[Call]) -> set[str]:
    """The Linkedids among `calls` (already within the operator's view) whose recording they may play."""
    if root is None:
        return set()
    return {c.linkedid for c in calls if c.talk_seconds and may_play(operator, c)
            and recordings.find(root, c.linkedid, c.started_at)}


def playable_call(session: Session, operator: CurrentOperator, linkedid: str) -> Call | None:
    """The call, if the operator may play it (and so read or give its quality review)."""
    query = select(Call).where(Call.linkedid == linkedid)
    condition = visible_calls(operator.viewer)
    if condition is not None:
        query = query.where(condition)
    call = session.scalar(query)
    return call if call is not None and may_play(operator, call) else None


@router.get("/calls/{linkedid}/recording", response_class=FileResponse)
def recording(
    request: Request, operator: Annotated[CurrentOperator, Depends(api_operator)], linkedid: str
) -> FileResponse:
    """The call's WAV file, with byte ranges so the player can seek. The first request of a play
    (from byte 0) is audited; the ranges a seek asks for afterwards are not."""
    root = recordings_root(request)
    with request.app.state.desk.sessions() as session:
        call = playable_call(session, operator, linkedid)
        started = call.started_at if call is not None else None
    path = recordings.find(root, linkedid, started) if root and started else None
    if path is None:
        raise HTTPException(404, translate(session_language(request), "api.no_recording"))
    asked = request.headers.get("range", "").replace(" ", "")
    if not asked or asked.startswith("bytes=0-"):
        record(request.app.state.desk.sessions, Actor(operator.id, operator.login), "recording",
               f"call {linkedid}", {"file": path.name}, OK)
    return FileResponse(path, media_type="audio/wav", filename=f"call-{linkedid}.wav",
                        content_disposition_type="inline", headers={"Cache-Control": "private, no-store"})

