"""Campaigns over HTTP: supervisors set them up and watch them (/campaigns), operators mark
themselves ready, preview debts and record dispositions (/api/campaigns..., /api/campaign-calls/...).

Routes are thin: `lists`, `dispositions` and the dialler service do the work; every change is audited.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent_desk.auth import (
    CurrentOperator,
    api_operator,
    api_writer,
    csrf_ok,
    page_operator,
    session_language,
)
from agent_desk.i18n import translate
from agent_desk.pages import _render
from crm_core.audit import Actor, record
from crm_core.models import OPEN_DEBT_STATUSES, Client, Debt, Department, Operator
from routing import compliance, pacing
from routing.campaigns import dispositions
from routing.campaigns.lists import FilterError, check_filters, refresh_list
from routing.campaigns.models import Campaign, CampaignDebt, CampaignOperator, DialAttempt, DialSkip
from routing.campaigns.retry import DEFAULT_RETRY, RetryRulesError, retry_rules
from routing.campaigns.service import DialRefused

router = APIRouter()
SUPERVISING = ("supervisor", "admin")
STATUS_CHANGES = {"start": "running", "pause": "paused", "finish": "finished"}


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


def _now() -> datetime:
    return datetime.now(UTC)


def _supervisor_page(request: Request) -> CurrentOperator:
    operator = page_operator(request)
    if operator.role not in SUPERVISING:
        raise HTTPException(403, _t(request, "api.forbidden"))
    return operator


Supervisor = Annotated[CurrentOperator, Depends(_supervisor_page)]
Reader = Annotated[CurrentOperator, Depends(api_operator)]
Writer = Annotated[CurrentOperator, Depends(api_writer)]


def _sessions(request: Request) -> Any:
    return request.app.state.desk.sessions


def _dialler(request: Request) -> Any:
    dialler = getattr(request.app.state, "campaign_dialler", None)
    if dialler is None:
        raise HTTPException(503, _t(request, "campaign.no_dialler"))
    return dialler


# --- operator side ------------------------------------------------------------------------

class ReadyIn(BaseModel):
    ready: bool


class DispositionBody(BaseModel):
    code: str = Field(max_length=32)
    amount: str | None = Field(default=None, max_length=32)
    promised_date: date | None = None
    callback_at: datetime | None = None
    note: str = Field(default="", max_length=4000)


@router.get("/api/campaigns/mine", tags=["campaigns"])
def my_campaigns(request: Request, operator: Reader) -> list[dict[str, Any]]:
    """The campaigns the operator is assigned to, with their ready flag."""
    with _sessions(request)() as session:
        rows = session.execute(
            select(Campaign.id, Campaign.name, Campaign.mode, Campaign.status, CampaignOperator.ready)
            .join(CampaignOperator, CampaignOperator.campaign_id == Campaign.id)
            .where(CampaignOperator.operator_id == operator.id, Campaign.status != "finished")
            .order_by(Campaign.name))
        return [{"id": i, "name": n, "mode": m, "status": s, "ready": r} for i, n, m, s, r in rows]


@router.post("/api/campaigns/{campaign_id}/ready", tags=["campaigns"])
def set_ready(request: Request, operator: Writer, campaign_id: int, body: ReadyIn) -> dict[str, Any]:
    with _sessions(request).begin() as session:
        link = session.get(CampaignOperator, (campaign_id, operator.id))
        if link is None:
            raise HTTPException(404, _t(request, "campaign.not_assigned"))
        link.ready = body.ready
    record(_sessions(request), Actor(operator.id, operator.login), "campaign_ready", str(campaign_id),
           {"ready": body.ready})
    return {"id": campaign_id, "ready": body.ready}


@router.post("/api/campaign-calls/{channel_id}/disposition", tags=["campaigns"])
def disposition(request: Request, operator: Writer, channel_id: str, body: DispositionBody) -> dict[str, Any]:
    """The operator's word on a campaign call: promise to pay, paid, dispute, wrong number, ..."""
    with _sessions(request).begin() as session:
        attempt = session.scalar(select(DialAttempt).where(DialAttempt.channel_id == channel_id))
        if attempt is None:
            raise HTTPException(404, _t(request, "campaign.no_call"))
        if attempt.operator_id != operator.id and operator.role not in SUPERVISING:
            raise HTTPException(403, _t(request, "api.forbidden"))
        try:
            dispositions.record_disposition(session, channel_id, dispositions.DispositionIn(
                body.code, body.amount, body.promised_date, body.callback_at, body.note), operator.id, _now())
        except dispositions.DispositionError as exc:
            raise HTTPException(422, str(exc)) from None
        debt_id = attempt.debt_id
    record(_sessions(request), Actor(operator.id, operator.login), "campaign_disposition", channel_id,
           {"code": body.code, "debt_id": debt_id})
    dialler = getattr(request.app.state, "campaign_dialler", None)
    if dialler is not None:
        dialler.wrapped_up(operator.id)
    return {"channel_id": channel_id, "disposition": body.code}


