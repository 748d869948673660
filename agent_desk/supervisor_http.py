"""Supervisor actions and reports over HTTP: REST under /api/supervisor, pages under /supervisor.

Supervisors, admins and department heads only (operators get 403, and an operator's attempt at an
action is audited as refused); a department head sees and acts on their departments' agents and
queues only. State changes need the page's CSRF token like every other /api write. Routes are
thin: `supervisor.SupervisorActions` acts and audits, `reports` computes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from agent_desk import reports
from agent_desk.auth import (
    SUPERVISING,
    CurrentOperator,
    api_role,
    page_operator,
    session_language,
    supervised_queues,
)
from agent_desk.http import CallFilterQuery, call_filter, zone_of
from agent_desk.i18n import translate
from agent_desk.pages import _render
from agent_desk.supervisor import ActionDone, ActionProblem, SupervisorActions
from crm_core import agents, clients, pause_reasons
from crm_core.audit import OK, REFUSED, Actor, recent, record
from crm_core.models import Department, Operator, as_utc, utcnow
from crm_core.reviews import reviews_of
from crm_core.visibility import department_ids, queue_names
from routing import thresholds
from routing.live import Thresholds
from routing.wall import kept_wall

log = logging.getLogger(__name__)

router = APIRouter()
QUEUE_NAME = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_PERIOD_DAYS = 366
LIVE_WAIT_SECONDS = 0.5


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


def _actor(operator: CurrentOperator) -> Actor:
    return Actor(operator.id, operator.login)


def supervisor_reader(request: Request) -> CurrentOperator:
    """Logged in (401) as a supervisor, admin or department head (403)."""
    return api_role(request, SUPERVISING)


def supervisor_writer(request: Request) -> CurrentOperator:
    """As `supervisor_reader`, plus the CSRF header; a wrong role is audited as a refused attempt."""
    return api_role(request, SUPERVISING, "role does not allow supervisor actions", csrf=True)


def supervisor_exporter(request: Request) -> CurrentOperator:
    """As `supervisor_reader`, but a wrong role's attempt at an export is audited as refused."""
    return api_role(request, SUPERVISING, "role does not allow exports")


Reader = Annotated[CurrentOperator, Depends(supervisor_reader)]
Writer = Annotated[CurrentOperator, Depends(supervisor_writer)]
Exporter = Annotated[CurrentOperator, Depends(supervisor_exporter)]
AgentId = Annotated[int, Path(ge=1)]


class PauseIn(BaseModel):
    queue: str | None = Field(None, pattern=QUEUE_NAME)  # None: every queue of the agent
    reason: str = Field("", max_length=256)


class UnpauseIn(BaseModel):
    queue: str | None = Field(None, pattern=QUEUE_NAME)


class MemberIn(BaseModel):
    queue: str = Field(pattern=QUEUE_NAME)
    penalty: int = Field(0, ge=0, le=100)


class SpyIn(BaseModel):
    mode: Literal["listen", "whisper", "barge"]


class ThresholdsIn(BaseModel):
    """A queue's wall limits (routing.live.Thresholds); consistency is checked by thresholds.problems."""

    service_seconds: int | None = Field(None, ge=1, le=600)
    service_level_target: float = Field(ge=0, le=100)
    longest_wait_warn: int = Field(ge=0, le=86400)
    longest_wait_alert: int = Field(ge=0, le=86400)
    abandon_rate_warn: float = Field(ge=0, le=100)
    abandon_rate_alert: float = Field(ge=0, le=100)
    wrapup_seconds: int = Field(0, ge=0, le=3600)


class HandOverIn(BaseModel):
    to_operator_id: int | None  # null: the clients keep no personal manager


class ActionOut(BaseModel):
    message: str
    details: dict[str, Any]


def _actions(request: Request) -> SupervisorActions:
    desk = request.app.state.desk
    return SupervisorActions(desk.sessions, desk.supervision)


