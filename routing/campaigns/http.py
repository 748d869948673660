"""Campaigns over HTTP: supervisors set them up and watch them (/campaigns), operators mark
themselves ready, preview debts and record dispositions (/api/campaigns..., /api/campaign-calls/...).

Routes are thin: `manage`, `dispositions` and the dialler service do the work. Pages are for
supervisors, admins and department heads (an operator gets 403, and an operator's attempt at a
change is audited as refused); a department head sees and runs their departments' campaigns only,
staffed with their departments' people. Every change and every export is audited (crm_core.audit).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_desk.auth import (
    SUPERVISING,
    CurrentOperator,
    api_operator,
    api_writer,
    csrf_ok,
    page_operator,
    session_language,
)
from agent_desk.i18n import translate
from agent_desk.pages import _render
from agent_desk.reports import to_csv
from crm_core.audit import OK, REFUSED, Actor, record
from crm_core.clients import NOTE_MAX
from crm_core.models import OPEN_DEBT_STATUSES, Call, Debt, Department, Operator, operator_departments
from routing import compliance, pacing
from routing.campaigns import dispositions, manage
from routing.campaigns.models import Campaign, CampaignOperator, DialAttempt
from routing.campaigns.retry import DEFAULT_RETRY
from routing.campaigns.service import DialRefused

router = APIRouter()
SKIPS_ON_PAGE = 500
CODE = r"^[a-z0-9_]{0,32}$"


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(operator: CurrentOperator) -> Actor:
    return Actor(operator.id, operator.login)


def _sessions(request: Request) -> Any:
    return request.app.state.desk.sessions


def _audit(request: Request, operator: CurrentOperator, action: str, target: str, details: dict[str, Any],
           outcome: str = OK, error: str = "") -> None:
    record(_sessions(request), _actor(operator), action, target, details, outcome, error)


def _refused(request: Request, operator: CurrentOperator, *, change: bool = False) -> HTMLResponse | None:
    """None for a supervising role; else the 403 page (an attempted change is audited as refused)."""
    if operator.role in SUPERVISING:
        return None
    if change:
        _audit(request, operator, "forbidden", request.url.path, {"method": request.method, "role": operator.role},
               REFUSED, "role does not allow campaign changes")
    return _render(request, "forbidden.html", operator, 403)


Viewer = Annotated[CurrentOperator, Depends(page_operator)]
Reader = Annotated[CurrentOperator, Depends(api_operator)]
Writer = Annotated[CurrentOperator, Depends(api_writer)]
CampaignId = Annotated[int, Path(ge=1)]


# --- operator side ------------------------------------------------------------------------


class ReadyIn(BaseModel):
    ready: bool


class DispositionIn(BaseModel):
    """The desk's disposition form; which fields a code takes is `dispositions.record_disposition`'s rule."""

    code: str = Field(max_length=32)
    amount: str | None = Field(None, max_length=32)
    promised_date: date | None = None
    callback_at: datetime | None = None  # with its zone: the desk sends UTC
    note: str = Field("", max_length=NOTE_MAX)


@router.get("/api/campaigns/mine", tags=["campaigns"])
def my_campaigns(request: Request, operator: Reader) -> list[dict[str, Any]]:
    """The unfinished campaigns the operator is assigned to, with their ready flag and dialling mode."""
    with _sessions(request)() as session:
        return manage.my_campaigns(session, operator.id)


@router.post("/api/campaigns/{campaign_id}/ready", tags=["campaigns"])
def set_ready(request: Request, operator: Writer, campaign_id: CampaignId, body: ReadyIn) -> dict[str, Any]:
    """Ready: the dialler may put this campaign's debtors through to me (cleared when my desk disconnects)."""
    try:
        with _sessions(request).begin() as session:
            manage.set_ready(session, campaign_id, operator.id, body.ready)
    except manage.NotAssigned:
        raise HTTPException(404, _t(request, "campaign.not_assigned")) from None
    except manage.StatusChangeError:
        raise HTTPException(409, _t(request, "campaign.err.finished")) from None
    _audit(request, operator, "campaign_ready", str(campaign_id), {"ready": body.ready})
    return {"id": campaign_id, "ready": body.ready}