def _assigned(request: Request, operator: CurrentOperator, campaign_id: int) -> None:
    with _sessions(request)() as session:
        if session.get(CampaignOperator, (campaign_id, operator.id)) is None:
            raise HTTPException(403, _t(request, "campaign.not_assigned"))


@router.post("/api/campaigns/{campaign_id}/preview", tags=["campaigns"])
async def preview_next(request: Request, operator: Writer, campaign_id: int) -> dict[str, Any]:
    """Preview mode: the next debt the law allows calling now, for the operator to read first."""
    _assigned(request, operator, campaign_id)
    found = await _dialler(request).preview_next(operator.id, campaign_id)
    if found is None:
        raise HTTPException(404, _t(request, "campaign.nothing_due"))
    return found


@router.post("/api/campaigns/{campaign_id}/preview/{debt_id}/dial", tags=["campaigns"])
async def preview_dial(request: Request, operator: Writer, campaign_id: int, debt_id: int) -> dict[str, str]:
    _assigned(request, operator, campaign_id)
    try:
        channel_id = await _dialler(request).dial_preview(operator.id, campaign_id, debt_id)
    except DialRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return {"channel_id": channel_id}


# --- supervisor side ------------------------------------------------------------------------

def _figures(session: Session, campaign_id: int, now: datetime) -> dict[str, Any]:
    size = session.scalar(select(func.count()).select_from(CampaignDebt).where(
        CampaignDebt.campaign_id == campaign_id, CampaignDebt.state != "excluded")) or 0
    since = now - timedelta(days=30)
    outcomes = {o: n for o, n in session.execute(
        select(DialAttempt.outcome, func.count()).where(DialAttempt.campaign_id == campaign_id,
                                                        DialAttempt.placed_at >= since)
        .group_by(DialAttempt.outcome))}
    live = outcomes.get("answered", 0) + outcomes.get("abandoned", 0)
    return {"size": size, "dialled": sum(outcomes.values()), "answered": live,
            "connected": outcomes.get("answered", 0), "abandoned": outcomes.get("abandoned", 0),
            "abandon_rate": outcomes.get("abandoned", 0) / live if live else 0.0,
            "skipped": session.scalar(select(func.count()).select_from(DialSkip)
                                      .where(DialSkip.campaign_id == campaign_id)) or 0}


@router.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
def campaigns_page(request: Request, operator: Supervisor) -> HTMLResponse:
    now = _now()
    with _sessions(request)() as session:
        rows = [(c, _figures(session, c.id, now)) for c in session.scalars(select(Campaign).order_by(Campaign.id))]
        return _render(request, "campaigns.html", operator, active="campaigns", campaigns=rows,
                       **_form_choices(session), campaign=None, form=_form_of(None), errors=[])


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, include_in_schema=False)
def campaign_page(request: Request, operator: Supervisor, campaign_id: int, code: str = "") -> HTMLResponse:
    with _sessions(request)() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise HTTPException(404, _t(request, "campaign.not_found"))
        return _render(request, "campaign.html", operator, active="campaigns", campaign=campaign,
                       figures=_figures(session, campaign_id, _now()), skips=_skips(session, campaign_id, code),
                       skip_code=code, form=_form_of(campaign), errors=[], **_form_choices(session))


def _skips(session: Session, campaign_id: int, code: str = "", limit: int | None = 500) -> list[dict[str, Any]]:
    query = (select(DialSkip, Debt.contract, Client.name).join(Debt, Debt.id == DialSkip.debt_id)
             .join(Client, Client.id == Debt.client_id).where(DialSkip.campaign_id == campaign_id)
             .order_by(DialSkip.at.desc()))
    if code:
        query = query.where(DialSkip.code == code)
    if limit:
        query = query.limit(limit)
    return [{"debtor": name, "contract": contract, "phone": skip.phone_e164, "code": skip.code,
             "reason": skip.reason, "at": skip.at, "next_allowed_at": skip.next_allowed_at, "count": skip.count}
            for skip, contract, name in session.execute(query)]


