"""The IVR's database side: the plan of menus for a call, the callback request, the call's path.

Everything is read per call, so an admin's edit in /admin/ivr is live for the next caller
in every process without a cache to invalidate. Functions are sync; the FastAGI handler
runs them off the event loop.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ami_bridge.events import Outcome
from callcard.refusal import Refusal
from crm_core.call_log import ENDED_IN_IVR, ensure_call
from crm_core.cards import clients_for_number
from crm_core.models import Department, Request
from ivr.hours import HolidayCalendar, is_open_at
from ivr.menu import DIGITS, DepartmentSpec, IvrPlan, MenuSpec, OptionSpec, ended_by_ivr
from ivr.models import (
    AFTER_HOURS,
    DAY_KINDS,
    OPTION_ACTIONS,
    BusinessHours,
    DepartmentSchedule,
    Holiday,
    IvrMenu,
    IvrOption,
)
from routing.inbox.service import create_request, join_open_callback, withdraw_callback

log = logging.getLogger(__name__)

CALLBACK_SUBJECT = "Перезвонить"
FOLLOW_UP_WITHDRAWN = "звонок завершён в IVR: перезванивать не нужно"


def holiday_calendar(session: Session) -> HolidayCalendar:
    rows = session.execute(select(Holiday.day, Holiday.kind)).all()
    return HolidayCalendar(frozenset(d for d, kind in rows if kind == "holiday"),
                           frozenset(d for d, kind in rows if kind == "workday"))


def load_plan(session: Session, did: str, at: datetime) -> IvrPlan | None:
    """The menus as they are now, entered by the menu for `did` (else the default one);
    None when no menu could answer, which the caller logs."""
    menus = session.scalars(select(IvrMenu).options(selectinload(IvrMenu.options))).all()
    by_id = {m.id: m for m in menus}
    entry = next((m for m in menus if did and m.did == did), None)
    if entry is None:
        entry = next((m for m in menus if m.is_default), None)
        if did and menus:
            log.warning("IVR: no menu is set up for DID %r; the default menu %r answers", did,
                        entry.name if entry else None)
    if entry is None:
        return None
    departments = {d.id: d for d in session.scalars(select(Department))}
    return IvrPlan(
        entry=entry.name,
        menus={m.name: _menu_spec(m, by_id, departments) for m in menus},
        departments=_department_specs(session, departments, at),
    )


def _menu_spec(menu: IvrMenu, by_id: dict[int, IvrMenu], departments: dict[int, Department]) -> MenuSpec:
    options = {}
    for opt in menu.options:
        target = ""
        if opt.action == "menu" and opt.submenu_id in by_id:
            target = by_id[opt.submenu_id].name
        elif opt.department_id in departments:
            target = departments[opt.department_id].code
        options[opt.digit] = OptionSpec(opt.action, target, opt.priority)
    return MenuSpec(menu.name, menu.greeting, menu.invalid_prompt, menu.timeout_seconds, menu.max_retries,
                    menu.fallback_queue, options)


def department_hours(session: Session, at: datetime) -> dict[str, DepartmentSpec]:
    """Every department by code, open or closed at `at`: routing may move a caller to any of them."""
    return _department_specs(session, {d.id: d for d in session.scalars(select(Department))}, at)


def _department_specs(session: Session, departments: dict[int, Department],
                      at: datetime) -> dict[str, DepartmentSpec]:
    """Departments without a schedule are always open."""
    schedules = {s.department_id: s for s in session.scalars(
        select(DepartmentSchedule).options(selectinload(DepartmentSchedule.hours)))}
    calendar = holiday_calendar(session)
    specs = {}
    for dep_id, dep in departments.items():
        schedule = schedules.get(dep_id)
        if schedule is None:
            specs[dep.code] = DepartmentSpec(dep.code, dep.queue)
            continue
        hours = {h.weekday: (h.opens, h.closes) for h in schedule.hours}
        specs[dep.code] = DepartmentSpec(dep.code, dep.queue, is_open_at(hours, calendar, schedule.timezone, at),
                                         schedule.after_hours, schedule.voicemail_prompt)
    return specs


def single_client(session: Session, e164: str | None) -> int | None:
    """The one client owning the number; None for unknown or shared numbers."""
    matches = clients_for_number(session, e164) if e164 else []
    return matches[0].client_id if len(matches) == 1 else None


def create_callback_request(session: Session, client_id: int | None, department_code: str, caller: str,
                            now: datetime, linkedid: str = "") -> Request:
    """A "call me back" request for the department, with the SLA and history every request has;
    an unknown caller's number is its contact. Keyed by the call's Linkedid, so the follow-up
    rule does not file a second callback when the IVR hangs up. A number whose callback is still
    open gets no second one: the wish goes into that one's history."""
    department = session.scalar(select(Department).where(Department.code == department_code))
    waiting = join_open_callback(session, caller, linkedid, now,
                                 f"просил перезвонить ({department.name if department else 'IVR'})")
    if waiting is not None:
        return session.get_one(Request, waiting)
    department_id = department.id if department is not None else None
    request = create_request(session, "callback", CALLBACK_SUBJECT, now, source="call", client_id=client_id,
                             contact=caller, department_id=department_id)
    request.linkedid = linkedid or None
    session.flush()
    return request