def _call_operators(session: Session, channel_id: str) -> tuple[int | None, int | None] | None:
    """(the operator the dialler put the call through to, the one the call log says took it), or None."""
    row = session.execute(
        select(DialAttempt.operator_id, Call.operator_id).outerjoin(Call, Call.linkedid == DialAttempt.channel_id)
        .where(DialAttempt.channel_id == channel_id)).first()
    return None if row is None else (row[0], row[1])


@router.post("/api/campaign-calls/{channel_id}/disposition", tags=["campaigns"])
async def disposition(request: Request, operator: Writer, channel_id: Annotated[str, Path(max_length=64)],
                      body: DispositionIn) -> dict[str, Any]:
    """The result of a campaign call, by the operator who took it or a supervisor (audited either way)."""
    details = body.model_dump(mode="json", exclude={"note"})
    try:
        result, handler = await asyncio.to_thread(_record, request, operator, channel_id, body)
    except HTTPException as refused:
        await asyncio.to_thread(_audit, request, operator, "campaign_disposition", channel_id, details, REFUSED,
                                str(refused.detail))
        raise
    await asyncio.to_thread(_audit, request, operator, "campaign_disposition", channel_id,
                            {**details, "debt_id": result["debt_id"]})
    dialler = getattr(request.app.state, "campaign_dialler", None)
    if dialler is not None and handler is not None:
        dialler.wrapped_up(handler)  # on the loop, like the dialler: free for the next debtor without waiting
    return result


def _record(request: Request, operator: CurrentOperator, channel_id: str,
            body: DispositionIn) -> tuple[dict[str, Any], int | None]:
    """Worker thread: check who asks, record the disposition; the result and the call's operator."""
    with _sessions(request)() as session:
        took = _call_operators(session, channel_id)
    if took is None:
        raise HTTPException(404, _t(request, "campaign.no_call"))
    if operator.id not in took and not operator.sees_all:
        raise HTTPException(403, _t(request, "api.not_your_call"))
    try:
        with _sessions(request).begin() as session:
            attempt = dispositions.record_disposition(
                session, channel_id, body.code, operator.id, amount=body.amount, promised_date=body.promised_date,
                callback_at=body.callback_at, note=body.note, now=_now())
            result = {"channel_id": channel_id, "disposition": attempt.disposition, "debt_id": attempt.debt_id,
                      "debt_status": attempt.debt.status}
            return result, attempt.operator_id
    except dispositions.DispositionError as exc:
        status = {"unknown_call": 404, "already_recorded": 409}.get(exc.code, 422)
        raise HTTPException(status, _t(request, f"disp.err.{exc.code}", **exc.values)) from None


def _dialler(request: Request) -> Any:
    dialler = getattr(request.app.state, "campaign_dialler", None)
    if dialler is None:
        raise HTTPException(503, _t(request, "campaign.no_dialler"))
    return dialler


def _assigned(request: Request, operator: CurrentOperator, campaign_id: int) -> None:
    with _sessions(request)() as session:
        if session.get(CampaignOperator, (campaign_id, operator.id)) is None:
            raise HTTPException(403, _t(request, "campaign.not_assigned"))


@router.post("/api/campaigns/{campaign_id}/preview", tags=["campaigns"])
async def preview_next(request: Request, operator: Writer, campaign_id: CampaignId) -> dict[str, Any]:
    """Preview mode: the next debt the law allows calling now, for the operator to read first."""
    await asyncio.to_thread(_assigned, request, operator, campaign_id)
    found = await _dialler(request).preview_next(operator.id, campaign_id)
    if found is None:
        raise HTTPException(404, _t(request, "campaign.nothing_due"))
    return found