async def _act(request: Request, action: Any) -> ActionOut:
    """Await one action; a refusal or PBX error is the HTTP error with the clear message."""
    try:
        done: ActionDone = await action
    except ActionProblem as problem:
        raise HTTPException(problem.status, problem.text(session_language(request))) from None
    return ActionOut(message=_t(request, done.key, **done.values), details=done.details)


def _in_scope(request: Request, operator: CurrentOperator, agent_id: int | None, queue: str | None) -> None:
    """A department head acts on their departments' agents and queues only (a refusal is audited)."""
    if operator.sees_all:
        return
    queues = supervised_queues(request.app.state.desk.sessions, operator) or frozenset()
    with request.app.state.desk.sessions() as session:
        agent_ok = agent_id is None or bool(department_ids(session, agent_id) & operator.departments)
    if agent_ok and (queue is None or queue in queues):
        return
    record(request.app.state.desk.sessions, _actor(operator), "forbidden", request.url.path,
           {"method": request.method, "role": operator.role, "queue": queue}, REFUSED,
           "agent or queue of another department")
    raise HTTPException(403, _t(request, "api.other_department_agent"))


async def _scoped(request: Request, operator: CurrentOperator, agent_id: int | None,
                  queue: str | None = None) -> None:
    await asyncio.to_thread(_in_scope, request, operator, agent_id, queue)


@router.post("/api/supervisor/agents/{agent_id}/pause", response_model=ActionOut, tags=["supervisor"])
async def pause(request: Request, operator: Writer, agent_id: AgentId, body: PauseIn) -> ActionOut:
    """Pause the agent in one queue or in all of theirs (AMI QueuePause with Reason)."""
    await _scoped(request, operator, agent_id, body.queue)
    return await _act(request, _actions(request).pause(_actor(operator), agent_id, True, body.queue, body.reason))


@router.post("/api/supervisor/agents/{agent_id}/unpause", response_model=ActionOut, tags=["supervisor"])
async def unpause(request: Request, operator: Writer, agent_id: AgentId, body: UnpauseIn) -> ActionOut:
    await _scoped(request, operator, agent_id, body.queue)
    return await _act(request, _actions(request).pause(_actor(operator), agent_id, False, body.queue, ""))


@router.post("/api/supervisor/agents/{agent_id}/queues", response_model=ActionOut, tags=["supervisor"])
async def add_member(request: Request, operator: Writer, agent_id: AgentId, body: MemberIn) -> ActionOut:
    """AMI QueueAdd with MemberName, StateInterface and Penalty."""
    await _scoped(request, operator, agent_id, body.queue)
    return await _act(request, _actions(request).add_member(_actor(operator), agent_id, body.queue, body.penalty))


@router.delete("/api/supervisor/agents/{agent_id}/queues/{queue}", response_model=ActionOut, tags=["supervisor"])
async def remove_member(
    request: Request, operator: Writer, agent_id: AgentId, queue: Annotated[str, Path(pattern=QUEUE_NAME)]
) -> ActionOut:
    await _scoped(request, operator, agent_id, queue)
    return await _act(request, _actions(request).remove_member(_actor(operator), agent_id, queue))


@router.post("/api/supervisor/agents/{agent_id}/logout", response_model=ActionOut, tags=["supervisor"])
async def logout(request: Request, operator: Writer, agent_id: AgentId) -> ActionOut:
    """Remove the agent from all their queues and mark them logged out."""
    await _scoped(request, operator, agent_id)
    return await _act(request, _actions(request).logout(_actor(operator), agent_id))


@router.post("/api/supervisor/agents/{agent_id}/spy", response_model=ActionOut, tags=["supervisor"])
async def spy(request: Request, operator: Writer, agent_id: AgentId, body: SpyIn) -> ActionOut:
    """Listen, whisper or barge: the supervisor's phone rings into ChanSpy on the agent's call."""
    await _scoped(request, operator, agent_id)
    return await _act(request, _actions(request).spy(_actor(operator), agent_id, body.mode, operator.interface))


