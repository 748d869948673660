"""Routing over HTTP: the desk's transfer API and the admin's rule editor at /admin/routing.

A transfer goes through the one command door (the bridge's AMI Redirect) and is recorded,
so the operator who handed the call over can still write its note on the same Call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent_desk.auth import CurrentOperator, admin_page, api_writer, csrf_ok, session_language
from agent_desk.i18n import explain, translate
from agent_desk.pages import _render  # the desk's page shell: same header, language and CSRF blob
from ami_bridge.client import AmiDisconnected, AmiError
from ami_bridge.service import CallNotLive
from crm_core.models import Call, Department, Operator
from routing import rules, service
from routing.models import BlockedNumber, CallTransfer, DidRoute

router = APIRouter()


def _t(request: Request, key: str, **values: object) -> str:
    return translate(session_language(request), key, **values)


class TransferIn(BaseModel):
    """Either a department (its queue) or a colleague (their phone), never both; `attended`
    (a colleague only) consults them before the caller is handed over."""

    department: str | None = Field(None, min_length=1, max_length=32)
    operator_id: int | None = None
    attended: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> TransferIn:
        if (self.department is None) == (self.operator_id is None):
            raise ValueError("give a department or an operator_id")
        if self.attended and self.operator_id is None:
            raise ValueError("only a transfer to a colleague can consult them first")
        return self


class TransferOut(BaseModel):
    linkedid: str
    department: str  # the department's name, or the colleague's
    queue: str  # empty for a colleague


@router.post("/api/calls/{linkedid}/transfer", response_model=TransferOut, tags=["desk"])
async def transfer(
    request: Request, operator: Annotated[CurrentOperator, Depends(api_writer)], linkedid: str, body: TransferIn
) -> TransferOut:
    """Transfer the caller to a department's queue or to a colleague's phone (blind, or attended:
    the colleague is consulted first); their desks pop the same card and the call stays one Call row.
    Refused (409) while nobody talks to the caller yet and when the colleague's phone is busy."""
    desk = request.app.state.desk
    if desk.transferrer is None:
        raise HTTPException(503, _t(request, "api.no_dialer"))
    with desk.sessions() as session:
        call = session.scalar(select(Call).where(Call.linkedid == linkedid))
        if call is None:
            raise HTTPException(404, _t(request, "api.not_found"))
        if call.operator_id not in (None, operator.id) and not operator.sees_all:
            raise HTTPException(403, _t(request, "api.not_your_call"))
        if call.status == "ended":
            raise HTTPException(409, _t(request, "api.no_call"))
        target = _colleague(request, session, body.operator_id, operator.id) if body.operator_id is not None \
            else _department(request, session, body.department or "", call.queue)
    if not await desk.transferrer.operator_on_line(linkedid):
        raise HTTPException(409, _t(request, "api.not_answered"))
    if target.interface and await desk.transferrer.on_phone(target.interface):
        raise HTTPException(409, _t(request, "api.colleague_busy", name=target.name))
    try:
        if body.attended:
            await desk.transferrer.attended_transfer(linkedid, target.interface)
        elif target.interface:
            await desk.transferrer.transfer_to_interface(linkedid, target.interface)
        else:
            await desk.transferrer.transfer_to_queue(linkedid, target.queue)
    except CallNotLive:
        raise HTTPException(409, _t(request, "api.no_call")) from None
    except (AmiError, AmiDisconnected) as exc:
        raise HTTPException(502, _t(request, "api.pbx_refused", error=str(exc))) from None
    with desk.sessions.begin() as session:
        session.add(CallTransfer(linkedid=linkedid, from_operator_id=operator.id,
                                 to_department_id=target.department_id, to_operator_id=target.operator_id,
                                 queue=target.queue))
    return TransferOut(linkedid=linkedid, department=target.name, queue=target.queue)


@dataclass(frozen=True)
class _Target:
    name: str
    queue: str = ""
    department_id: int | None = None
    operator_id: int | None = None
    interface: str = ""


def _department(request: Request, session: Session, code: str, current_queue: str | None) -> _Target:
    dept = session.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise HTTPException(404, _t(request, "api.not_found"))
    if not dept.queue:
        raise HTTPException(409, _t(request, "api.no_queue"))
    if dept.queue == current_queue:
        raise HTTPException(409, _t(request, "api.same_queue"))
    return _Target(dept.name, dept.queue, department_id=dept.id)


def _colleague(request: Request, session: Session, operator_id: int, me: int) -> _Target:
    colleague = session.get(Operator, operator_id)
    if colleague is None or not colleague.active or colleague.id == me:
        raise HTTPException(404, _t(request, "api.not_found"))
    if not colleague.interface:
        raise HTTPException(409, _t(request, "api.not_reachable"))
    return _Target(colleague.name, operator_id=colleague.id, interface=colleague.interface)