@router.post("/api/campaigns/{campaign_id}/preview/{debt_id}/dial", tags=["campaigns"])
async def preview_dial(request: Request, operator: Writer, campaign_id: CampaignId,
                       debt_id: Annotated[int, Path(ge=1)]) -> dict[str, str]:
    """Call the previewed debtor; the guard's reason comes back (409) when the call is not allowed."""
    await asyncio.to_thread(_assigned, request, operator, campaign_id)
    try:
        channel_id = await _dialler(request).dial_preview(operator.id, campaign_id, debt_id)
    except DialRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return {"channel_id": channel_id}


# --- supervisor pages ----------------------------------------------------------------------


def _choices(session: Session, operator: CurrentOperator) -> dict[str, Any]:
    """The form's lists; a department head's departments and their people only."""
    departments = select(Department.id, Department.name).order_by(Department.name)
    people = (select(Operator.id, Operator.name).where(Operator.active.is_(True), Operator.interface.is_not(None))
              .order_by(Operator.name))
    if not operator.sees_all:
        departments = departments.where(Department.id.in_(operator.departments))
        people = people.where(Operator.id.in_(_staff(operator)))
    return {
        "rule_sets": list(compliance.RULE_SETS), "modes": pacing.MODES, "open_statuses": OPEN_DEBT_STATUSES,
        "retry_outcomes": list(DEFAULT_RETRY), "weekdays": [str(d) for d in range(7)],
        "departments": [(str(i), n) for i, n in session.execute(departments)],
        "operators": [(str(i), n) for i, n in session.execute(people)],
        "regions": [r for r in session.scalars(select(Debt.region).distinct().order_by(Debt.region)) if r],
    }


def _staff(operator: CurrentOperator) -> Any:
    """The people of a department head's departments (a subquery of operator ids)."""
    return (select(operator_departments.c.operator_id)
            .where(operator_departments.c.department_id.in_(operator.departments)))


def _ours(operator: CurrentOperator, campaign: Campaign) -> bool:
    return operator.sees_all or campaign.department_id in operator.departments


def _foreign(request: Request, operator: CurrentOperator, campaign: Campaign, *,
             change: bool = False) -> HTMLResponse | None:
    """None when the campaign is one of the operator's to see; else the 403 page (a change or
    export attempted on another department's campaign is audited as refused)."""
    if _ours(operator, campaign):
        return None
    if change:
        _audit(request, operator, "forbidden", request.url.path, {"method": request.method, "role": operator.role},
               REFUSED, "campaign of another department")
    return _render(request, "forbidden.html", operator, 403, message=_t(request, "api.other_department_agent"))


def _scope_problems(session: Session, operator: CurrentOperator,
                    spec: manage.CampaignSpec) -> list[manage.FormProblem]:
    """A department head's campaign is one of their departments', staffed with their people."""
    if operator.sees_all:
        return []
    problems = []
    if spec.department_id not in operator.departments:
        problems.append(manage.FormProblem("department_id", "campaign.err.choice"))
    staff = set(session.scalars(_staff(operator)))
    if not set(spec.operator_ids) <= staff:
        problems.append(manage.FormProblem("operators", "campaign.err.choice"))
    return problems


def _field_label(request: Request, name: str) -> str:
    """The field as the form labels it; a retry field by its outcome and column."""
    for outcome in DEFAULT_RETRY:
        for suffix, column in (("delay", "campaign.delay_minutes"), ("max", "campaign.max_attempts")):
            if name == f"retry_{outcome}_{suffix}":
                return f"{_t(request, 'attempt.' + outcome)}, {_t(request, column).lower()}"
    return _t(request, f"campaign.{name}")


def _problems(request: Request, problems: list[manage.FormProblem]) -> list[dict[str, str]]:
    """Each problem as text in the page's language, naming the field."""
    return [{"field": p.field, "text": f"{_field_label(request, p.field)}: {_t(request, p.key, **p.values)}"}
            for p in problems]