def record_path(session: Session, linkedid: str, path: str, started_at: datetime, client_id: int | None,
                department_code: str, now: datetime) -> None:
    """Store the path on the Call row, made here when the call logger has not seen the call yet;
    a path the IVR ended itself makes the call's outcome ENDED_IN_IVR, whether or not its end
    (missed) was logged first. The follow-up rule, which reads the call's end off the bus, may have
    filed a callback before this: a blocked number or a closed department's message wants none, so
    it is withdrawn (a callback the IVR promised is that same request, which the IVR joined)."""
    call = ensure_call(session, linkedid, started_at)
    call.ivr_path = path[:256]
    if ended_by_ivr(path) and call.outcome in (None, Outcome.MISSED.value):
        if not path.endswith(">callback"):
            withdraw_callback(session, linkedid, now, FOLLOW_UP_WITHDRAWN)
        call.outcome = ENDED_IN_IVR
    if call.client_id is None and client_id is not None:
        call.client_id = client_id
    if call.department_id is None and department_code:
        call.department_id = session.scalar(select(Department.id).where(Department.code == department_code))



DEMO_HOURS = {  # department code: (weekday hours, after hours)
    "sales": ({**{d: (time(9), time(20)) for d in range(5)}, 5: (time(10), time(16))}, "callback"),
    "service": ({d: (time(8), time(20)) for d in range(5)}, "voicemail"),
    "collections": ({d: (time(9), time(18)) for d in range(5)}, "callback"),
}


def seed_default_menu(session: Session) -> bool:
    """The demo's menu (1 sales, 2 service, 3 collections, 4 more, 0 operator) and department
    hours, unless a `main` menu exists; True when added."""
    if session.scalar(select(IvrMenu.id).where(IvrMenu.name == "main")) is not None:
        return False
    departments = {d.code: d for d in session.scalars(select(Department))}
    more = IvrMenu(name="more", greeting="callcard/ivr-more", fallback_queue="sales")
    more.options = [IvrOption(digit="1", action="callback", department=departments.get("sales")),
                    IvrOption(digit="0", action="operator")]
    main = IvrMenu(name="main", is_default=True, greeting="callcard/ivr-main", fallback_queue="sales")
    main.options = [IvrOption(digit=digit, action="department", department=departments[code])
                    for digit, code in (("1", "sales"), ("2", "service"), ("3", "collections"))
                    if code in departments]
    main.options += [IvrOption(digit="4", action="menu", submenu=more), IvrOption(digit="0", action="operator")]
    session.add_all([more, main])
    for code, (hours, after_hours) in DEMO_HOURS.items():
        if code in departments:
            schedule = DepartmentSchedule(department=departments[code], after_hours=after_hours,
                                          voicemail_prompt=f"callcard/ivr-closed-{code}")
            schedule.hours = [BusinessHours(weekday=d, opens=o, closes=c) for d, (o, c) in hours.items()]
            session.add(schedule)
    session.flush()
    return True


# --- admin edits (/admin/ivr) -------------------------------------------------------------

class IvrConfigError(Refusal):
    """An admin's edit that would break the IVR; the page says why."""


_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
_PROMPT = re.compile(r"^[A-Za-z0-9_./-]{1,128}$")  # goes into AGI command lines: no spaces or quotes
_QUEUE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise IvrConfigError(f"{what}: {value[:60]!r} is not allowed", "ivr.err.not_allowed", what=what,
                             value=value[:60])
    return value


def _menu(session: Session, name: str) -> IvrMenu:
    menu = session.scalar(select(IvrMenu).where(IvrMenu.name == name))
    if menu is None:
        raise IvrConfigError(f"no menu {name!r}", "ivr.err.no_menu", name=name[:32])
    return menu