@router.post("/api/supervisor/agents/{agent_id}/clients", response_model=ActionOut, tags=["supervisor"])
async def hand_over_clients(request: Request, operator: Writer, agent_id: AgentId, body: HandOverIn) -> ActionOut:
    """Every client the agent is personal manager of goes to a colleague, as when the agent leaves:
    the clients stay with the company. Audited."""
    await _scoped(request, operator, agent_id)
    if body.to_operator_id is not None:
        await _scoped(request, operator, body.to_operator_id)
    moved = await asyncio.to_thread(_hand_over, request, operator, agent_id, body.to_operator_id)
    return ActionOut(message=_t(request, "sup.clients_moved", count=moved), details={"moved": moved})


def _hand_over(request: Request, operator: CurrentOperator, agent_id: int, to_id: int | None) -> int:
    sessions = request.app.state.desk.sessions
    try:
        with sessions.begin() as session:
            moved = clients.reassign_clients(session, agent_id, to_id)
    except clients.InvalidInput as exc:
        raise HTTPException(422, str(exc)) from None
    record(sessions, _actor(operator), "hand_over_clients", f"agent {agent_id}", {"to": to_id, "moved": moved}, OK)
    return moved


# --- reading: agents, audit ----------------------------------------------------------------


async def _live_agents(request: Request) -> dict[str, dict[str, Any]] | None:
    """The wall's live agents by login, when a wall service keeps a snapshot; never waits long."""
    try:
        async with asyncio.timeout(LIVE_WAIT_SECONDS):
            snapshot = await kept_wall(request.app.state.desk.bus)
    except Exception:  # the wall is optional: its absence or failure must not block the page
        log.warning("supervisor: live wall snapshot unavailable", exc_info=True)
        return None
    if not snapshot:
        return None
    return {a["login"]: {"state": a.get("state"), "reason": a.get("reason", ""), "queues": a.get("queues", [])}
            for a in snapshot.get("agents", []) if isinstance(a, dict) and a.get("login")}


def _agents_data(request: Request, operator: CurrentOperator, live: dict[str, dict[str, Any]] | None
                 ) -> dict[str, Any]:
    """Every agent for a supervisor; a department head's departments' agents and queues, and their own
    audit entries."""
    scope = supervised_queues(request.app.state.desk.sessions, operator)
    with request.app.state.desk.sessions() as session:
        views = agents.agents_overview(session)
        names = queue_names(session)
        queues = sorted(names)
        audit = [_audit_row(e) for e in recent(session, 20, None if operator.sees_all else operator.id)]
        if scope is not None:
            codes = set(session.scalars(select(Department.code).where(Department.id.in_(operator.departments))))
            views = [v for v in views if codes & set(v.departments)]
            queues = [q for q in queues if q in scope]
        managed = clients.managed_counts(session, [v.id for v in views])
        reasons = pause_reasons.load(session)
    rows = [{**asdict(v), "paused": v.paused, "live": (live or {}).get(v.login), "clients": managed.get(v.id, 0)}
            for v in views]
    lang = session_language(request)
    return {"agents": rows, "queues": queues, "queue_names": names, "live": live is not None, "audit": audit,
            "pause_names": pause_reasons.names(reasons, lang),
            "pause_reasons": [r.code for r in reasons if r.active]}


def _audit_row(entry: Any) -> dict[str, Any]:
    return {"at": entry.at.isoformat(), "actor": entry.actor_login, "action": entry.action, "target": entry.target,
            "outcome": entry.outcome, "error": entry.error, "details": entry.details}


@router.get("/api/supervisor/agents", tags=["supervisor"])
async def agents_list(request: Request, operator: Reader) -> dict[str, Any]:
    """Agents with their queues and pauses as callcard knows them, and the wall's live state if any."""
    live = await _live_agents(request)
    return await asyncio.to_thread(_agents_data, request, operator, live)


