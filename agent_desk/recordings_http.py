"""Call recordings over HTTP: who may play which, and the file itself (seekable, audited).

Supervisors and admins play any call, department heads their departments' calls, operators the
calls they answered themselves (handed over to a colleague or not). A call the asker may not play
is a 404, as if it had none: the answer tells nothing about other people's calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from agent_desk.auth import SUPERVISING, CurrentOperator, api_operator, session_language
from agent_desk.i18n import translate
from crm_core import recordings
from crm_core.audit import OK, Actor, record
from crm_core.models import Call
from crm_core.visibility import handed_over, visible_calls

router = APIRouter(prefix="/api", tags=["desk"])
MAX_ASKED = 20  # a card shows its last 10 calls and notes


class PlayableOut(BaseModel):
    playable: list[str]  # Linkedids


def recordings_root(request: Request) -> Path | None:
    folder = request.app.state.desk.settings.recordings_dir
    return Path(folder) if folder else None


def calls_in_view(operator: CurrentOperator, *where: ColumnElement[bool]) -> Select[tuple[Call]]:
    """The calls matching `where` that the operator may see (visible_calls)."""
    condition = visible_calls(operator.viewer)
    return select(Call).where(*where, *([condition] if condition is not None else []))


def may_play(session: Session, operator: CurrentOperator, calls: Iterable[Call]) -> set[str]:
    """The Linkedids among `calls` (already within the operator's view, visible_calls) whose
    recording they may play, had it one: any for supervisors, department heads and admins; for an
    operator, the calls they answered, handed over to a colleague or not."""
    calls = list(calls)
    if operator.role in SUPERVISING:
        return {c.linkedid for c in calls}
    theirs = {c.linkedid for c in calls if c.operator_id == operator.id}
    others = [c.linkedid for c in calls if c.linkedid not in theirs]
    if others:
        theirs.update(session.scalars(select(Call.linkedid).where(Call.linkedid.in_(others),
                                                                  handed_over(operator.id))))
    return theirs


def playable(root: Path | None, session: Session, operator: CurrentOperator, calls: Iterable[Call]) -> set[str]:
    """The Linkedids among `calls` (already within the operator's view) they may play and that have
    a recording on disk."""
    if root is None:
        return set()
    talked = [c for c in calls if c.talk_seconds]
    allowed = may_play(session, operator, talked)
    return {c.linkedid for c in talked if c.linkedid in allowed and recordings.find(root, c.linkedid, c.started_at)}


def playable_call(session: Session, operator: CurrentOperator, linkedid: str) -> Call | None:
    """The call, if the operator may play it (and so read or give its quality review)."""
    call = session.scalar(calls_in_view(operator, Call.linkedid == linkedid))
    return call if call is not None and may_play(session, operator, [call]) else None


@router.get("/calls/playable", response_model=PlayableOut)
def playable_calls(
    request: Request, operator: Annotated[CurrentOperator, Depends(api_operator)],
    linkedid: Annotated[list[str], Query(max_length=MAX_ASKED)] = [],  # noqa: B006 (FastAPI copies it)
) -> PlayableOut:
    """Which of these calls (a popped card's last calls) the asker may play: the desk adds a ▶ to
    those after the card is on screen, so the pop itself waits for no recording lookup."""
    root = recordings_root(request)
    if root is None or not linkedid:
        return PlayableOut(playable=[])
    with request.app.state.desk.sessions() as session:
        calls = session.scalars(calls_in_view(operator, Call.linkedid.in_(linkedid))).all()
        return PlayableOut(playable=sorted(playable(root, session, operator, calls)))


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

