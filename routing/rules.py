"""Routing rules: a pure `decide(context) -> Route` for one inbound call.

The rule set is data (order, enabled flags, thresholds, DID map, blocked numbers) that the
admin edits at /admin/routing; `routing.service` loads it and the caller facts from the
database. Every rule that fires adds a line to the explanation, so a supervisor can read
why a call went where it went.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

BLOCKED = "blocked"
DEBTOR = "debtor"
MANAGER = "manager"
VIP = "vip"
IVR = "ivr"
OVERFLOW = "overflow"
RULE_CODES = (BLOCKED, DEBTOR, MANAGER, VIP, IVR, OVERFLOW)


@dataclass(frozen=True)
class QueueLoad:
    """A queue as the PBX sees it now (QueueSummary): who can answer, who waits, for how long."""

    agents_logged_in: int = 0
    callers_waiting: int = 0
    longest_wait: int = 0  # seconds


@dataclass(frozen=True)
class Manager:
    operator_id: int
    name: str
    interface: str | None
    department: str | None  # code of the manager's first department
    active: bool = True


@dataclass(frozen=True)
class Caller:
    """What the CRM knows about the number calling; `client_id` None = unknown caller."""

    e164: str | None
    client_id: int | None = None
    client_name: str = ""
    segment: str = "standard"
    debt_open: bool = False
    manager: Manager | None = None


@dataclass(frozen=True)
class Department:
    code: str
    queue: str


@dataclass(frozen=True)
class RuleSet:
    """The configurable part: `order` lists the enabled rule codes in the order they apply."""

    departments: Mapping[str, Department]  # by code
    default_department: str
    order: tuple[str, ...] = RULE_CODES
    did_map: Mapping[str, str] = field(default_factory=dict)  # DID -> department code
    ivr_map: Mapping[str, str] = field(default_factory=dict)  # IVR digit -> department code
    blocked: frozenset[str] = frozenset()  # E.164 numbers
    collections_department: str = "collections"
    manager_ring_seconds: int = 15
    vip_segments: frozenset[str] = frozenset({"vip"})
    vip_priority: int = 10
    overflow_wait_seconds: int = 120
    overflow_callers_waiting: int = 0  # overflow when this many callers already wait; 0 = off
    overflow_department: str | None = None  # None: offer a callback instead


@dataclass(frozen=True)
class CallContext:
    """Everything one decision needs; `now` is there for time rules (business hours are the IVR's)."""

    caller: Caller
    did: str
    ivr_choice: str
    now: datetime
    rules: RuleSet
    load: Mapping[str, QueueLoad] = field(default_factory=dict)  # by queue name


@dataclass(frozen=True)
class Route:
    """Where the call goes: the IVR turns this into channel variables."""

    department: str | None
    queue: str | None
    priority: int = 0
    first_try_interface: str | None = None
    ring_seconds: int = 0
    callback: bool = False
    rejected: bool = False
    explanation: str = ""


@dataclass(frozen=True)
class _Draft:
    route: Route
    department_by: str  # which rule chose the department; "did"/"default" may be overridden
    reasons: tuple[str, ...]

    def with_department(self, rules: RuleSet, code: str, by: str, reason: str) -> _Draft:
        dept = rules.departments.get(code)
        if dept is None:
            return self.note(f"{reason}, but department {code!r} does not exist: ignored")
        route = replace(self.route, department=dept.code, queue=dept.queue)
        return _Draft(route, by, (*self.reasons, reason))

    def note(self, reason: str) -> _Draft:
        return replace(self, reasons=(*self.reasons, reason))

    @property
    def overridable(self) -> bool:
        return self.department_by in ("did", "default")


def _blocked(ctx: CallContext, rules: RuleSet, draft: _Draft) -> _Draft | None:
    if ctx.caller.e164 and ctx.caller.e164 in rules.blocked:
        route = replace(draft.route, department=None, queue=None, rejected=True)
        return _Draft(route, BLOCKED, (*draft.reasons, f"{ctx.caller.e164} is blocked: rejected"))
    return None


def _debtor(ctx: CallContext, rules: RuleSet, draft: _Draft) -> _Draft | None:
    if ctx.caller.debt_open and draft.overridable:
        return draft.with_department(rules, rules.collections_department, DEBTOR,
                                     f"open debt → {rules.collections_department}")
    return None


def _manager(ctx: CallContext, rules: RuleSet, draft: _Draft) -> _Draft | None:
    manager = ctx.caller.manager
    if manager is None or not draft.overridable:
        return None
    if not manager.active or not manager.interface:
        return draft.note(f"personal manager {manager.name} cannot take calls: skipped")
    code = manager.department or draft.route.department or rules.default_department
    result = draft.with_department(rules, code, MANAGER,
                                   f"personal manager {manager.name} first for "
                                   f"{rules.manager_ring_seconds} s, then {code}")
    route = replace(result.route, first_try_interface=manager.interface,
                    ring_seconds=rules.manager_ring_seconds)
    return replace(result, route=route)


def _vip(ctx: CallContext, rules: RuleSet, draft: _Draft) -> _Draft | None:
    if ctx.caller.client_id is not None and ctx.caller.segment in rules.vip_segments:
        route = replace(draft.route, priority=max(draft.route.priority, rules.vip_priority))
        return replace(draft, route=route).note(f"segment {ctx.caller.segment} → priority {rules.vip_priority}")
    return None


def _ivr(ctx: CallContext, rules: RuleSet, draft: _Draft) -> _Draft | None:
    """The FastAGI menu hands over the department code the caller chose; a bare digit (a dialplan
    Read() without our menus) is looked up in `ivr_map`."""
    if not ctx.ivr_choice or not draft.overridable:
        return None
    code = ctx.ivr_choice if ctx.ivr_choice in rules.departments else rules.ivr_map.get(ctx.ivr_choice)
    if code is None:
        return draft.note(f"IVR choice {ctx.ivr_choice!r} is not mapped: ignored")
    return draft.with_department(rules, code, IVR, f"IVR choice {ctx.ivr_choice} → {code}")


def _overflow(ctx: CallContext, rules: RuleSet, draft: _Draft) -> _Draft | None:
    if draft.route.queue is None:
        return None
    load = ctx.load.get(draft.route.queue)
    if load is None:
        return None
    if load.agents_logged_in == 0:
        why = f"no agent logged in to {draft.route.queue}"
    elif load.longest_wait > rules.overflow_wait_seconds:
        why = f"{draft.route.queue} longest wait {load.longest_wait} s > {rules.overflow_wait_seconds} s"
    elif 0 < rules.overflow_callers_waiting <= load.callers_waiting:
        why = (f"{load.callers_waiting} callers wait in {draft.route.queue} "
               f"(limit {rules.overflow_callers_waiting})")
    else:
        return None
    target = rules.departments.get(rules.overflow_department or "")
    target_load = ctx.load.get(target.queue) if target is not None else None
    if target is not None and target.code != draft.route.department and (
        target_load is None or target_load.agents_logged_in > 0
    ):
        route = replace(draft.route, department=target.code, queue=target.queue, first_try_interface=None,
                        ring_seconds=0)
        return _Draft(route, OVERFLOW, (*draft.reasons, f"{why} → overflow to {target.code}"))
    return replace(draft, route=replace(draft.route, callback=True)).note(f"{why} → offer a callback")


RULES: Mapping[str, Callable[[CallContext, RuleSet, _Draft], _Draft | None]] = {
    BLOCKED: _blocked,
    DEBTOR: _debtor,
    MANAGER: _manager,
    VIP: _vip,
    IVR: _ivr,
    OVERFLOW: _overflow,
}


def _base(ctx: CallContext, rules: RuleSet) -> _Draft:
    """The DID's department, or the default one (an unknown DID is said so, never an error)."""
    draft = _Draft(Route(department=None, queue=None), "default", ())
    code = rules.did_map.get(ctx.did)
    if code is not None and code in rules.departments:
        return draft.with_department(rules, code, "did", f"DID {ctx.did} → {code}")
    why = f"unknown DID {ctx.did!r}" if ctx.did else "no DID"
    return draft.with_department(rules, rules.default_department, "default",
                                 f"{why} → default {rules.default_department}")


def decide(ctx: CallContext) -> Route:
    """Apply the enabled rules in their order; a blocked caller stops the walk."""
    rules = ctx.rules
    draft = _base(ctx, rules)
    for code in rules.order:
        rule = RULES.get(code)
        if rule is None:
            continue
        changed = rule(ctx, rules, draft)
        if changed is None:
            continue
        draft = changed
        if draft.route.rejected:
            break
    return replace(draft.route, explanation="; ".join(draft.reasons))
