"""The centre's pause reasons over HTTP (`crm_core.pause_reasons`): every supervising role reads
them; supervisors and admins change them for the whole centre (a department head's pauses are the
centre's too), audited, and the wall service reloads their limits from the bus.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from agent_desk.auth import CurrentOperator, api_role, session_language
from agent_desk.i18n import translate
from agent_desk.supervisor_http import Reader
from crm_core import pause_reasons
from crm_core.audit import OK, REFUSED, Actor, record
from crm_core.pause_reasons import PauseReason

router = APIRouter()
EDITORS = ("supervisor", "admin")


def editor(request: Request) -> CurrentOperator:
    """Logged in (401) as a supervisor or admin (403, audited), with the CSRF header (403)."""
    return api_role(request, EDITORS, "role does not allow changing pause reasons", csrf=True)


class ReasonIn(BaseModel):
    code: str = Field(max_length=32)
    name_ru: str = Field(max_length=pause_reasons.MAX_NAME)
    name_en: str = Field(max_length=pause_reasons.MAX_NAME)
    limit_minutes: int | None = None
    active: bool = True


class ReasonsIn(BaseModel):
    reasons: list[ReasonIn] = Field(max_length=50)


def listed(sessions: Any) -> list[dict[str, Any]]:
    with sessions() as session:
        return [asdict(r) for r in pause_reasons.load(session)]


@router.get("/api/supervisor/pause-reasons", tags=["supervisor"])
async def reasons_list(request: Request, operator: Reader) -> dict[str, Any]:
    return {"reasons": await asyncio.to_thread(listed, request.app.state.desk.sessions)}


@router.put("/api/supervisor/pause-reasons", tags=["supervisor"])
async def reasons_save(request: Request, operator: Annotated[CurrentOperator, Depends(editor)],
                       body: ReasonsIn) -> dict[str, Any]:
    """Store the whole list in its order; a code in use stays (switched off, not removed)."""
    desk = request.app.state.desk
    lang = session_language(request)
    actor = Actor(operator.id, operator.login)
    reasons = [PauseReason(r.code.strip(), r.name_ru.strip(), r.name_en.strip(), r.limit_minutes, r.active)
               for r in body.reasons]
    after = [asdict(r) for r in reasons]

    def save() -> tuple[list[str], list[dict[str, object]]]:
        with desk.sessions.begin() as session:
            wrong = pause_reasons.problems(reasons, [r.code for r in pause_reasons.load(session)])
            return wrong, ([] if wrong else pause_reasons.save(session, reasons))

    wrong, before = await asyncio.to_thread(save)
    if wrong:
        message = " ".join(translate(lang, key) for key in wrong)
        await asyncio.to_thread(record, desk.sessions, actor, "pause_reasons", "centre", {"after": after}, REFUSED,
                                message)
        raise HTTPException(422, message)
    await asyncio.to_thread(record, desk.sessions, actor, "pause_reasons", "centre",
                            {"before": before, "after": after}, OK)
    stored = await asyncio.to_thread(listed, desk.sessions)
    await desk.bus.publish(pause_reasons.PAUSES_TOPIC, {"type": "pause_reasons", "reasons": stored})  # desks, walls
    return {"message": translate(lang, "preason.saved"), "reasons": stored}