def save_menu(session: Session, name: str, did: str, is_default: bool, greeting: str, invalid_prompt: str,
              timeout_seconds: int, max_retries: int, fallback_queue: str) -> IvrMenu:
    """Create or update the menu `name`; one menu at most is the default."""
    _check(_NAME, name, "menu name")
    if not 1 <= timeout_seconds <= 60 or not 0 <= max_retries <= 9:
        raise IvrConfigError("timeout must be 1-60 s and retries 0-9", "ivr.err.timing")
    if did and not did.isdigit():
        raise IvrConfigError(f"DID {did[:32]!r} must be digits only", "ivr.err.did", did=did[:32])
    menu = session.scalar(select(IvrMenu).where(IvrMenu.name == name)) or IvrMenu(name=name)
    menu.did, menu.is_default = did, is_default
    menu.greeting = _check(_PROMPT, greeting, "greeting prompt")
    menu.invalid_prompt = _check(_PROMPT, invalid_prompt, "invalid-input prompt")
    menu.timeout_seconds, menu.max_retries = timeout_seconds, max_retries
    menu.fallback_queue = _check(_QUEUE, fallback_queue, "operator queue")
    session.add(menu)
    if is_default:
        for other in session.scalars(select(IvrMenu).where(IvrMenu.name != name, IvrMenu.is_default)):
            other.is_default = False
    session.flush()
    return menu


def delete_menu(session: Session, name: str) -> None:
    session.delete(_menu(session, name))


def save_option(session: Session, menu_name: str, digit: str, action: str, target: str, priority: int) -> None:
    """Set what `digit` does in the menu, replacing what it did before."""
    menu = _menu(session, menu_name)
    if len(digit) != 1 or digit not in DIGITS or action not in OPTION_ACTIONS or not 0 <= priority <= 100:
        raise IvrConfigError(f"digit {digit[:2]!r}, action {action[:16]!r} or priority {priority} is not valid",
                             "ivr.err.option")
    option = next((o for o in menu.options if o.digit == digit), None) or IvrOption(digit=digit)
    option.action, option.priority, option.department_id, option.submenu = action, priority, None, None
    if action in ("department", "callback") and (target or action == "department"):
        option.department_id = session.scalar(select(Department.id).where(Department.code == target))
        if option.department_id is None:
            raise IvrConfigError(f"no department {target[:32]!r}", "routing.err.department", department=target[:32])
    if action == "menu":
        option.submenu = _menu(session, target)
        if option.submenu is menu:
            raise IvrConfigError("a menu cannot lead to itself", "ivr.err.loop")
    if option not in menu.options:
        menu.options.append(option)
    session.flush()


def delete_option(session: Session, menu_name: str, digit: str) -> None:
    menu = _menu(session, menu_name)
    menu.options = [o for o in menu.options if o.digit != digit]


def save_schedule(session: Session, department_code: str, timezone: str, after_hours: str,
                  voicemail_prompt: str, hours: dict[int, tuple[time, time]]) -> None:
    """Replace a department's weekly hours; weekdays left out are closed."""
    department = session.scalar(select(Department).where(Department.code == department_code))
    if department is None:
        raise IvrConfigError(f"no department {department_code[:32]!r}", "routing.err.department",
                             department=department_code[:32])
    if timezone not in available_timezones() or after_hours not in AFTER_HOURS:
        raise IvrConfigError(f"time zone {timezone[:64]!r} or after-hours {after_hours[:16]!r} is not valid",
                             "ivr.err.zone", zone=timezone[:64])
    if any(not 0 <= d <= 6 or (c != time(0) and c <= o) for d, (o, c) in hours.items()):
        raise IvrConfigError("each day must close after it opens", "ivr.err.hours")
    schedule = session.scalar(select(DepartmentSchedule).where(DepartmentSchedule.department_id == department.id))
    schedule = schedule or DepartmentSchedule(department=department)
    schedule.timezone, schedule.after_hours = timezone, after_hours
    schedule.voicemail_prompt = _check(_PROMPT, voicemail_prompt, "voicemail prompt")
    session.add(schedule)
    schedule.hours.clear()
    session.flush()  # the old rows go before the new ones take their (schedule, weekday) slots
    schedule.hours = [BusinessHours(weekday=d, opens=o, closes=c) for d, (o, c) in sorted(hours.items())]
    session.flush()


def save_holiday(session: Session, day: date, kind: str, name: str) -> None:
    if kind not in DAY_KINDS:
        raise IvrConfigError(f"day kind {kind[:16]!r} is not valid", "ivr.err.day_kind")
    holiday = session.scalar(select(Holiday).where(Holiday.day == day)) or Holiday(day=day)
    holiday.kind, holiday.name = kind, name[:128]
    session.add(holiday)


def delete_holiday(session: Session, day: date) -> None:
    holiday = session.scalar(select(Holiday).where(Holiday.day == day))
    if holiday is not None:
        session.delete(holiday)
