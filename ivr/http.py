"""Admin pages under /admin/ivr: menus and their digits, department hours, the holiday calendar.

Every edit is one POST form with the session's CSRF token, applied in one transaction; the
FastAGI server reads the tables per call, so the next caller hears the change.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from agent_desk.auth import CurrentOperator, admin_page, csrf_ok, session_language
from agent_desk.i18n import explain, translate
from agent_desk.pages import _render  # the desk's page shell: same header, language and CSRF blob
from callcard.refusal import Refusal
from crm_core.models import Department
from ivr import service
from ivr.models import AFTER_HOURS, DAY_KINDS, OPTION_ACTIONS, DepartmentSchedule, Holiday, IvrMenu

router = APIRouter(include_in_schema=False)


Admin = Annotated[CurrentOperator, Depends(admin_page)]
Csrf = Annotated[str, Form(max_length=128)]


def _page_data(session: Session) -> dict[str, Any]:
    menus = session.scalars(select(IvrMenu).options(selectinload(IvrMenu.options)).order_by(IvrMenu.name)).all()
    schedules = {s.department_id: s for s in session.scalars(
        select(DepartmentSchedule).options(selectinload(DepartmentSchedule.hours)))}
    departments = session.scalars(select(Department).order_by(Department.code)).all()
    return {
        "menus": [{"menu": m, "options": [
            {"digit": o.digit, "action": o.action, "priority": o.priority,
             "target": o.submenu.name if o.submenu else o.department.code if o.department else ""}
            for o in m.options]} for m in menus],
        "departments": [{"code": d.code, "name": d.name, "schedule": schedules.get(d.id),
                         "hours": {h.weekday: h for h in schedules[d.id].hours} if d.id in schedules else {}}
                        for d in departments],
        "holidays": session.scalars(select(Holiday).order_by(Holiday.day)).all(),
        "actions": OPTION_ACTIONS, "after_hours": AFTER_HOURS, "day_kinds": DAY_KINDS,
    }


@router.get("/admin/ivr", response_class=HTMLResponse)
def ivr_page(request: Request, operator: Admin, error: str = "") -> HTMLResponse:
    with request.app.state.desk.sessions() as session:
        return _render(request, "ivr_admin.html", operator, active="ivr", error=error[:300],
                       **_page_data(session))


def _check_csrf(request: Request, csrf: str) -> None:
    if not csrf_ok(request, csrf):
        raise HTTPException(403, translate(session_language(request), "api.csrf"))


def _refused(request: Request, refusal: Refusal) -> RedirectResponse:
    """Back to the page with why, in the admin's language."""
    return RedirectResponse(f"/admin/ivr?error={quote(explain(session_language(request), refusal))}",
                            status_code=303)


def _apply(request: Request, csrf: str, change: Callable[[Session], object]) -> RedirectResponse:
    """One admin edit in one transaction; a refused edit comes back as the page's error line."""
    _check_csrf(request, csrf)
    try:
        with request.app.state.desk.sessions.begin() as session:
            change(session)
    except service.IvrConfigError as exc:
        return _refused(request, exc)
    except ValueError as exc:  # what a field's own parsing refused
        return RedirectResponse(f"/admin/ivr?error={quote(str(exc))}", status_code=303)
    return RedirectResponse("/admin/ivr", status_code=303)


@router.post("/admin/ivr/menus")
def save_menu(
    request: Request, operator: Admin, csrf: Csrf = "",
    name: Annotated[str, Form(max_length=32)] = "", did: Annotated[str, Form(max_length=32)] = "",
    is_default: Annotated[bool, Form()] = False, greeting: Annotated[str, Form(max_length=128)] = "",
    invalid_prompt: Annotated[str, Form(max_length=128)] = "callcard/ivr-invalid",
    timeout_seconds: Annotated[int, Form()] = 5, max_retries: Annotated[int, Form()] = 2,
    fallback_queue: Annotated[str, Form(max_length=64)] = "sales",
) -> RedirectResponse:
    return _apply(request, csrf, lambda s: service.save_menu(
        s, name.strip(), did.strip(), is_default, greeting.strip(), invalid_prompt.strip(), timeout_seconds,
        max_retries, fallback_queue.strip()))


@router.post("/admin/ivr/menus/{name}/delete")
def delete_menu(request: Request, operator: Admin, name: str, csrf: Csrf = "") -> RedirectResponse:
    return _apply(request, csrf, lambda s: service.delete_menu(s, name))


@router.post("/admin/ivr/menus/{name}/options")
def save_option(
    request: Request, operator: Admin, name: str, csrf: Csrf = "",
    digit: Annotated[str, Form(max_length=1)] = "", action: Annotated[str, Form(max_length=16)] = "",
    target: Annotated[str, Form(max_length=32)] = "", priority: Annotated[int, Form()] = 0,
) -> RedirectResponse:
    return _apply(request, csrf, lambda s: service.save_option(s, name, digit, action, target.strip(), priority))


@router.post("/admin/ivr/menus/{name}/options/{digit}/delete")
def delete_option(request: Request, operator: Admin, name: str, digit: str, csrf: Csrf = "") -> RedirectResponse:
    return _apply(request, csrf, lambda s: service.delete_option(s, name, digit))


@router.post("/admin/ivr/hours/{department}")
async def save_hours(request: Request, operator: Admin, department: str) -> RedirectResponse:
    """Fields `open_<weekday>` / `close_<weekday>` (HH:MM); a weekday with both empty is closed."""
    form = await request.form()

    def field(key: str) -> str:
        return str(form.get(key, "")).strip()[:128]

    _check_csrf(request, field("csrf"))
    try:
        hours = {d: (time.fromisoformat(field(f"open_{d}")), time.fromisoformat(field(f"close_{d}")))
                 for d in range(7) if field(f"open_{d}") or field(f"close_{d}")}
    except ValueError:
        return _refused(request, Refusal("hours must be HH:MM", "ivr.err.hhmm"))
    return _apply(request, field("csrf"), lambda s: service.save_schedule(
        s, department, field("timezone"), field("after_hours"), field("voicemail_prompt"), hours))


@router.post("/admin/ivr/holidays")
def save_holiday(
    request: Request, operator: Admin, csrf: Csrf = "", day: Annotated[date | None, Form()] = None,
    kind: Annotated[str, Form(max_length=16)] = "holiday", name: Annotated[str, Form(max_length=128)] = "",
) -> RedirectResponse:
    _check_csrf(request, csrf)
    if day is None:
        return _refused(request, Refusal("a date is needed", "ivr.err.date"))
    return _apply(request, csrf, lambda s: service.save_holiday(s, day, kind, name.strip()))


@router.post("/admin/ivr/holidays/{day}/delete")
def delete_holiday(request: Request, operator: Admin, day: date, csrf: Csrf = "") -> RedirectResponse:
    return _apply(request, csrf, lambda s: service.delete_holiday(s, day))