@router.get("/api/supervisor/audit", tags=["supervisor"])
def audit_log(request: Request, operator: Reader, limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    """The audit log; a department head's own entries only."""
    with request.app.state.desk.sessions() as session:
        return [_audit_row(e) for e in recent(session, limit, None if operator.sees_all else operator.id)]


# --- thresholds ----------------------------------------------------------------------------


def _thresholds_data(request: Request, operator: CurrentOperator) -> dict[str, Any]:
    """Every queue callcard knows (departments' and stored ones) with its effective limits; a
    department head's departments' queues only."""
    scope = supervised_queues(request.app.state.desk.sessions, operator)
    with request.app.state.desk.sessions() as session:
        stored = thresholds.load(session)
        names = queue_names(session)
    queues = set(names) | set(stored)
    if scope is not None:
        queues &= scope
    return {"queues": [{"queue": q, "name": names.get(q, q), "custom": q in stored,
                        **asdict(stored.get(q, Thresholds()))} for q in sorted(queues)]}


@router.get("/api/supervisor/thresholds", tags=["supervisor"])
def thresholds_list(request: Request, operator: Reader) -> dict[str, Any]:
    return _thresholds_data(request, operator)


@router.put("/api/supervisor/thresholds/{queue}", response_model=ActionOut, tags=["supervisor"])
async def thresholds_save(request: Request, operator: Writer, queue: Annotated[str, Path(pattern=QUEUE_NAME)],
                          body: ThresholdsIn) -> ActionOut:
    """Store a queue's limits (audited) and tell the wall service, which colours the next snapshot by them."""
    await _scoped(request, operator, None, queue)
    desk = request.app.state.desk
    limits = Thresholds(**body.model_dump())
    wrong = thresholds.problems(limits)
    if wrong:
        message = " ".join(_t(request, key) for key in wrong)
        await asyncio.to_thread(record, desk.sessions, _actor(operator), "thresholds", queue,
                                {"after": asdict(limits)}, REFUSED, message)
        raise HTTPException(422, message)

    def save() -> dict[str, object]:
        with desk.sessions.begin() as session:
            return thresholds.save(session, queue, limits, utcnow())

    before = await asyncio.to_thread(save)
    await asyncio.to_thread(record, desk.sessions, _actor(operator), "thresholds", queue,
                            {"before": before, "after": asdict(limits)}, OK)
    await desk.bus.publish(thresholds.THRESHOLDS_TOPIC, {"type": "thresholds", "queue": queue})
    return ActionOut(message=_t(request, "thr.saved", queue=queue), details={"after": asdict(limits)})


# --- reports -------------------------------------------------------------------------------


def _period(request: Request, first: str, last: str, tz: str) -> reports.Period:
    """Dates in the supervisor's zone; the default is the last 7 days."""
    try:
        zone = ZoneInfo(tz)
        today = datetime.now(zone).date()
        end = date.fromisoformat(last) if last else today
        start = date.fromisoformat(first) if first else end - timedelta(days=6)
    except (ValueError, ZoneInfoNotFoundError):
        raise HTTPException(422, _t(request, "rep.bad_period")) from None
    if start > end or (end - start).days >= MAX_PERIOD_DAYS:
        raise HTTPException(422, _t(request, "rep.bad_period"))
    return reports.Period(start, end, zone)


ReportName = Annotated[str, Path(pattern="^(" + "|".join(reports.REPORTS) + ")$")]
DateParam = Annotated[str, Query(alias="from", max_length=10)]
ToParam = Annotated[str, Query(alias="to", max_length=10)]
TzParam = Annotated[str, Query(max_length=64)]


def _departments(operator: CurrentOperator) -> frozenset[int] | None:
    """Whose pauses a report shows: everyone's (None), or a department head's departments' agents'."""
    return None if operator.sees_all else operator.departments


def _report_json(session: Any, name: str, period: reports.Period, queues: frozenset[str] | None,
                 departments: frozenset[int] | None) -> list[dict[str, Any]]:
    if name == "pauses":
        return [asdict(p) for p in reports.pause_report(session, period, utcnow(), departments)]
    if name == "missed":
        return [{**asdict(m), "started_at": m.started_at.isoformat()}
                for m in reports.missed_calls(session, period, queues=queues)]
    return [asdict(f) for f in reports.report(session, name, period, queues)]


@router.get("/api/supervisor/reports/{name}.csv", tags=["supervisor"])
def report_csv(request: Request, operator: Exporter, name: ReportName, first: DateParam = "",
               last: ToParam = "", tz: TzParam = "UTC") -> Response:
    """The report as CSV for Excel (UTF-8 with BOM); every export is audited."""
    period = _period(request, first, last, tz)
    queues = supervised_queues(request.app.state.desk.sessions, operator)
    with request.app.state.desk.sessions() as session:
        data = reports.export(session, name, period, queues, _departments(operator))
    record(request.app.state.desk.sessions, _actor(operator), "export", name,
           {"from": period.first.isoformat(), "to": period.last.isoformat(), "tz": tz, "bytes": len(data),
            "queues": None if queues is None else sorted(queues)}, OK)
    filename = f"callcard-{name}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return Response(data, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/api/supervisor/clients.csv", tags=["supervisor"])