def _list_page(request: Request, operator: CurrentOperator, session: Session, *, status_code: int = 200,
               form: dict[str, Any] | None = None, errors: list[dict[str, str]] | None = None) -> HTMLResponse:
    now = _now()
    query = select(Campaign).order_by(Campaign.status == "finished", Campaign.name)
    if not operator.sees_all:
        query = query.where(Campaign.department_id.in_(operator.departments))
    rows = [(c, manage.figures(session, c, now)) for c in session.scalars(query)]
    return _render(request, "campaigns.html", operator, status_code, active="campaigns", campaigns=rows,
                   campaign=None, form=form or manage.form_values(None), errors=errors or [],
                   abandon_limit=manage.ABANDON_LIMIT, **_choices(session, operator))


def _campaign_page(request: Request, operator: CurrentOperator, session: Session, campaign: Campaign, *,
                   status_code: int = 200, form: dict[str, Any] | None = None,
                   errors: list[dict[str, str]] | None = None, problem: str = "") -> HTMLResponse:
    return _render(request, "campaign.html", operator, status_code, active="campaigns", campaign=campaign,
                   figures=manage.figures(session, campaign, _now()), codes=manage.skip_codes(session, campaign.id),
                   form=form or manage.form_values(campaign), errors=errors or [], problem=problem,
                   abandon_limit=manage.ABANDON_LIMIT, **_choices(session, operator))


def _campaign(request: Request, session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise HTTPException(404, _t(request, "campaign.not_found"))
    return campaign


@router.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
def campaigns_page(request: Request, operator: Viewer) -> HTMLResponse:
    """Every campaign with its live figures, and the form for a new one."""
    if (refused := _refused(request, operator)) is not None:
        return refused
    with _sessions(request)() as session:
        return _list_page(request, operator, session)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, include_in_schema=False)
def campaign_page(request: Request, operator: Viewer, campaign_id: CampaignId) -> HTMLResponse:
    if (refused := _refused(request, operator)) is not None:
        return refused
    with _sessions(request)() as session:
        campaign = _campaign(request, session, campaign_id)
        if (foreign := _foreign(request, operator, campaign)) is not None:
            return foreign
        return _campaign_page(request, operator, session, campaign)


@router.post("/campaigns/save", response_class=HTMLResponse, include_in_schema=False)
async def save_campaign(request: Request, operator: Viewer) -> Response:
    """Create (no id) or update a campaign; a refused form comes back as typed, every problem named (422)."""
    if (refused := await asyncio.to_thread(_refused, request, operator, change=True)) is not None:
        return refused
    form = await request.form()
    if not csrf_ok(request, str(form.get("csrf", ""))):
        raise HTTPException(403, _t(request, "api.csrf"))
    data = {key: form.getlist(key) for key in form.keys() if key != "csrf"}
    raw_id = str(form.get("id", ""))
    campaign_id = int(raw_id) if raw_id.isdigit() else None
    return await asyncio.to_thread(_save, request, operator, data, campaign_id)


def _save(request: Request, operator: CurrentOperator, data: dict[str, list[Any]],
          campaign_id: int | None) -> Response:
    if campaign_id is not None and not operator.sees_all:
        with _sessions(request)() as session:
            existing = session.get(Campaign, campaign_id)
            if existing is not None and (foreign := _foreign(request, operator, existing, change=True)) is not None:
                return foreign
    try:
        spec = manage.read_form(data)
        with _sessions(request).begin() as session:
            if problems := _scope_problems(session, operator, spec):
                raise manage.CampaignFormError(problems)
            campaign, before = manage.save_campaign(session, spec, campaign_id)
            saved_id = campaign.id
    except LookupError:
        raise HTTPException(404, _t(request, "campaign.not_found")) from None
    except manage.CampaignFormError as exc:
        _audit(request, operator, "campaign_save", str(campaign_id or ""), {"problems": str(exc)}, REFUSED,
               str(exc))
        with _sessions(request)() as session:
            values = manage.submitted_values(data)
            errors = _problems(request, exc.problems)
            if campaign_id is None:
                return _list_page(request, operator, session, status_code=422, form=values, errors=errors)
            campaign = _campaign(request, session, campaign_id)
            return _campaign_page(request, operator, session, campaign, status_code=422, form=values, errors=errors)
    _audit(request, operator, "campaign_save", str(saved_id),
           {"before": _jsonable(before), "after": {**spec.stored(), "operators": list(spec.operator_ids)}})
    return RedirectResponse(f"/campaigns/{saved_id}", status_code=303)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {key: (value.isoformat() if isinstance(value, datetime) else value) for key, value in values.items()}