# --- /admin/routing ------------------------------------------------------------------------


Admin = Annotated[CurrentOperator, Depends(admin_page)]


def _page_data(request: Request) -> dict[str, Any]:
    with request.app.state.desk.sessions() as session:
        rule_set = service.load_rule_set(session)
        stored_order = [code for code in rules.RULE_CODES if code in rule_set.order]
        ranked = list(rule_set.order) + [c for c in rules.RULE_CODES if c not in stored_order]
        return {
            "rules": [{"code": c, "enabled": c in rule_set.order} for c in ranked],
            "settings": service.load_settings(session),
            "departments": [(d.code, d.name) for d in session.scalars(select(Department).order_by(Department.code))],
            "department_names": {d.code: d.name for d in session.scalars(select(Department))},
            "routes": [(r.kind, r.number, r.department.code)
                       for r in session.scalars(select(DidRoute).order_by(DidRoute.kind, DidRoute.number))],
            "blocked": [(b.e164, b.reason) for b in session.scalars(select(BlockedNumber).order_by(BlockedNumber.e164))],
        }


@router.get("/admin/routing", response_class=HTMLResponse, include_in_schema=False)
def routing_page(request: Request, operator: Admin, error: str = "") -> HTMLResponse:
    return _render(request, "routing.html", operator, active="routing", error=error[:300], **_page_data(request))


def _apply(request: Request, csrf: str, change: Any) -> RedirectResponse:
    """Run one admin edit in a transaction; a refused edit comes back as the page's error line."""
    if not csrf_ok(request, csrf):
        raise HTTPException(403, _t(request, "api.csrf"))
    try:
        with request.app.state.desk.sessions.begin() as session:
            change(session)
    except service.RoutingConfigError as exc:
        why = explain(session_language(request), exc)
        return RedirectResponse(f"/admin/routing?error={quote(why)}", status_code=303)
    return RedirectResponse("/admin/routing", status_code=303)


def moved(order: list[str], move: str) -> list[str]:
    """The order with one rule moved a place (`"vip:up"`, `"vip:down"`); unchanged at either end."""
    code, _, way = move.partition(":")
    if code not in order or way not in ("up", "down"):
        return order
    i = order.index(code)
    j = i - 1 if way == "up" else i + 1
    if not 0 <= j < len(order):
        return order
    order = list(order)
    order[i], order[j] = order[j], order[i]
    return order


@router.post("/admin/routing/rules", include_in_schema=False)
def save_rules(
    request: Request, operator: Admin, csrf: Annotated[str, Form()] = "",
    order: Annotated[list[str] | None, Form(max_length=200)] = None,
    enabled: Annotated[list[str] | None, Form()] = None, move: Annotated[str, Form(max_length=40)] = "",
) -> RedirectResponse:
    """The rules in the order of the form's rows (or one comma-separated field), with one moved
    when an arrow was pressed; the flags as ticked."""
    codes = moved([c.strip() for field in order or [] for c in field.split(",") if c.strip()], move)
    return _apply(request, csrf, lambda s: service.save_rules(s, codes, set(enabled or [])))


@router.post("/admin/routing/settings", include_in_schema=False)
async def save_settings(request: Request, operator: Admin) -> RedirectResponse:
    form = await request.form()
    values = {s.key: str(form.get(s.key, ""))[:64] for s in service.SETTINGS}
    return _apply(request, str(form.get("csrf", "")), lambda s: service.save_settings(s, values))


@router.post("/admin/routing/numbers", include_in_schema=False)
def save_number(
    request: Request, operator: Admin, csrf: Annotated[str, Form()] = "",
    kind: Annotated[str, Form(max_length=8)] = "did", number: Annotated[str, Form(max_length=64)] = "",
    department: Annotated[str, Form(max_length=32)] = "",
) -> RedirectResponse:
    return _apply(request, csrf, lambda s: service.set_number_route(s, kind, number, department or None))


@router.post("/admin/routing/blocked", include_in_schema=False)
def save_blocked(
    request: Request, operator: Admin, csrf: Annotated[str, Form()] = "",
    number: Annotated[str, Form(max_length=64)] = "", reason: Annotated[str, Form(max_length=256)] = "",
    remove: Annotated[str, Form(max_length=20)] = "",
) -> RedirectResponse:
    region = request.app.state.desk.settings.default_region
    if remove:
        return _apply(request, csrf, lambda s: service.unblock_number(s, remove))
    return _apply(request, csrf, lambda s: service.block_number(s, number, reason, region))