def client_base_csv(request: Request, operator: Exporter) -> StreamingResponse:
    """The client base as CSV for Excel, streamed; a department head gets the clients tied to their
    departments only (crm_core.visibility.tied). Every export is audited."""
    departments = None if operator.sees_all else operator.departments
    sessions = request.app.state.desk.sessions
    record(sessions, _actor(operator), "export", "client base",
           {"departments": "all" if departments is None else sorted(departments)}, OK)

    def chunks() -> Any:
        with sessions() as session:
            yield from reports.csv_chunks(clients.CLIENT_BASE_COLUMNS, clients.client_base(session, departments))

    filename = f"callcard-clients-{datetime.now(ZoneInfo('UTC')).date().isoformat()}.csv"
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


CALL_LOG_COLUMNS = ("linkedid", "started_at", "direction", "caller", "caller_name", "client", "department", "operator",
                    "outcome", "wait_seconds", "talk_seconds", "disposition", "score", "review")


@router.get("/api/supervisor/calls.csv", tags=["supervisor"])
def call_log_csv(request: Request, operator: Exporter, given: Annotated[CallFilterQuery, Depends()]) -> StreamingResponse:
    """The call log as /calls filters it, every row, streamed; times in the filter's zone. Audited."""
    sessions, region = request.app.state.desk.sessions, request.app.state.desk.settings.default_region
    with sessions() as session:
        chosen = call_filter(session, operator, given, region)
    record(sessions, _actor(operator), "export", "call log", {k: v for k, v in chosen.query.items() if v}, OK)
    zone = zone_of(given.tz)

    def rows() -> Any:
        with sessions() as session:
            names = queue_names(session)
            before = None
            while True:
                page = clients.list_calls(session, **chosen.calls, limit=1000, before=before, visible_to=operator.viewer)
                scored = reviews_of(session, [call.id for call in page])
                for call in page:
                    review = scored.get(call.id)
                    yield [call.linkedid, as_utc(call.started_at).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                           call.direction,
                           call.caller_e164 or call.caller_raw, call.caller_name, call.client.name if call.client else "",
                           names.get(call.queue, call.queue), call.operator.login if call.operator else "",
                           call.outcome or "", call.wait_seconds, call.talk_seconds, call.disposition,
                           review.score if review else None, review.comment if review else ""]
                if len(page) < 1000:
                    return
                before = (page[-1].started_at, page[-1].id)
                session.expunge_all()  # a long export holds one page at a time

    filename = f"callcard-calls-{datetime.now(zone).date().isoformat()}.csv"
    return StreamingResponse(reports.csv_chunks(CALL_LOG_COLUMNS, rows()), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/api/supervisor/reports/{name}", tags=["supervisor"])
def report_json(request: Request, operator: Reader, name: ReportName, first: DateParam = "",
                last: ToParam = "", tz: TzParam = "UTC") -> dict[str, Any]:
    period = _period(request, first, last, tz)
    queues = supervised_queues(request.app.state.desk.sessions, operator)
    with request.app.state.desk.sessions() as session:
        rows = _report_json(session, name, period, queues, _departments(operator))
    return {"report": name, "from": period.first.isoformat(), "to": period.last.isoformat(), "tz": tz,
            "service_level_seconds": reports.SERVICE_LEVEL_SECONDS, "rows": rows}


# --- pages ---------------------------------------------------------------------------------


def _page_supervisor(request: Request, operator: CurrentOperator) -> HTMLResponse | None:
    """None for a supervisor, admin or department head; else the 403 page."""
    if operator.role in SUPERVISING:
        return None
    return _render(request, "forbidden.html", operator, 403)


@router.get("/supervisor/agents", response_class=HTMLResponse, include_in_schema=False)
async def agents_page(request: Request, operator: Annotated[CurrentOperator, Depends(page_operator)]) -> HTMLResponse:
    refused = _page_supervisor(request, operator)
    if refused is not None:
        return refused
    live = await _live_agents(request)
    data = await asyncio.to_thread(_agents_data, request, operator, live)
    return _render(request, "supervisor_agents.html", operator, active="supervisor", data=data)


@router.get("/supervisor/thresholds", response_class=HTMLResponse, include_in_schema=False)
def thresholds_page(request: Request,
                    operator: Annotated[CurrentOperator, Depends(page_operator)]) -> HTMLResponse:
    refused = _page_supervisor(request, operator)
    if refused is not None:
        return refused
    data = _thresholds_data(request, operator)
    if operator.sees_all:  # the centre's pause reasons: supervisors' and admins', not a department's
        with request.app.state.desk.sessions() as session:
            data["pause_reasons"] = [asdict(r) for r in pause_reasons.load(session)]
    return _render(request, "supervisor_thresholds.html", operator, active="wall", data=data,
                   fields=thresholds.FIELDS)


@router.get("/supervisor/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page(request: Request, operator: Annotated[CurrentOperator, Depends(page_operator)],
                 first: DateParam = "", last: ToParam = "", tz: TzParam = "UTC") -> HTMLResponse:
    refused = _page_supervisor(request, operator)
    if refused is not None:
        return refused
    try:
        period = _period(request, first, last, tz)
    except HTTPException as exc:
        return _render(request, "forbidden.html", operator, 422, message=exc.detail)
    queues = supervised_queues(request.app.state.desk.sessions, operator)
    with request.app.state.desk.sessions() as session:
        tables = {name: reports.report(session, name, period, queues)
                  for name in ("queues", "agents", "days", "hours")}
        missed = reports.missed_calls(session, period, limit=500, queues=queues)
        pauses = reports.pause_report(session, period, utcnow(), _departments(operator))
        reasons = pause_reasons.load(session)
        pause_names = pause_reasons.names(reasons, session_language(request))
        names = {"queues": queue_names(session),
                 "agents": {login: name for login, name in session.execute(select(Operator.login, Operator.name))}}
    query = urlencode({"from": period.first.isoformat(), "to": period.last.isoformat(), "tz": tz})
    hours = [{"key": f.key, "offered": f.offered, "answered": f.answered, "abandoned": f.abandoned,
              "service_level": f.service_level} for f in tables["hours"][:-1]]  # the last row is the total
    return _render(request, "supervisor_reports.html", operator, active="reports", period=period, tz=tz,
                   data={"hours": hours},
                   tables=tables, names=names, missed=missed, pauses=pauses, query=query,
                   columns=reports.FIGURE_COLUMNS, missed_columns=reports.MISSED_COLUMNS,
                   pause_columns=reports.pause_columns(pauses), pause_names=pause_names,
                   pause_colours=pause_reasons.colours(reasons), sl_seconds=reports.SERVICE_LEVEL_SECONDS)