@router.post("/campaigns/{campaign_id}/status", response_class=HTMLResponse, include_in_schema=False)
def change_status(request: Request, operator: Viewer, campaign_id: CampaignId,
                  csrf: Annotated[str, Form(max_length=128)] = "",
                  action: Annotated[str, Form(max_length=16)] = "") -> Response:
    """Start (builds the list from the filters), pause or finish; an impossible change is a 409 that says why."""
    if (refused := _refused(request, operator, change=True)) is not None:
        return refused
    if not csrf_ok(request, csrf):
        raise HTTPException(403, _t(request, "api.csrf"))
    try:
        with _sessions(request).begin() as session:
            campaign = _campaign(request, session, campaign_id)
            if (foreign := _foreign(request, operator, campaign, change=True)) is not None:
                return foreign
            before = campaign.status
            size = manage.change_status(session, campaign, action, _now())
            after = campaign.status
    except manage.StatusChangeError as exc:
        _audit(request, operator, "campaign_status", str(campaign_id), {"action": action[:16]}, REFUSED, str(exc))
        with _sessions(request)() as session:
            campaign = _campaign(request, session, campaign_id)
            problem = _t(request, "campaign.err.status", action=_t(request, f"campaign.{exc.action}_action"),
                         status=_t(request, f"cstatus.{exc.status}"))
            return _campaign_page(request, operator, session, campaign, status_code=409, problem=problem)
    _audit(request, operator, "campaign_status", str(campaign_id),
           {"action": action, "before": before, "after": after, "list_size": size})
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)


SkipCode = Annotated[str, Query(max_length=32, pattern=CODE)]


@router.get("/campaigns/{campaign_id}/skipped", response_class=HTMLResponse, include_in_schema=False)
def skipped_page(request: Request, operator: Viewer, campaign_id: CampaignId, code: SkipCode = "") -> HTMLResponse:
    """Numbers the dialler did not call and why, in the rule set's own words; filter by verdict code."""
    if (refused := _refused(request, operator)) is not None:
        return refused
    with _sessions(request)() as session:
        campaign = _campaign(request, session, campaign_id)
        if (foreign := _foreign(request, operator, campaign)) is not None:
            return foreign
        rows = manage.skipped(session, campaign_id, code, limit=SKIPS_ON_PAGE + 1)
        return _render(request, "campaign_skips.html", operator, active="campaigns", campaign=campaign,
                       skips=rows[:SKIPS_ON_PAGE], more=len(rows) > SKIPS_ON_PAGE, code=code,
                       codes=manage.skip_codes(session, campaign_id), zone=manage.campaign_zone(campaign))


@router.get("/campaigns/{campaign_id}/skipped.csv", include_in_schema=False)
def skipped_csv(request: Request, operator: Viewer, campaign_id: CampaignId, code: SkipCode = "") -> Response:
    """The whole report as CSV for Excel (formula-safe); every export is audited."""
    if (refused := _refused(request, operator, change=True)) is not None:
        return refused
    with _sessions(request)() as session:
        campaign = _campaign(request, session, campaign_id)
        if (foreign := _foreign(request, operator, campaign, change=True)) is not None:
            return foreign
        zone = manage.campaign_zone(campaign)
        rows = manage.skipped(session, campaign_id, code)
    data = to_csv(manage.SKIP_COLUMNS, (row.cells(zone) for row in rows))
    _audit(request, operator, "export", f"campaign {campaign_id} skipped",
           {"code": code, "rows": len(rows), "bytes": len(data)})
    name = f"campaign-{campaign_id}-skipped{'-' + code if code else ''}.csv"
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})