@router.get("/campaigns/{campaign_id}/skipped.csv", include_in_schema=False)
def skipped_csv(request: Request, operator: Supervisor, campaign_id: int, code: str = "") -> Response:
    """Every number the dialler did not call, with the reason, as a spreadsheet."""
    with _sessions(request)() as session:
        rows = _skips(session, campaign_id, code, limit=None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["debtor", "contract", "phone", "code", "reason", "at", "next_allowed_at", "count"])
    for r in rows:
        writer.writerow([_cell(r["debtor"]), _cell(r["contract"]), r["phone"], r["code"], r["reason"],
                         r["at"].isoformat(), r["next_allowed_at"].isoformat() if r["next_allowed_at"] else "",
                         r["count"]])
    record(_sessions(request), Actor(operator.id, operator.login), "campaign_skips_export", str(campaign_id),
           {"rows": len(rows), "code": code})
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="campaign-{campaign_id}-skipped.csv"'})


def _cell(text: str) -> str:
    """A spreadsheet must not run a debtor's name as a formula (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _form_choices(session: Session) -> dict[str, Any]:
    return {
        "rule_sets": list(compliance.RULE_SETS), "modes": pacing.MODES, "open_statuses": OPEN_DEBT_STATUSES,
        "retry_outcomes": list(DEFAULT_RETRY), "weekdays": range(7),
        "departments": session.execute(select(Department.id, Department.name).order_by(Department.name)).all(),
        "operators": session.execute(select(Operator.id, Operator.name).where(
            Operator.active.is_(True), Operator.interface.is_not(None)).order_by(Operator.name)).all(),
        "regions": [r for r in session.scalars(select(Debt.region).distinct().order_by(Debt.region)) if r],
    }


def _form_of(campaign: Campaign | None) -> dict[str, Any]:
    """The form's values: the campaign's, or sensible defaults for a new one."""
    if campaign is None:
        return {"name": "", "rule_set": "ru_230fz", "mode": "progressive", "caller_id": "", "max_lines": 10,
                "ring_seconds": 30, "filters": {"statuses": ["active"]}, "script": "", "department_id": None,
                "schedule": {"weekdays": [0, 1, 2, 3, 4, 5], "start": "09:00", "end": "20:00",
                             "time_zone": "Europe/Moscow"},
                "retry": retry_rules(None), "operator_ids": []}
    return {"name": campaign.name, "rule_set": campaign.rule_set, "mode": campaign.mode,
            "caller_id": campaign.caller_id, "max_lines": campaign.max_lines, "ring_seconds": campaign.ring_seconds,
            "filters": campaign.filters or {}, "script": campaign.script, "department_id": campaign.department_id,
            "schedule": campaign.schedule or {}, "retry": retry_rules(campaign.retry),
            "operator_ids": [op.id for op in campaign.operators]}


class CampaignFormError(ValueError):
    """What is wrong with the submitted campaign form; shown above it."""


def parse_form(form: Any) -> dict[str, Any]:
    """The submitted form as Campaign fields; CampaignFormError lists every problem at once."""
    errors: list[str] = []

    def number(key: str, low: int, high: int) -> int:
        text = str(form.get(key, "")).strip()
        if not text.isdigit() or not low <= int(text) <= high:
            errors.append(f"{key}: a whole number from {low} to {high}")
            return low
        return int(text)

    name = str(form.get("name", "")).strip()
    if not name or len(name) > 128:
        errors.append("name: required, at most 128 characters")
    rule_set, mode = str(form.get("rule_set", "")), str(form.get("mode", ""))
    if rule_set not in compliance.RULE_SETS:
        errors.append(f"rule set: one of {', '.join(compliance.RULE_SETS)}")
    if mode not in pacing.MODES:
        errors.append(f"mode: one of {', '.join(pacing.MODES)}")
    filters: dict[str, Any] = {}
    try:
        filters = check_filters({
            "min_days": form.get("min_days") or None, "max_days": form.get("max_days") or None,
            "min_total": form.get("min_total") or None, "max_total": form.get("max_total") or None,
            "regions": [r for r in str(form.get("regions", "")).split(",") if r.strip()],
            "statuses": form.getlist("statuses")})
        filters = {k: str(v) if k in ("min_total", "max_total") else v for k, v in filters.items()}
    except FilterError as exc:
        errors.append(f"filters: {exc}")
    start, end = str(form.get("start", "09:00")), str(form.get("end", "20:00"))
    zone = str(form.get("time_zone", "Europe/Moscow")).strip() or "Europe/Moscow"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"time zone: {zone!r} is not an IANA zone such as Europe/Moscow")
    if not (len(start) == 5 and len(end) == 5 and start < end):
        errors.append("schedule: start and end as HH:MM, start before end")
    retry: dict[str, Any] = {}
    try:
        retry = retry_rules({o: {"delay_minutes": _int(form.get(f"retry_{o}_delay")),
                                 "max_attempts": _int(form.get(f"retry_{o}_max"))} for o in DEFAULT_RETRY})
    except RetryRulesError as exc:
        errors.append(f"retry: {exc}")
    max_lines, ring_seconds = number("max_lines", 1, 500), number("ring_seconds", 10, 60)
    department = str(form.get("department_id", "")).strip()
    if errors:
        raise CampaignFormError("; ".join(errors))
    return {"name": name, "rule_set": rule_set, "mode": mode, "caller_id": str(form.get("caller_id", "")).strip()[:32],
            "max_lines": max_lines, "ring_seconds": ring_seconds, "filters": filters,
            "schedule": {"weekdays": sorted(int(d) for d in form.getlist("weekdays") if str(d).isdigit()),
                         "start": start, "end": end, "time_zone": zone},
            "retry": retry, "script": str(form.get("script", ""))[:20000],
            "department_id": int(department) if department.isdigit() else None,
            "operator_ids": sorted({int(i) for i in form.getlist("operators") if str(i).isdigit()})}


def _int(value: Any) -> Any:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else text


@router.post("/campaigns/save", include_in_schema=False)
async def save_campaign(request: Request, operator: Supervisor) -> Response:
    """Create (no id) or update a campaign from its form."""
    form = await request.form()
    if not csrf_ok(request, str(form.get("csrf", ""))):
        raise HTTPException(403, _t(request, "api.csrf"))
    campaign_id = str(form.get("id", ""))
    try:
        values = parse_form(form)
    except CampaignFormError as exc:
        with _sessions(request)() as session:
            campaign = session.get(Campaign, int(campaign_id)) if campaign_id.isdigit() else None
            return _render(request, "campaigns.html", operator, status_code=422, active="campaigns",
                           campaigns=[], campaign=campaign, form=_form_of(campaign), errors=str(exc).split("; "),
                           **_form_choices(session))
    operator_ids = values.pop("operator_ids")
    with _sessions(request).begin() as session:
        campaign = session.get(Campaign, int(campaign_id)) if campaign_id.isdigit() else None
        if campaign is None:
            campaign = Campaign(status="draft")
            session.add(campaign)
        for key, value in values.items():
            setattr(campaign, key, value)
        session.flush()
        current = {link.operator_id: link for link in session.scalars(
            select(CampaignOperator).where(CampaignOperator.campaign_id == campaign.id))}
        for op_id in set(current) - set(operator_ids):
            session.delete(current[op_id])
        for op_id in set(operator_ids) - set(current):
            session.add(CampaignOperator(campaign_id=campaign.id, operator_id=op_id))
        saved_id = campaign.id
    record(_sessions(request), Actor(operator.id, operator.login), "campaign_saved", str(saved_id),
           json.loads(json.dumps({**values, "operators": operator_ids}, default=str)))
    return RedirectResponse(f"/campaigns/{saved_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/status", include_in_schema=False)
def change_status(request: Request, operator: Supervisor, campaign_id: int,
                  csrf: Annotated[str, Form()] = "", action: Annotated[str, Form(max_length=16)] = "") -> Response:
    if not csrf_ok(request, csrf):
        raise HTTPException(403, _t(request, "api.csrf"))
    if action not in STATUS_CHANGES:
        raise HTTPException(422, f"action must be one of {', '.join(STATUS_CHANGES)}")
    with _sessions(request).begin() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise HTTPException(404, _t(request, "campaign.not_found"))
        campaign.status = STATUS_CHANGES[action]
        size = refresh_list(session, campaign, _now()) if action == "start" else None
    record(_sessions(request), Actor(operator.id, operator.login), "campaign_status", str(campaign_id),
           {"action": action, "list_size": size})
    return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
